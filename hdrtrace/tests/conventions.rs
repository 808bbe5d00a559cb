//! A service with its own span and field names, and a target filter: the
//! conventions are configuration, applied once per callsite.

use hdrtrace::{ConfigError, Conventions, InstallError, Status, TracingConfig};
use std::collections::HashMap;
use std::time::Duration;
use tracing::subscriber::with_default;

fn service_conventions() -> Conventions {
    Conventions::default()
        .request_span("handle_request")
        .request_id_field("req")
        .model_field("model")
        .timeout_field("deadline")
        .device_time_field("device_ns")
}

/// One request of a service that names things its own way: a slow model,
/// a fast one, and one that times out.
fn serve(req: u64) {
    let root = tracing::info_span!("handle_request", req);
    let _r = root.enter();
    tracing::info_span!("infer", model = "Bert", device_ns = 1_500u64)
        .in_scope(|| std::thread::sleep(Duration::from_millis(8)));
    tracing::info_span!("infer", model = "Tiny").in_scope(|| {});
    tracing::info_span!("infer", model = "Late").in_scope(|| {
        tracing::warn!(deadline = true, "model missed its deadline");
    });
}

#[test]
fn a_service_with_its_own_names_is_traced_like_the_demo() {
    let config = TracingConfig {
        conventions: service_conventions(),
        latency_target: Duration::from_millis(5),
        sampling_rate: 0.0,
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    with_default(sub, || {
        for req in 1..=3 {
            serve(req);
        }
    });
    let snap = guard.flushed_snapshot();
    for model in ["Bert", "Tiny", "Late"] {
        assert_eq!(snap.model(model).map(|m| m.count()), Some(3), "{model}");
    }
    assert_eq!(snap.model("Late").unwrap().timeouts(), 3);
    let bert = snap.model("Bert").unwrap();
    assert_eq!(bert.gpu().map(|g| g.count()), Some(3), "device time read");
    assert_eq!(snap.counters().requests, 3);
    assert!(snap.stage("infer").is_none(), "model spans are not stages");
    let mut ids: Vec<u64> = snap.captured().iter().map(|t| t.request_id()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [1, 2, 3],
        "every request captured (over budget, timed out)"
    );
    for t in snap.captured() {
        assert_eq!(t.name(), "handle_request");
        assert!(t.reason().over_budget && t.reason().failed);
        assert_eq!(t.status(), Status::Timeout);
        assert_eq!(t.models().count(), 3);
        let a = t.attribution().expect("attributed");
        assert_eq!(a.model, "Late", "a timed-out model gates the request");
    }
    assert!(bert.blamed() == 0 && snap.model("Late").unwrap().blamed() == 3);
}

#[test]
fn the_demos_names_mean_nothing_to_a_service_that_renamed_them() {
    let config = TracingConfig {
        conventions: Conventions::default()
            .request_spans(["handle_request"])
            .request_id_field("req")
            .model_field("model"),
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    with_default(sub, || {
        tracing::info_span!("embed_pipeline", request_id = 1u64)
            .in_scope(|| tracing::info_span!("model", model_id = "Causal").in_scope(|| {}));
    });
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.counters().requests, 0);
    assert!(snap.model("Causal").is_none());
    assert_eq!(snap.stage("model").map(|s| s.count()), Some(1));
}

#[test]
fn a_filtered_target_costs_nothing_at_all() {
    let config = TracingConfig {
        filter: Some("noisy=off,chatty=warn,info".into()),
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 9u64);
        let _r = root.enter();
        for _ in 0..10 {
            let noisy = tracing::info_span!(target: "noisy::h2", "poll");
            assert!(noisy.is_disabled(), "a filtered span takes no slot");
            noisy.in_scope(|| {});
            tracing::info_span!(target: "chatty", "read").in_scope(|| {});
            tracing::warn_span!(target: "chatty", "retry").in_scope(|| {});
        }
    });
    let snap = guard.flushed_snapshot();
    assert!(snap.stage("poll").is_none());
    assert!(snap.stage("read").is_none());
    assert_eq!(snap.stage("retry").map(|s| s.count()), Some(10));
    assert_eq!(snap.counters().spans, 11);
}

