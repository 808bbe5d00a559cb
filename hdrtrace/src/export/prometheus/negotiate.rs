//! Content negotiation: the exposition a scrape's `Accept` header picks, read
//! by one parser of media ranges.

use super::buckets::Buckets;
use super::{render_protobuf, render_with, Format, PROTOBUF_CONTENT_TYPE};
use crate::read::snapshot::LatencySnapshot;

/// What a scrape is answered in: Prometheus's protobuf exposition, or text
/// in a [`Format`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// Length-delimited `MetricFamily` messages ([`render_protobuf`]), every
    /// histogram classic and native at once.
    Protobuf,
    /// Exposition text in this format ([`render_with`]).
    Text(Format),
}

impl Exposition {
    /// The exposition to answer a request with this `Accept` header in:
    /// [`Exposition::Protobuf`] when the header names
    /// `application/vnd.google.protobuf` with
    /// `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`, at
    /// a weight above zero and no lower than that of any text format it
    /// names (`application/openmetrics-text`, `text/plain`); otherwise text
    /// in the format [`Format::negotiate`] picks. `*/*` does not ask for
    /// protobuf. Weights are read as [`Format::negotiate`] documents.
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        let weights = Weights::of(accept);
        if weights.protobuf > 0.0 && weights.protobuf >= weights.openmetrics.max(weights.text) {
            Exposition::Protobuf
        } else {
            Exposition::Text(weights.text_format())
        }
    }

    /// The `Content-Type` an answer in this exposition carries.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Protobuf => PROTOBUF_CONTENT_TYPE,
            Exposition::Text(format) => format.content_type(),
        }
    }

    /// The snapshot in this exposition, histogram bounds `buckets`: the body
    /// of an answer.
    pub fn render(self, snapshot: &LatencySnapshot, buckets: &Buckets) -> Vec<u8> {
        match self {
            Exposition::Protobuf => render_protobuf(snapshot, buckets),
            Exposition::Text(format) => render_with(snapshot, format, buckets).into_bytes(),
        }
    }
}

/// The highest weight an `Accept` header gives each exposition, 0 for one
/// it does not name (or names only at `q=0`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Weights {
    protobuf: f32,
    openmetrics: f32,
    text: f32,
}

impl Weights {
    /// The weights of `accept`; none at all without a header.
    pub(super) fn of(accept: Option<&str>) -> Weights {
        let mut weights = Weights::default();
        for range in media_ranges(accept.unwrap_or("")) {
            let slot = if range.is("application/vnd.google.protobuf") {
                let proto = range.param("proto") == Some("io.prometheus.client.MetricFamily");
                let delimited = range
                    .param("encoding")
                    .is_some_and(|e| e.eq_ignore_ascii_case("delimited"));
                if !(proto && delimited) {
                    continue;
                }
                &mut weights.protobuf
            } else if range.is("application/openmetrics-text") {
                &mut weights.openmetrics
            } else if range.is("text/plain") {
                &mut weights.text
            } else {
                continue;
            };
            *slot = slot.max(range.q);
        }
        weights
    }

    /// [`Format::Text`] when `text/plain` is acceptable and
    /// `application/openmetrics-text` is not; otherwise
    /// [`Format::OpenMetrics`].
    pub(super) fn text_format(self) -> Format {
        if self.text > 0.0 && self.openmetrics <= 0.0 {
            Format::Text
        } else {
            Format::OpenMetrics
        }
    }
}

/// One media range of an `Accept` header (RFC 9110, section 12.5.1).
struct MediaRange<'a> {
    /// `type/subtype`, whitespace trimmed; compared ignoring ASCII case.
    media: &'a str,
    /// The `;`-separated parameters after it, as written.
    params: &'a str,
    /// Its weight: `q`, read by [`weight`]; 1 where it has none.
    q: f32,
}

impl<'a> MediaRange<'a> {
    fn is(&self, media: &str) -> bool {
        self.media.eq_ignore_ascii_case(media)
    }

    /// The value of the parameter `name` (names compared ignoring ASCII
    /// case), whitespace and quotes trimmed; the last one where it is given
    /// twice.
    fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .rsplit(';')
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().trim_matches('"'))
    }
}

