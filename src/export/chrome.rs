//! Chrome trace / Perfetto JSON export of captured requests.
