//! Ways out of the process for captured requests and histograms.

pub mod chrome;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod text;
pub mod trace_id;

pub use chrome::{chrome_trace_json, write_chrome_trace};
pub use text::render_text;