/// The media ranges of a comma-separated `Accept` list, in order.
fn media_ranges(accept: &str) -> impl Iterator<Item = MediaRange<'_>> {
    accept.split(',').map(|range| {
        let (media, params) = range.split_once(';').unwrap_or((range, ""));
        let mut range = MediaRange {
            media: media.trim(),
            params,
            q: 1.0,
        };
        if let Some(q) = range.param("q") {
            range.q = weight(q);
        }
        range
    })
}

/// The weight a `q` value gives its range (RFC 9110, section 12.4.2: a
/// number from 0 to 1). A malformed one (not a number, or outside 0..=1)
/// counts as `q=0`: the range is not acceptable, since what the client
/// meant by it cannot be read.
fn weight(q: &str) -> f32 {
    q.parse::<f32>()
        .ok()
        .filter(|q| (0.0..=1.0).contains(q))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protobuf(accept: Option<&str>) -> bool {
        Exposition::negotiate(accept) == Exposition::Protobuf
    }

    #[test]
    fn protobuf_only_when_named_and_preferred() {
        let prometheus = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                          encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,\
                          application/openmetrics-text;version=0.0.1;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (Some(prometheus), true),
            (Some(PROTOBUF_CONTENT_TYPE), true),
            (
                Some("Application/Vnd.Google.Protobuf; Proto=io.prometheus.client.MetricFamily; Encoding=\"delimited\""),
                true,
            ),
            (None, false),
            (Some("*/*"), false),
            (Some("application/vnd.google.protobuf"), false),
            (
                Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"),
                false,
            ),
            (
                Some("application/vnd.google.protobuf;proto=other.Message;encoding=delimited"),
                false,
            ),
            (
                Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"),
                false,
            ),
            (Some(&format!("{PROTOBUF_CONTENT_TYPE};q=0")), false),
            (Some(&format!("{PROTOBUF_CONTENT_TYPE};q=abc")), false),
            (Some(&format!("{PROTOBUF_CONTENT_TYPE};q=0.4,text/plain;q=0.5")), false),
            (Some(&format!("text/plain;q=0.5,{PROTOBUF_CONTENT_TYPE};q=0.5")), true),
            (Some(",,;;q=,;proto="), false),
        ] {
            assert_eq!(protobuf(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn every_range_reads_its_weight_the_same_way() {
        // `Q=0`, `q = 0` and an unreadable `q` all refuse a range, whichever
        // exposition it names.
        for q in ["Q=0", " q = 0 ", "q=abc", "q=", "q=1.5", "q=-1", "q=NaN"] {
            let accept = format!("{PROTOBUF_CONTENT_TYPE};{q}");
            assert_eq!(
                Exposition::negotiate(Some(&accept)),
                Exposition::Text(Format::OpenMetrics),
                "{accept:?}"
            );
            let accept = format!("{PROTOBUF_CONTENT_TYPE};{q}, text/plain");
            assert_eq!(
                Exposition::negotiate(Some(&accept)),
                Exposition::Text(Format::Text),
                "{accept:?}"
            );
            let accept = format!("text/plain;{q}");
            assert_eq!(
                Format::negotiate(Some(&accept)),
                Format::OpenMetrics,
                "{accept:?}"
            );
            let accept = format!("text/plain;{q}, {PROTOBUF_CONTENT_TYPE};q=0.1");
            assert!(protobuf(Some(&accept)), "{accept:?}");
            let accept = format!("application/openmetrics-text;{q}, text/plain");
            assert_eq!(Format::negotiate(Some(&accept)), Format::Text, "{accept:?}");
            let accept = format!("application/openmetrics-text;{q}, {PROTOBUF_CONTENT_TYPE};q=0.1");
            assert!(protobuf(Some(&accept)), "{accept:?}");
        }
    }

    #[test]
    fn weights_are_trimmed_and_case_blind() {
        for q in ["Q=0.5", " q = 0.5 ", "q=\"0.5\""] {
            let accept = format!("text/plain;{q}, {PROTOBUF_CONTENT_TYPE};q=0.4");
            assert_eq!(
                Exposition::negotiate(Some(&accept)),
                Exposition::Text(Format::Text),
                "{accept:?}"
            );
            let accept = format!("text/plain;q=0.4, {PROTOBUF_CONTENT_TYPE};{q}");
            assert!(protobuf(Some(&accept)), "{accept:?}");
        }
    }
}
