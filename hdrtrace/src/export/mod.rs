//! Ways out of the process for captured requests and histograms.

mod chrome;
mod html;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub(crate) mod text;
pub(crate) mod trace_id;

pub use chrome::{chrome_trace_json, write_chrome_trace};
pub use html::{render_html, HtmlOptions};
pub use text::render_text;
pub use trace_id::TraceId;
