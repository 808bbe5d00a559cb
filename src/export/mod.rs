//! Ways out of the process for captured requests and histograms.

pub mod chrome;
pub mod text;
