//! The read model: immutable snapshots of every histogram and the captured
//! requests, what readers hold (`snapshot`, `requests`), how the aggregator
//! publishes them (`publish`, `source`), and their bytes across processes
//! (`portable`, `decode`, `merge`).

pub(crate) mod decode;
pub(crate) mod format;
pub(crate) mod merge;
pub(crate) mod portable;
pub(crate) mod publish;
pub(crate) mod requests;
pub(crate) mod snapshot;
pub(crate) mod source;
