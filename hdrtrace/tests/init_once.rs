//! `init_tracing` installs once; a second call is an error, not a panic; dropping
//! the guard flushes every ring, so no span closed before the drop is lost.

use hdrtrace::{Builder, ConfigError, InstallError, RequestSink, RequestTrace, TracingConfig};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u64>>>);

impl RequestSink for Collect {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        self.0.lock().unwrap().push(trace.request_id());
    }
}

#[test]
fn second_init_is_an_error_and_drop_loses_nothing() {
    let seen = Collect::default();
    let config = TracingConfig {
        sampling_rate: 1.0,
        // Slow publication, so only the drop's final drain can deliver.
        flush_interval: std::time::Duration::from_secs(3600),
        ..TracingConfig::default()
    };
    let guard = hdrtrace::init_with(Builder::new(&config).sink(seen.clone())).expect("first init");

    match hdrtrace::init_tracing(&TracingConfig::default()) {
        Err(e @ InstallError::AlreadyInstalled) => {
            assert!(e.to_string().contains("already installed"))
        }
        other => panic!("expected AlreadyInitialized, got {other:?}"),
    }
    // An invalid config is reported as such even after install.
    let bad = TracingConfig {
        sampling_rate: f32::NAN,
        ..TracingConfig::default()
    };
    assert!(matches!(
        hdrtrace::init_tracing(&bad),
        Err(InstallError::Config(ConfigError::Invalid {
            field: "sampling_rate",
            ..
        }))
    ));

    // Spans from several threads, closed just before the guard goes.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..250u64 {
                    let root = tracing::info_span!("embed_pipeline", request_id = t * 1000 + i);
                    let _r = root.enter();
                    tracing::debug_span!("model", model_id = "Code").in_scope(|| {});
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(guard);

    let mut ids = seen.0.lock().unwrap().clone();
    ids.sort_unstable();
    let mut want: Vec<u64> = (0..4u64)
        .flat_map(|t| (0..250u64).map(move |i| t * 1000 + i))
        .collect();
    want.sort_unstable();
    assert_eq!(
        ids, want,
        "every request closed before the drop was delivered"
    );

    // After the drop the subscriber is switched off: spans cost nothing and
    // nothing panics.
    tracing::info_span!("embed_pipeline", request_id = 1u64).in_scope(|| {});
}
