//! A target filter in the `RUST_LOG` shape (`my_service=debug,hyper=off,info`),
//! parsed once and evaluated once per callsite, never per span.

use crate::error::ConfigError;
use tracing_core::{Level, LevelFilter};

/// Parsed directives: the most specific target prefix decides; a directive
/// without a target is the default (everything when no directive is given at
/// all; nothing beyond the targets named otherwise).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetFilter {
    /// `(target, most verbose level admitted)`, longest target first.
    targets: Vec<(String, LevelFilter)>,
    default: LevelFilter,
}

/// The most directives one filter may hold.
pub const MAX_DIRECTIVES: usize = 256;
/// The longest filter string accepted.
pub const MAX_FILTER_LEN: usize = 16 * 1024;

fn level(s: &str) -> Option<LevelFilter> {
    Some(match s.to_ascii_lowercase().as_str() {
        "off" => LevelFilter::OFF,
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => return None,
    })
}

/// Why no callsite's target can be `target`, if none can: a target is a
/// module path (`my_crate::db`), identifiers joined by `::`.
fn unmatchable(target: &str) -> Option<&'static str> {
    if target.is_empty() {
        return Some("has an empty target");
    }
    if target
        .contains(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '{' | '}' | '"' | '='))
    {
        return Some(
            "has a target with characters no Rust target has (span and field filters are not \
             supported)",
        );
    }
    if target.contains('*') {
        return Some(
            "has `*`, which is no wildcard here: a bare level (`debug`) sets the default for \
             every target, and `my_crate` covers `my_crate::*`",
        );
    }
    if target.contains('-') {
        return Some(
            "has a target with `-`, which no Rust target has (targets are module paths: a \
             crate `my-crate` is `my_crate`)",
        );
    }
    let identifier = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !target.split("::").all(identifier) {
        return Some("has a target that is not a module path (identifiers joined by `::`)");
    }
    None
}

impl TargetFilter {
    /// Parses `target=level`, `level` and bare `target` (everything from that
    /// target) directives, comma-separated. Empty directives between commas
    /// are ignored, as tracing-subscriber's `EnvFilter` ignores them, so `""`
    /// and `",,,"` alike record every target. A directive that cannot match
    /// any target (one that is not a module path: `my-crate`, `*`,
    /// `a::`) is an error naming it.
    pub(crate) fn parse(spec: &str) -> Result<Self, ConfigError> {
        let bad = |directive: &str, why: &str| {
            ConfigError::invalid(
                "filter",
                format!("directive {directive:?} {why} (expected e.g. `my_service=debug,hyper=off,info`)"),
            )
        };
        if spec.len() > MAX_FILTER_LEN {
            return Err(ConfigError::invalid(
                "filter",
                format!("must be at most {MAX_FILTER_LEN} bytes, got {}", spec.len()),
            ));
        }
        let mut targets: Vec<(String, LevelFilter)> = Vec::new();
        let mut default = None;
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            if targets.len() >= MAX_DIRECTIVES {
                return Err(ConfigError::invalid(
                    "filter",
                    format!("may hold at most {MAX_DIRECTIVES} directives"),
                ));
            }
            let (target, lvl) = match directive.split_once('=') {
                Some((t, l)) => {
                    let l = level(l.trim()).ok_or_else(|| {
                        bad(
                            directive,
                            "has an unknown level (off, error, warn, info, debug or trace)",
                        )
                    })?;
                    (Some(t.trim()), l)
                }
                None => match level(directive) {
                    Some(l) => (None, l),
                    None => (Some(directive), LevelFilter::TRACE),
                },
            };
            match target {
                None => default = Some(lvl),
                Some(t) => {
                    if let Some(why) = unmatchable(t) {
                        return Err(bad(directive, why));
                    }
                    targets.retain(|(known, _)| known != t);
                    targets.push((t.to_string(), lvl));
                }
            }
        }
        targets.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        let default = default.unwrap_or(if targets.is_empty() {
            LevelFilter::TRACE
        } else {
            LevelFilter::OFF
        });
        Ok(Self { targets, default })
    }

    /// Whether a callsite of this target and level passes.
    pub(crate) fn admits(&self, target: &str, level: Level) -> bool {
        let limit = self
            .targets
            .iter()
            .find(|(t, _)| {
                target == t
                    || target
                        .strip_prefix(t.as_str())
                        .is_some_and(|rest| rest.starts_with("::"))
            })
            .map_or(self.default, |(_, l)| *l);
        limit >= level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_target_decides() {
        let f = TargetFilter::parse("my_service=debug,hyper=off,info").unwrap();
        assert!(f.admits("my_service", Level::DEBUG));
        assert!(f.admits("my_service::models", Level::DEBUG));
        assert!(!f.admits("my_service", Level::TRACE));
        assert!(!f.admits("hyper", Level::ERROR));
        assert!(!f.admits("hyper::proto::h1", Level::ERROR));
        assert!(
            f.admits("hyperion", Level::INFO),
            "a prefix only counts at ::"
        );
        assert!(!f.admits("hyperion", Level::DEBUG));
        assert!(f.admits("tonic", Level::INFO));
        let only = TargetFilter::parse("my_service").unwrap();
        assert!(only.admits("my_service", Level::TRACE));
        assert!(
            !only.admits("other", Level::ERROR),
            "no default: only the targets named"
        );
        for empty in ["", ",,,", " , "] {
            assert_eq!(
                TargetFilter::parse(empty).unwrap(),
                TargetFilter::parse("").unwrap()
            );
        }
        assert!(TargetFilter::parse("").unwrap().admits("x", Level::TRACE));
    }

    #[test]
    fn invalid_directives_are_named() {
        for (spec, named) in [
            ("hyper=loud", "\"hyper=loud\""),
            ("info,=debug", "\"=debug\""),
            ("my span=info", "\"my span=info\""),
            ("app[request]=info", "\"app[request]=info\""),
            ("my-crate=debug", "\"my-crate=debug\""),
            ("*=debug", "\"*=debug\""),
            ("a::=debug", "\"a::=debug\""),
        ] {
            let e = TargetFilter::parse(spec).unwrap_err().to_string();
            assert!(e.contains("`filter`") && e.contains(named), "{e}");
        }
    }
}
