//! The protobuf exposition read back over HTTP with the definitions it was
//! encoded with: every histogram's classic and native buckets hold exactly
//! the HDR histogram's counts, exemplars ride on both, the families and
//! counters are those of the text answer, and a request that does not ask
//! for protobuf plainly (unknown, malformed, or outbid by a text format)
//! gets text. Content negotiation reads every `Accept` header a request
//! carries, as one comma-separated list (RFC 9110, section 5.3).
#![cfg(feature = "prometheus")]

mod prometheus_support;

use hdrtrace::export::prometheus::proto::{Histogram, MetricFamily, MetricType};
use hdrtrace::export::prometheus::{
    self, native, render_with, Buckets, Format, CONTENT_TYPE, PROTOBUF_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
};
use hdrtrace::{LatencySnapshot, TracingConfig, TracingGuard};
use prometheus_support::{label, scrape};
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MODELS: [&str; 3] = ["Alpha", "Beta \"quoted\"", "Gamma"];

/// Held by each test while it builds, records into and drops a subscriber
/// (tracing-core's interest cache races when several threads do that at
/// once; see tests/export.rs).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A subscriber that captured every request and a metrics server on it,
/// after `requests` requests through every model (each model's time
/// different from request to request).
fn recorded(requests: u64) -> (TracingGuard, prometheus::MetricsServer) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let config = TracingConfig {
        sampling_rate: 1.0,
        capture_capacity: 64,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..requests {
            let request = tracing::info_span!("embed_pipeline", request_id = i);
            let _r = request.enter();
            for (k, model) in MODELS.iter().enumerate() {
                tracing::debug_span!("model", model_id = *model).in_scope(|| {
                    std::thread::sleep(Duration::from_micros(200 + 300 * k as u64 + 70 * i));
                });
            }
        }
    });
    guard.flush();
    let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();
    (guard, server)
}

/// Every length-delimited family of a protobuf answer.
fn decode(mut body: &[u8]) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut body).expect("a MetricFamily"));
    }
    families
}

fn family<'a>(families: &'a [MetricFamily], name: &str) -> &'a MetricFamily {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The histogram of the series `label="key"` in `family`.
fn series<'a>(family: &'a MetricFamily, label: &str, key: &str) -> &'a Histogram {
    family
        .metric
        .iter()
        .find(|m| m.label.iter().any(|l| l.name == label && l.value == key))
        .and_then(|m| m.histogram.as_ref())
        .unwrap_or_else(|| panic!("no {label}={key:?} histogram in {}", family.name))
}

/// The native buckets of `h` read back from its spans and deltas, as
/// `index -> count`.
fn native_buckets(h: &Histogram) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    let (mut index, mut count) = (0i32, 0i64);
    let mut deltas = h.positive_delta.iter();
    for (k, span) in h.positive_span.iter().enumerate() {
        index = if k == 0 {
            span.offset
        } else {
            index + span.offset
        };
        for _ in 0..span.length {
            count += deltas.next().expect("a delta per bucket");
            assert!(count > 0, "a populated bucket");
            out.insert(index, count as u64);
            index += 1;
        }
    }
    assert!(deltas.next().is_none(), "no delta past the spans");
    out
}

/// What the native buckets of an HDR histogram of nanoseconds must be: each
/// HDR bucket's count where its highest value falls, checked against the
/// bucket's bounds `(2^((i-1)/256), 2^(i/256)]` in seconds.
fn expected_native(hist: &hdrhistogram::Histogram<u64>) -> (u64, BTreeMap<i32, u64>) {
    let (mut zero, mut out) = (0u64, BTreeMap::new());
    let base = 2f64.powf(2f64.powi(-native::SCHEMA));
    for v in hist.iter_recorded() {
        let high = v.value_iterated_to();
        if high == 0 {
            zero += v.count_at_value();
            continue;
        }
        let seconds = high as f64 / 1e9;
        let i = native::index_of(seconds);
        let (low, top) = (base.powi(i - 1), base.powi(i));
        assert!(
            low < seconds * (1.0 + 1e-12) && seconds <= top * (1.0 + 1e-12),
            "{seconds} s in bucket {i} ({low}, {top}]"
        );
        *out.entry(i).or_insert(0) += v.count_at_value();
    }
    (zero, out)
}

