//! The text tree and the Chrome trace export of requests captured by running
//! real spans through the subscriber.

use hdrtrace::export::{chrome_trace_json, render_text, write_chrome_trace};
use hdrtrace::SpanClass;
use hdrtrace::{RequestTrace, TracingConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::thread::sleep;
use std::time::Duration;

const TARGET: Duration = Duration::from_millis(30);
const SLOW: u64 = 42;
const FAST: u64 = 43;

/// `(model, sleep, fails)`: Causal is the slow one, Code logs an error.
const MODELS: [(&str, u64, bool); 4] = [
    ("Semantic", 3, false),
    ("Causal", 45, false),
    ("Code", 2, true),
    ("Sparse", 1, false),
];

/// One `embed_pipeline` request: tokenize, the models in parallel threads under
/// `model_execution`, fusion.
fn request(id: u64, slow_ms: u64) {
    let root = tracing::info_span!("embed_pipeline", request_id = id, content_len = 1500u64);
    let _r = root.enter();
    tracing::info_span!("tokenize").in_scope(|| sleep(Duration::from_millis(1)));
    let exec = tracing::info_span!("model_execution", model_count = MODELS.len() as u64);
    exec.in_scope(|| {
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::scope(|s| {
            for (name, ms, fails) in MODELS {
                let (exec, dispatch) = (&exec, &dispatch);
                let ms = if name == "Causal" { slow_ms } else { ms };
                s.spawn(move || {
                    tracing::dispatcher::with_default(dispatch, || {
                        let span = tracing::info_span!(parent: exec, "model", model_id = name, input_tokens = 12u64);
                        span.in_scope(|| {
                            sleep(Duration::from_millis(ms));
                            if fails {
                                tracing::error!(code = 7u64, "model failed");
                            }
                        });
                    })
                });
            }
        });
    });
    drop(exec);
    tracing::info_span!("fusion").in_scope(|| sleep(Duration::from_millis(1)));
}

/// A slow request (Causal 45 ms against a 30 ms target) and a fast one,
/// captured once per test process.
///
/// Once, because building and dropping scoped subscribers on several test
/// threads at once races in tracing-core's interest cache (a guard's drop
/// rebuilds it while another thread's dispatcher registers), which can
/// disable a callsite for a moment and lose a span.
fn captured() -> (Arc<RequestTrace>, Arc<RequestTrace>) {
    static CAPTURED: OnceLock<(Arc<RequestTrace>, Arc<RequestTrace>)> = OnceLock::new();
    CAPTURED.get_or_init(capture).clone()
}

fn capture() -> (Arc<RequestTrace>, Arc<RequestTrace>) {
    let cfg = TracingConfig {
        sampling_rate: 1.0,
        latency_target: TARGET,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&cfg).expect("valid config");
    tracing::subscriber::with_default(subscriber, || {
        request(SLOW, 45);
        request(FAST, 2);
    });
    guard.flush();
    let snapshot = guard.snapshot();
    let find = |id: u64| {
        snapshot
            .captured()
            .iter()
            .find(|t| t.request_id() == id)
            .cloned()
            .unwrap_or_else(|| panic!("request {id} not captured: {:?}", snapshot.counters()))
    };
    let (slow, fast) = (find(SLOW), find(FAST));
    for t in [&slow, &fast] {
        assert!(t.complete(), "{}", render_text(t));
        assert_eq!(t.spans().len(), 4 + MODELS.len(), "{}", render_text(t));
    }
    (slow, fast)
}

#[test]
fn text_tree_shows_models_bottleneck_and_total() {
    let (slow, _) = captured();
    let text = render_text(&slow);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("embed_pipeline{request_id=42 content_len=1500}: "),
        "{text}"
    );
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    };
    // Children by start time, indented under their parents.
    assert!(pos("  tokenize: ") < pos("  model_execution{model_count=4}: "));
    assert!(pos("  model_execution{") < pos("  fusion: "));
    for (name, _, _) in MODELS {
        let line = lines[pos(&format!("model{{model_id={name} input_tokens=12}}"))];
        assert!(line.starts_with("    model{"), "{line}");
        assert!(line.contains("ms (busy "), "{line}");
        // Code failed: the request went on without it (degraded), and Code
        // is blamed for it ahead of Causal, which returned last.
        assert_eq!(line.contains("← BOTTLENECK"), name == "Code", "{line}");
        assert_eq!(line.contains(" ERROR"), name == "Code", "{line}");
    }
    assert_eq!(text.matches("BOTTLENECK").count(), 1, "{text}");
    // The error event sits under the Code span, one level deeper.
    let event = pos("[ERROR @");
    assert_eq!(event, pos("model_id=Code") + 1, "{text}");
    assert!(lines[event].starts_with("      [ERROR @"), "{text}");
    assert!(lines[event].ends_with("] model failed {code=7}"), "{text}");

    assert_eq!(slow.outcome(), hdrtrace::Outcome::Degraded);
    assert_eq!(slow.blame(), Some(hdrtrace::BlameReason::Failed));
    let verdict = lines[pos("Bottleneck: degraded: Code failed after ")];
    assert!(verdict.contains("% of the total: "), "{verdict}");
    assert!(text.contains("Failed: Code ERROR"), "{text}");
}

