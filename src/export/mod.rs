//! Ways out of the process for captured requests and histograms.

pub mod chrome;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod text;