#[test]
fn invalid_filters_and_names_are_errors_naming_them() {
    let bad = |config: TracingConfig, want: &str| match hdrtrace::build(&config) {
        Err(e @ InstallError::Config(ConfigError::Invalid { .. })) => {
            let m = e.to_string();
            assert!(m.contains(want), "{m} (wanted {want:?})");
        }
        Err(other) => panic!("{want}: wrong error {other}"),
        Ok(_) => panic!("{want}: accepted"),
    };
    let d = TracingConfig::default;
    bad(
        TracingConfig {
            filter: Some("my_service=debug,hyper=loud".into()),
            ..d()
        },
        "directive \"hyper=loud\"",
    );
    bad(
        TracingConfig {
            conventions: Conventions::default().model_field(""),
            ..d()
        },
        "conventions.model_field` must not be empty",
    );
    bad(
        TracingConfig {
            conventions: Conventions::default().request_span("handle request"),
            ..d()
        },
        "conventions.request_spans` must not contain whitespace",
    );
    bad(
        TracingConfig {
            conventions: Conventions::default().timeout_field("model_id"),
            ..d()
        },
        "the same name as conventions.timeout_field",
    );
}

#[test]
fn batch_names_are_validated() {
    let d = TracingConfig::default;
    let refused = |conventions: Conventions, says: &str| {
        let e = TracingConfig { conventions, ..d() }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{e}");
    };
    refused(
        Conventions::default().batch_span("embed_pipeline"),
        "also a request span name",
    );
    refused(Conventions::default().batch_span("a batch"), "whitespace");
    refused(
        Conventions::default().batch_size_field("model_id"),
        "the same name as conventions.batch_size_field",
    );
    let many = (0..65).map(|i| format!("b{i}"));
    refused(Conventions::default().batch_spans(many), "at most 64");
    assert!(TracingConfig {
        conventions: Conventions::default().batch_spans(Vec::<String>::new()),
        ..d()
    }
    .validate()
    .is_ok());
}

