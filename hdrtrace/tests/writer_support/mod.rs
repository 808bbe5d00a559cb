//! A writer whose bytes a test reads back (log lines, fmt output).

use hdrtrace::{Builder, HdrSubscriber, TracingConfig, TracingGuard};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Keeps every byte written to it; clones share the buffer.
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    /// What was written, as lines.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// A subscriber built from `config` whose log lines go to the returned
/// writer.
#[allow(dead_code)] // Not every test that reads a writer logs through ours.
pub fn logged(config: &TracingConfig) -> (Shared, HdrSubscriber, TracingGuard) {
    let out = Shared::default();
    let (sub, guard) = Builder::new(config)
        .log_writer(out.clone())
        .build()
        .unwrap();
    (out, sub, guard)
}