#[test]
fn protobuf_buckets_are_the_hdr_counts() {
    let (guard, server) = recorded(40);
    let (content_type, body) = scrape(server.local_addr(), &[PROTOBUF_CONTENT_TYPE]);
    assert_eq!(content_type, PROTOBUF_CONTENT_TYPE);
    let families = decode(&body);
    let snapshot: LatencySnapshot = guard.snapshot();
    let buckets = Buckets::default();
    let latency = family(&families, "hdrtrace_model_latency_seconds");
    assert_eq!(latency.r#type, MetricType::Histogram as i32);
    let captured: BTreeSet<String> = snapshot
        .captured()
        .iter()
        .chain(snapshot.slowest())
        .map(|t| t.trace_id().to_string())
        .collect();
    let mut exemplars = 0;
    for model in MODELS {
        let hdr = snapshot.model(model).expect("recorded").histogram();
        let h = series(latency, "model", model);
        assert_eq!(h.sample_count, 40);
        // Classic: one bucket per bound and +Inf, exactly the HDR counts.
        let classic: Vec<u64> = h.bucket.iter().map(|b| b.cumulative_count).collect();
        assert_eq!(classic, buckets.cumulative_counts(hdr), "{model}");
        let bounds: Vec<f64> = h.bucket.iter().map(|b| b.upper_bound).collect();
        let want: Vec<f64> = buckets
            .bounds()
            .map(|b| b.as_secs_f64())
            .chain([f64::INFINITY])
            .collect();
        assert_eq!(bounds, want);
        // Native: schema 8, bucket by bucket the HDR counts.
        assert_eq!(h.schema, native::SCHEMA);
        assert_eq!(h.zero_threshold, native::ZERO_THRESHOLD);
        let (zero, want) = expected_native(hdr);
        assert_eq!(h.zero_count, zero, "{model}");
        assert_eq!(native_buckets(h), want, "{model}");
        assert_eq!(zero + want.values().sum::<u64>(), hdr.len());
        assert!(h.negative_span.is_empty() && h.negative_delta.is_empty());
        // Exemplars: on the classic buckets that hold them, and the same
        // ones, each with a timestamp, on the native histogram.
        let on_buckets: Vec<_> = h.bucket.iter().filter_map(|b| b.exemplar.clone()).collect();
        assert!(
            !on_buckets.is_empty(),
            "{model}: every request was captured"
        );
        assert_eq!(h.exemplars, on_buckets, "{model}");
        for (b, e) in h
            .bucket
            .iter()
            .filter_map(|b| b.exemplar.as_ref().map(|e| (b, e)))
        {
            let id = &e.label.iter().find(|l| l.name == "trace_id").unwrap().value;
            assert!(captured.contains(id), "{id} is no captured request");
            assert!(
                e.value <= b.upper_bound,
                "{} in le={}",
                e.value,
                b.upper_bound
            );
            assert!(e.timestamp.is_some_and(|t| t.seconds > 0));
            exemplars += 1;
        }
    }
    assert!(exemplars >= MODELS.len());
}

#[test]
fn protobuf_has_the_text_answers_families_and_counters() {
    let (guard, server) = recorded(5);
    let (_, body) = scrape(server.local_addr(), &[PROTOBUF_CONTENT_TYPE]);
    let families = decode(&body);
    let text = render_with(&guard.snapshot(), Format::Text, &Buckets::default());
    // The same families, in the same order: `# TYPE name type` lines of the
    // text format name counters with their `_total`, as protobuf does.
    let typed: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect();
    let kinds = [
        (MetricType::Counter, "counter"),
        (MetricType::Histogram, "histogram"),
        (MetricType::Summary, "summary"),
    ];
    let decoded: Vec<(String, String)> = families
        .iter()
        .map(|f| {
            let kind = kinds
                .iter()
                .find(|(t, _)| *t as i32 == f.r#type)
                .map(|(_, k)| k.to_string())
                .unwrap_or_else(|| panic!("{}: type {}", f.name, f.r#type));
            (f.name.clone(), kind)
        })
        .collect();
    assert_eq!(decoded, typed);
    // Counters and summaries say the same in both (histograms add the
    // native buckets to theirs).
    for f in &families {
        if f.r#type != MetricType::Histogram as i32 {
            let help = format!("# HELP {} {}", f.name, f.help);
            assert!(
                text.lines().any(|l| l == help),
                "{help} not in the text answer"
            );
        }
    }
    // Every counter sample of the text answer, with the same labels and
    // value.
    let mut counters = 0;
    for f in families
        .iter()
        .filter(|f| f.r#type == MetricType::Counter as i32)
    {
        for m in &f.metric {
            let labels: Vec<String> = m
                .label
                .iter()
                .map(|l| format!("{}=\"{}\"", l.name, label(&l.value)))
                .collect();
            let series = if labels.is_empty() {
                f.name.clone()
            } else {
                format!("{}{{{}}}", f.name, labels.join(","))
            };
            let value = m.counter.as_ref().expect("a counter").value;
            let line = format!("{series} {value}");
            assert!(
                text.lines().any(|l| l == line),
                "{line} not in the text answer"
            );
            counters += 1;
        }
    }
    assert!(counters > 20, "{counters}");
}

#[test]
fn whatever_does_not_ask_for_protobuf_gets_text() {
    let (_guard, server) = recorded(1);
    let addr = server.local_addr();
    let bad_q = format!("{PROTOBUF_CONTENT_TYPE};q=high");
    let refused = format!("{PROTOBUF_CONTENT_TYPE};q=0");
    let prometheus_with_native =
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
        encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,\
        text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accepts, want) in [
        (&[prometheus_with_native][..], PROTOBUF_CONTENT_TYPE),
        // Two headers, read as one list.
        (
            &["text/plain", PROTOBUF_CONTENT_TYPE][..],
            PROTOBUF_CONTENT_TYPE,
        ),
        (
            &[
                "application/openmetrics-text",
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5",
            ][..],
            CONTENT_TYPE,
        ),
        (&["application/json", "text/plain"][..], TEXT_CONTENT_TYPE),
        // Unknown.
        (&["application/json"][..], CONTENT_TYPE),
        (&["application/vnd.google.protobuf;proto=other.Message;encoding=delimited"][..], CONTENT_TYPE),
        // Malformed: no proto or encoding, an unreadable q, noise.
        (&["application/vnd.google.protobuf"][..], CONTENT_TYPE),
        (&["application/vnd.google.protobuf", "text/plain"][..], TEXT_CONTENT_TYPE),
        (&[bad_q.as_str()][..], CONTENT_TYPE),
        (&[",,;;q=,;proto=;encoding"][..], CONTENT_TYPE),
        (&[refused.as_str()][..], CONTENT_TYPE),
        (&[][..], CONTENT_TYPE),
    ] {
        let (content_type, body) = scrape(addr, accepts);
        assert_eq!(content_type, want, "Accept: {accepts:?}");
        if want != PROTOBUF_CONTENT_TYPE {
            let text = String::from_utf8(body).expect("text is UTF-8");
            assert!(text.contains("# TYPE hdrtrace_model_latency_seconds histogram"));
        }
    }
}

#[test]
fn every_accept_header_is_negotiated() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (_subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();
    let addr = server.local_addr();
    for (accepts, want) in [
        (&["text/plain"][..], TEXT_CONTENT_TYPE),
        (
            &["application/json", "text/plain;version=0.0.4"][..],
            TEXT_CONTENT_TYPE,
        ),
        (
            &["text/plain", "application/openmetrics-text"][..],
            CONTENT_TYPE,
        ),
        (
            &["application/openmetrics-text;q=0", "text/plain"][..],
            TEXT_CONTENT_TYPE,
        ),
        (&["text/plain;q=0", "image/png"][..], CONTENT_TYPE),
        (&[][..], CONTENT_TYPE),
    ] {
        assert_eq!(scrape(addr, accepts).0, want, "Accept: {accepts:?}");
    }
}