#[test]
fn conventions_and_filter_come_from_the_environment() {
    let vars: HashMap<&str, &str> = [
        ("HDRTRACE_REQUEST_SPANS", "handle_request, grpc_call"),
        ("HDRTRACE_REQUEST_ID_FIELD", "req"),
        ("HDRTRACE_MODEL_FIELD", "model"),
        ("HDRTRACE_TIMEOUT_FIELD", "deadline"),
        ("HDRTRACE_DEVICE_TIME_FIELD", "device_ns"),
        ("HDRTRACE_BATCH_SPANS", "forward_batch, ,microbatch"),
        ("HDRTRACE_BATCH_SIZE_FIELD", "n_inputs"),
        ("HDRTRACE_FILTER", "hyper=off,info"),
    ]
    .into();
    let c = TracingConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let names: Vec<&str> = c.conventions.request_span_names().collect();
    assert_eq!(names, ["handle_request", "grpc_call"]);
    assert_eq!(c.conventions.request_id_name(), "req");
    assert_eq!(c.conventions.model_name(), "model");
    assert_eq!(c.conventions.timeout_name(), "deadline");
    assert_eq!(c.conventions.device_time_name(), "device_ns");
    let batches: Vec<&str> = c.conventions.batch_span_names().collect();
    assert_eq!(batches, ["forward_batch", "microbatch"]);
    assert_eq!(c.conventions.batch_size_name(), "n_inputs");
    assert_eq!(c.filter.as_deref(), Some("hyper=off,info"));
    let e = TracingConfig::from_lookup(|k| (k == "HDRTRACE_FILTER").then(|| "x=nope".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HDRTRACE_FILTER") && e.contains("x=nope"), "{e}");
}

/// Spans and events recorded under `filter`: (spans, events) counted.
fn recorded_under(filter: &str) -> (u64, u64) {
    let config = TracingConfig {
        filter: Some(filter.into()),
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    with_default(sub, || {
        tracing::info_span!("embed_pipeline", request_id = 1u64).in_scope(|| {
            tracing::info_span!(target: "my_crate::db", "query").in_scope(|| {
                tracing::error!(target: "my_crate::db", "failed");
            });
        });
    });
    let c = guard.flushed_snapshot().counters();
    (c.spans, c.events)
}

/// As tracing-subscriber's `EnvFilter` parses it: empty directives between
/// commas are ignored, so a filter of only commas is the empty filter,
/// which records every target.
#[test]
fn empty_directives_are_ignored() {
    assert_eq!(recorded_under(""), (2, 1));
    for spec in [",,,", " , ", ",info,", "my_crate=trace,,info"] {
        assert_eq!(recorded_under(spec), (2, 1), "{spec:?}");
    }
    assert_eq!(recorded_under("my_crate=off,,,info"), (1, 0));
}

/// A directive whose target no Rust target can be (targets are module
/// paths: `_`, never `-`; `*` is no wildcard) is an error naming it.
#[test]
fn directives_that_can_match_nothing_are_errors_naming_them() {
    for (spec, named) in [
        ("my-crate=debug", "\"my-crate=debug\""),
        ("info,my-crate", "\"my-crate\""),
        ("*=debug", "\"*=debug\""),
        ("my_crate::*=info", "\"my_crate::*=info\""),
        ("my_crate::=info", "\"my_crate::=info\""),
        ("my_crate:db=info", "\"my_crate:db=info\""),
    ] {
        let e = TracingConfig {
            filter: Some(spec.into()),
            ..TracingConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`filter`") && e.contains(named), "{spec}: {e}");
    }
    for ok in [
        "my_crate=debug",
        "my_crate::db=info,hyper=off",
        "ünïcode_crate=warn",
    ] {
        assert!(
            TracingConfig {
                filter: Some(ok.into()),
                ..TracingConfig::default()
            }
            .validate()
            .is_ok(),
            "{ok}"
        );
    }
}

/// Names tracing itself gives fields (an event's `message`, the `log.*`
/// fields of `log` records) would match every event: each is an error
/// naming the convention.
#[test]
fn reserved_field_names_are_errors_naming_the_field() {
    let refused = |conventions: Conventions, says: &[&str]| {
        let e = TracingConfig {
            conventions,
            ..TracingConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(says.iter().all(|s| e.contains(s)), "{e} (wanted {says:?})");
    };
    let c = Conventions::default;
    refused(
        c().timeout_field("message"),
        &["conventions.timeout_field", "\"message\""],
    );
    refused(
        c().model_field("message"),
        &["conventions.model_field", "\"message\""],
    );
    refused(
        c().request_id_field("log.target"),
        &["conventions.request_id_field", "\"log.target\""],
    );
    refused(
        c().request_span(""),
        &["conventions.request_spans", "must not be empty"],
    );
    refused(
        c().batch_span(""),
        &["conventions.batch_spans", "must not be empty"],
    );
}

/// A span carrying the model field is a model span, even when its name is
/// also listed as a request span: the listing does not empty the model
/// histograms (the conflict is reported once on stderr).
#[test]
fn a_request_span_name_does_not_take_model_spans() {
    let config = TracingConfig {
        conventions: Conventions::default().request_span("model"),
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    with_default(sub, || {
        for request_id in 1..=3u64 {
            tracing::info_span!("embed_pipeline", request_id).in_scope(|| {
                tracing::info_span!("model", model_id = "Causal").in_scope(|| {});
            });
        }
        // Without the model field the name still makes a request.
        tracing::info_span!("model").in_scope(|| {});
    });
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.model("Causal").map(|m| m.count()), Some(3));
    assert_eq!(snap.counters().requests, 4);
}

/// An environment variable set to nothing is an error naming it, where
/// empty would mean something other than unset (`HDRTRACE_LOG_LEVEL=""`
/// would be ERROR, `HDRTRACE_REQUEST_SPANS=""` no request span at all).
#[test]
fn empty_environment_values_are_errors_naming_the_variable() {
    for (var, value) in [
        ("HDRTRACE_REQUEST_SPANS", ""),
        ("HDRTRACE_REQUEST_SPANS", " , "),
        ("HDRTRACE_BATCH_SPANS", ""),
        ("HDRTRACE_LOG_LEVEL", ""),
        ("HDRTRACE_LOG_LEVEL", "  "),
        ("HDRTRACE_MODEL_FIELD", ""),
        ("HDRTRACE_TIMEOUT_FIELD", " "),
        ("HDRTRACE_LEVEL", ""),
        ("HDRTRACE_SAMPLING_RATE", ""),
    ] {
        match TracingConfig::from_lookup(|k| (k == var).then(|| value.to_string())) {
            Err(e @ ConfigError::Env { .. }) => {
                let m = e.to_string();
                assert!(m.contains(var), "{var}={value:?}: {m}");
            }
            other => panic!("{var}={value:?}: {other:?}"),
        }
    }
    // Where empty means what unset means, it is accepted.
    for var in ["HDRTRACE_FILTER", "HDRTRACE_OTEL_ENDPOINT"] {
        let c = TracingConfig::from_lookup(|k| (k == var).then(String::new)).unwrap();
        assert!(c.otel_endpoint.is_none(), "{var}");
    }
}