#[test]
fn text_tree_within_target() {
    let (_, fast) = captured();
    let text = render_text(&fast);
    assert!(text.contains("\nTotal: "), "{text}");
    assert!(text.contains("(within 30ms target)"), "{text}");
    assert!(!text.contains("exceeded"), "{text}");
}

#[test]
fn text_total_blames_a_slow_stage_over_the_gating_model() {
    let (slow, _) = captured();
    let mut p = slow.to_parts();
    let tokenize = p.spans.iter().position(|s| s.name == "tokenize").unwrap();
    p.spans[tokenize].wall = Duration::from_millis(190);
    p.total = Duration::from_millis(240);
    let text = render_text(&RequestTrace::new(p));
    assert!(
        text.contains("Total: 240.0ms (exceeded 30ms target due to tokenize stage)"),
        "{text}"
    );
    // The model that gated model_execution is still marked as such.
    assert!(text.contains("Causal input_tokens=12}"), "{text}");
    assert_eq!(text.matches("← BOTTLENECK").count(), 1, "{text}");
}

#[test]
fn text_verdict_names_timeouts_and_starvation() {
    let (slow, _) = captured();
    let mut p = slow.to_parts();
    let causal = p.spans.iter().position(|s| s.label() == "Causal").unwrap();
    p.spans[causal].status = hdrtrace::Status::Timeout;
    p.spans[causal].busy = p.spans[causal].wall / 10;
    let s = &p.spans[causal];
    let a = p.attribution.as_mut().unwrap();
    (a.model, a.span, a.wall, a.busy) = ("Causal".to_string(), s.id, s.wall, s.busy);
    a.status = hdrtrace::Status::Timeout;
    a.starved = true;
    // The verdict every renderer shows is made by the constructor.
    let t = RequestTrace::new(p);
    assert!(
        t.verdict().starts_with("degraded: Causal timed out"),
        "{}",
        t.verdict()
    );
    let text = render_text(&t);
    let line = text
        .lines()
        .find(|l| l.contains("model_id=Causal"))
        .unwrap();
    assert!(line.ends_with(") TIMEOUT ← BOTTLENECK"), "{line}");
    assert!(line.contains(", waiting "), "{line}");
    assert!(
        text.contains("Bottleneck: degraded: Causal timed out (span open "),
        "{text}"
    );
    assert!(
        text.contains("starved: waiting, not running (queued for a worker or the compute pool)"),
        "{text}"
    );
    let failed = text.lines().find(|l| l.starts_with("Failed: ")).unwrap();
    assert!(
        failed.contains("Causal TIMEOUT") && failed.contains("Code ERROR"),
        "{failed}"
    );
}

#[test]
fn text_tree_keeps_orphans_and_survives_malformed_traces() {
    let (slow, _) = captured();
    let mut p = slow.to_parts();
    // A model whose parent never arrived, and two spans parented on each other.
    let model = p.spans.iter().position(|s| s.label() == "Sparse").unwrap();
    p.spans[model].parent = u64::MAX;
    let a = p.spans.iter().position(|s| s.name == "tokenize").unwrap();
    let b = p.spans.iter().position(|s| s.name == "fusion").unwrap();
    let (ida, idb) = (p.spans[a].id, p.spans[b].id);
    p.spans[a].parent = idb;
    p.spans[b].parent = ida;
    p.complete = false;
    // The tree every renderer uses is indexed by the constructor.
    let t = RequestTrace::new(p.clone());
    let text = render_text(&t);
    for s in t.spans() {
        assert_eq!(
            text.matches(&format!("{}{{", s.name)).count()
                + text.matches(&format!("{}: ", s.name)).count(),
            t.spans().iter().filter(|o| o.name == s.name).count(),
            "span {} shown once in\n{text}",
            s.label()
        );
    }
    let sparse = text.lines().find(|l| l.contains("Sparse")).unwrap();
    assert!(
        sparse.starts_with("  model{") && sparse.ends_with("(parent missing)"),
        "{text}"
    );
    assert!(text.contains("Incomplete:"), "{text}");

    p.spans.clear();
    p.attribution = None;
    let text = render_text(&RequestTrace::new(p));
    assert!(text.contains("(no spans recorded)"), "{text}");
    assert!(text.contains("Total: "), "{text}");
}

