//! The demo's flag values: durations, reference model names, `MODEL=DURATION`
//! and `MODEL=SIZE/WAIT` specs. Each parser returns a message saying what was
//! expected, which clap prints.

use hdrtrace_pipeline::reference::REFERENCE_MODELS;
use hdrtrace_pipeline::{BatchConfig, ModelId};
use std::time::Duration;

/// The longest duration a flag accepts.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A duration with a unit: `250us`, `180ms`, `1.5s` (also `µs`), at most an
/// hour.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || {
        format!("invalid duration {s:?}: expected 0ms to 1h with a unit (us, ms, s), e.g. 180ms")
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 || secs > MAX_DURATION.as_secs_f64() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A [`duration`] of at most `max` (`--launch-cost`, `--batch-wait`).
pub fn duration_at_most(s: &str, max: Duration) -> Result<Duration, String> {
    let d = duration(s)?;
    if d > max {
        return Err(format!("expected at most {max:?}, got {s:?}"));
    }
    Ok(d)
}

/// One of the reference models: its name in any case, `E1` to `E12`, or the
/// aliases `longformer` (LongContext) and `colbert` (LateInteraction).
pub fn model(s: &str) -> Result<ModelId, String> {
    let t = s.trim();
    let by_name = |name: &str| {
        REFERENCE_MODELS
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    };
    let alias = match t.to_ascii_lowercase().as_str() {
        "longformer" => "LongContext",
        "colbert" => "LateInteraction",
        _ => t,
    };
    let numbered = t
        .strip_prefix(['E', 'e'])
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| REFERENCE_MODELS.get(i));
    by_name(alias).or(numbered).map(|m| m.id()).ok_or_else(|| {
        let names: Vec<&str> = REFERENCE_MODELS.iter().map(|m| m.name).collect();
        format!(
            "unknown model {s:?}: expected one of {} (or E1 to E{})",
            names.join(", "),
            names.len()
        )
    })
}

/// `MODEL=DURATION`, e.g. `Causal=180ms`.
pub fn slow(s: &str) -> Result<(ModelId, Duration), String> {
    let (m, d) = s
        .split_once('=')
        .ok_or_else(|| format!("expected MODEL=DURATION, e.g. Causal=180ms, got {s:?}"))?;
    Ok((model(m)?, duration(d)?))
}

/// One model's batching: `Causal=32/5ms` (batches of up to 32 inputs,
/// waiting at most 5 ms), or `Causal=off` (`None`).
pub fn batch(s: &str) -> Result<(ModelId, Option<BatchConfig>), String> {
    let form = || {
        format!(
            "invalid batch spec {s:?}: expected MODEL=SIZE/WAIT (e.g. Causal=32/5ms) or MODEL=off"
        )
    };
    let (m, batching) = s.split_once('=').ok_or_else(form)?;
    let m = model(m)?;
    let batching = batching.trim();
    if batching.eq_ignore_ascii_case("off") {
        return Ok((m, None));
    }
    let (size, wait) = batching.split_once('/').ok_or_else(form)?;
    let size = size.trim().parse().map_err(|_| form())?;
    let wait = duration(wait).map_err(|_| form())?;
    let config = BatchConfig::new(size, wait).map_err(|e| e.to_string())?;
    Ok((m, Some(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_names_and_specs_parse() {
        assert_eq!(duration("180ms"), Ok(Duration::from_millis(180)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("250us"), Ok(Duration::from_micros(250)));
        let max = Duration::from_millis(5);
        assert_eq!(duration_at_most("5ms", max), Ok(max));
        assert_eq!(model("e5").unwrap(), "LongContext");
        assert_eq!(model("longformer").unwrap(), "LongContext");
        assert_eq!(model("ColBERT").unwrap(), "LateInteraction");
        assert_eq!(model("causal").unwrap(), "Causal");
        assert_eq!(slow("Causal=180ms").unwrap().1, Duration::from_millis(180));
        let (m, config) = batch("Causal=32/5ms").unwrap();
        assert_eq!(m, "Causal");
        let config = config.unwrap();
        assert_eq!(
            (config.max_size(), config.max_wait()),
            (32, Duration::from_millis(5))
        );
        assert_eq!(
            batch("e5=OFF").unwrap(),
            (ModelId::new("LongContext"), None)
        );
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        for (bad, want) in [
            ("180", "with a unit"),
            ("180h", "with a unit"),
            ("2h", "0ms to 1h"),
            ("1.2.3ms", "with a unit"),
        ] {
            let err = duration(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        let max = Duration::from_millis(5);
        assert_eq!(
            duration_at_most("6ms", max).unwrap_err(),
            "expected at most 5ms, got \"6ms\""
        );
        assert!(duration_at_most("6", max)
            .unwrap_err()
            .contains("with a unit"));
        for bad in ["", "E0", "E13", "Causa", "e-1"] {
            let err = model(bad).unwrap_err();
            assert!(err.contains("expected one of"), "{bad}: {err}");
        }
        assert!(slow("Causal").unwrap_err().contains("MODEL=DURATION"));
        for (spec, want) in [
            ("Causal", "expected MODEL=SIZE/WAIT"),
            ("Causal=32", "expected MODEL=SIZE/WAIT"),
            ("Causal=x/5ms", "expected MODEL=SIZE/WAIT"),
            ("Causal=32/5", "expected MODEL=SIZE/WAIT"),
            ("Nope=32/5ms", "unknown model"),
            ("Causal=0/5ms", "batch size 0"),
            ("Causal=8/20s", "batch wait"),
        ] {
            let err = batch(spec).unwrap_err();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