fn x_events(json: &Value) -> Vec<&Value> {
    json["traceEvents"]
        .as_array()
        .expect("traceEvents array")
        .iter()
        .filter(|e| e["ph"] == "X")
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn pid_of(json: &Value, id: u64) -> Value {
    x_events(json)
        .into_iter()
        .find(|e| e["args"]["request_id"] == id && e["cat"] == "request")
        .map(|e| e["pid"].clone())
        .expect("request root event")
}

/// Complete events on one `(pid, tid)` lane nest: none crosses another's end.
fn assert_lanes_nest(json: &Value) {
    let mut lanes: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in x_events(json) {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let ts = f(&e["ts"]);
        lanes.entry(key).or_default().push((ts, ts + f(&e["dur"])));
    }
    for (lane, mut spans) in lanes {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (s, e) in spans {
            while open.last().is_some_and(|&end| end <= s) {
                open.pop();
            }
            if let Some(&end) = open.last() {
                assert!(
                    e <= end,
                    "lane {lane:?}: [{s}, {e}] crosses an end at {end}"
                );
            }
            open.push(e);
        }
    }
}

#[test]
fn chrome_trace_has_one_complete_event_per_span_with_its_duration() {
    let (slow, fast) = captured();
    let text = serde_json::to_string(&chrome_trace_json(&[slow.clone(), fast.clone()])).unwrap();
    let json: Value = serde_json::from_str(&text).expect("valid JSON");
    let xs = x_events(&json);
    assert_eq!(xs.len(), slow.spans().len() + fast.spans().len());
    for t in [&slow, &fast] {
        let pid = pid_of(&json, t.request_id());
        let mine: Vec<&&Value> = xs.iter().filter(|e| e["pid"] == pid).collect();
        assert_eq!(mine.len(), t.spans().len());
        let by_name: HashMap<&str, &Value> = mine
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), **e))
            .collect();
        for s in t.spans() {
            let e = by_name[s.label()];
            let wall_us = s.wall.as_nanos() as f64 / 1e3;
            assert!((f(&e["dur"]) - wall_us).abs() < 1e-3, "{e} vs {s:?}");
            assert!((f(&e["args"]["busy_ms"]) - s.busy.as_secs_f64() * 1e3).abs() < 1e-6);
            if s.class == SpanClass::Model {
                assert_eq!(e["args"]["model_id"], s.label());
            }
            // Parents enclose their children in time.
            if let Some(p) = t.span(s.parent) {
                let pe = by_name[p.label()];
                assert!(f(&pe["ts"]) <= f(&e["ts"]), "{pe} / {e}");
                assert!(
                    f(&e["ts"]) + f(&e["dur"]) <= f(&pe["ts"]) + f(&pe["dur"]) + 1e-3,
                    "{pe} / {e}"
                );
            }
        }
        let gate = t.attribution().expect("models ran");
        assert_eq!(by_name[gate.model.as_str()]["args"]["bottleneck"], true);
        assert_eq!(
            xs.iter()
                .filter(|e| e["pid"] == pid && e["args"]["bottleneck"] == true)
                .count(),
            1
        );
        assert_eq!(by_name["Code"]["args"]["status"], "error");
    }
}

#[test]
fn chrome_trace_lanes_nest_and_parallel_models_get_their_own() {
    let (slow, fast) = captured();
    let json = chrome_trace_json(&[slow.clone(), fast]);
    assert_lanes_nest(&json);
    // Models never share the pipeline's lane, and models that overlap in time
    // (Causal ran 45 ms beside the others) never share a lane.
    let pid = pid_of(&json, SLOW);
    let xs = x_events(&json);
    let tid = |name: &str| {
        xs.iter()
            .find(|e| e["pid"] == pid && e["name"] == name)
            .map(|e| e["tid"].as_u64().unwrap())
            .unwrap()
    };
    let root_tid = tid("embed_pipeline");
    for stage in ["tokenize", "model_execution", "fusion"] {
        assert_eq!(tid(stage), root_tid, "{stage}");
    }
    let model_tids: Vec<u64> = MODELS.iter().map(|(m, _, _)| tid(m)).collect();
    assert!(!model_tids.contains(&root_tid));
    let model_x: Vec<&Value> = xs
        .iter()
        .filter(|e| e["pid"] == pid && e["cat"] == "model")
        .copied()
        .collect();
    assert_eq!(model_x.len(), MODELS.len());
    for a in &model_x {
        for b in &model_x {
            let overlap = f(&a["ts"]) < f(&b["ts"]) + f(&b["dur"])
                && f(&b["ts"]) < f(&a["ts"]) + f(&a["dur"]);
            if a["name"] != b["name"] && overlap {
                assert_ne!(a["tid"], b["tid"], "{a} / {b}");
            }
        }
    }

    let events = json["traceEvents"].as_array().unwrap();
    let meta = |name: &str, tid: Option<u64>| {
        events
            .iter()
            .find(|e| {
                e["ph"] == "M"
                    && e["pid"] == pid
                    && e["name"] == name
                    && tid.is_none_or(|t| e["tid"] == t)
            })
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        meta("process_name", None),
        "request 42 (degraded, over target)"
    );
    assert_eq!(meta("thread_name", Some(root_tid)), "embed_pipeline");
    let causal_lane = meta("thread_name", Some(tid("Causal")));
    assert!(
        causal_lane.contains("Causal") || causal_lane.ends_with('…'),
        "{causal_lane}"
    );

    // The error event is an instant on the Code span's lane, inside it.
    let code = xs
        .iter()
        .find(|e| e["pid"] == pid && e["name"] == "Code")
        .unwrap();
    let instant = events
        .iter()
        .find(|e| e["ph"] == "i" && e["pid"] == pid)
        .expect("instant event");
    assert_eq!(instant["name"], "model failed");
    assert_eq!(instant["args"]["level"], "ERROR");
    assert_eq!(instant["tid"], code["tid"]);
    let at = f(&instant["ts"]);
    assert!(f(&code["ts"]) <= at && at <= f(&code["ts"]) + f(&code["dur"]));
}

#[test]
fn write_chrome_trace_round_trips_and_names_a_bad_path() {
    let (slow, fast) = captured();
    let traces = [slow, fast];
    let dir = std::env::temp_dir().join(format!("hdrtrace-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    write_chrome_trace(&path, &traces).expect("writable");
    let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("valid JSON");
    let made = chrome_trace_json(&traces);
    let (back, made) = (
        back["traceEvents"].as_array().unwrap(),
        made["traceEvents"].as_array().unwrap(),
    );
    assert_eq!(back.len(), made.len());
    for (b, m) in back.iter().zip(made) {
        assert_eq!(
            (&b["ph"], &b["name"], &b["pid"], &b["tid"]),
            (&m["ph"], &m["name"], &m["pid"], &m["tid"])
        );
        if m["ph"] != "M" {
            assert!((f(&b["ts"]) - f(&m["ts"])).abs() < 1e-6, "{b} / {m}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let bad = dir.join("no-such-dir").join("trace.json");
    let err = write_chrome_trace(&bad, &traces).expect_err("parent missing");
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
    assert!(matches!(err, hdrtrace::ExportError::Io { .. }));
}

#[test]
fn chrome_trace_of_nothing_is_valid() {
    let json = chrome_trace_json(&[]);
    assert_eq!(json["traceEvents"].as_array().map(Vec::len), Some(0));
}

#[test]
fn chrome_trace_lanes_nest_for_overrunning_orphan_and_cyclic_spans() {
    let (slow, _) = captured();
    let mut p = slow.to_parts();
    let at = |p: &hdrtrace::TraceParts, label: &str| {
        p.spans.iter().position(|s| s.label() == label).unwrap()
    };
    // A model and a stage that outlive the root (an aborted task's span).
    let causal = at(&p, "Causal");
    p.spans[causal].wall = p.total * 2;
    let exec = at(&p, "model_execution");
    p.spans[exec].wall = p.total * 2;
    // A model whose parent never arrived, and two stages parented on each other.
    let sparse = at(&p, "Sparse");
    p.spans[sparse].parent = u64::MAX;
    let (a, b) = (at(&p, "tokenize"), at(&p, "fusion"));
    let (ida, idb) = (p.spans[a].id, p.spans[b].id);
    p.spans[a].parent = idb;
    p.spans[b].parent = ida;
    let t = RequestTrace::new(p);
    let json = chrome_trace_json(&[Arc::new(t.clone())]);
    assert_eq!(x_events(&json).len(), t.spans().len());
    assert_lanes_nest(&json);
    let lane = |label: &str| {
        x_events(&json)
            .into_iter()
            .find(|e| e["name"] == label)
            .map(|e| e["tid"].clone())
            .unwrap()
    };
    assert_ne!(lane("model_execution"), lane("embed_pipeline"));
    assert_ne!(lane("Causal"), lane("embed_pipeline"));
}
