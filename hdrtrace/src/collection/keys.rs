//! Model and stage keys interned to small indices into one table of series,
//! under a cap on how many distinct keys of each class get their own series.
//!
//! A key gets a series of its own only while the histograms' [`Account`]
//! can pay for one too ([`SERIES_BYTES`]); past it, a new key goes to the
//! overflow series as one past the cap does.
//!
//! A model key is the record's inline text (its first `INLINE_TEXT` bytes and,
//! for a longer id, the whole id's hash, so two ids are never merged); a stage
//! key is its callsite, then its span name (two callsites of one name share a
//! series). A key past its class's cap is recorded into that class's one
//! overflow series, [`OVERFLOW`]; the first such key is reported once on
//! stderr, and every span recorded there is counted. A model span without a
//! key (its model field empty, or never recorded) is keyed as a stage, by its
//! span name, and counted; the first is reported once on stderr.

use crate::collection::series::{Account, Series, SERIES_BYTES};
use crate::handoff::record::{InlineText, Record, SpanClass};
use rustc_hash::FxHashMap;

pub(crate) use crate::limits::OVERFLOW;

/// One key's series and the name it is published under.
pub(crate) struct Keyed {
    pub(crate) name: String,
    pub(crate) model: bool,
    pub(crate) series: Series,
}

/// The distinct keys of one class, up to a cap.
struct Class {
    cap: usize,
    used: usize,
    overflow: Option<u32>,
    reported: bool,
}

impl Class {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            used: 0,
            overflow: None,
            reported: false,
        }
    }
}

pub(crate) struct Keys {
    // Fx hashing: hit once per record, with short trusted keys.
    models: FxHashMap<InlineText, u32>,
    callsites: FxHashMap<usize, u32>,
    stage_names: FxHashMap<&'static str, u32>,
    pub(crate) table: Vec<Keyed>,
    model_class: Class,
    stage_class: Class,
    /// Spans recorded into an overflow series.
    pub(crate) overflow_spans: u64,
    /// Distinct model keys longer than the inline text (kept apart by hash).
    pub(crate) truncated_keys: u64,
    /// Model spans without a model key (`Counters::missing_model_ids`).
    pub(crate) missing_model_ids: u64,
    /// What every series' histograms are charged, against their share of
    /// `memory_budget`.
    pub(crate) account: Account,
}

impl Keys {
    /// Caps on distinct model and stage keys, and the bytes all their
    /// histograms may take. The two overflow series are charged from the
    /// start, so that every series stays within the limit.
    pub(crate) fn new(max_models: usize, max_stages: usize, histogram_bytes: usize) -> Self {
        let mut account = Account::new(histogram_bytes);
        account.used = 2 * SERIES_BYTES;
        Self {
            account,
            models: FxHashMap::default(),
            callsites: FxHashMap::default(),
            stage_names: FxHashMap::default(),
            table: Vec::new(),
            model_class: Class::new(max_models),
            stage_class: Class::new(max_stages),
            overflow_spans: 0,
            truncated_keys: 0,
            missing_model_ids: 0,
        }
    }

    /// The series index of a span record's key.
    #[inline]
    pub(crate) fn of(&mut self, r: &Record) -> u32 {
        match r.class {
            SpanClass::Model if !r.text.is_empty() => self.model(&r.text),
            SpanClass::Model => self.missing_model_id(r),
            _ => self.stage(r),
        }
    }

    /// A model span without a model key: counted, reported once, and keyed
    /// as a stage.
    #[cold]
    fn missing_model_id(&mut self, r: &Record) -> u32 {
        if self.missing_model_ids == 0 {
            eprintln!(
                "hdrtrace: a model span {:?} ({}) closed without a model id (its model field \
                 empty or never recorded); such spans are recorded as the stage {:?} and \
                 counted in Counters::missing_model_ids (reported once)",
                r.metadata.name(),
                r.metadata.target().escape_debug(),
                r.metadata.name(),
            );
        }
        self.missing_model_ids += 1;
        self.stage(r)
    }

    #[inline]
    pub(crate) fn model(&mut self, text: &InlineText) -> u32 {
        if let Some(&i) = self.models.get(text) {
            return i;
        }
        if self.model_class.used >= self.model_class.cap || !self.account.has_room(SERIES_BYTES) {
            return self.overflow(true, || text.key_name().into_owned());
        }
        if text.is_truncated() {
            self.truncated_keys += 1;
        }
        let i = self.push(text.key_name().into_owned(), true);
        self.model_class.used += 1;
        self.models.insert(*text, i);
        i
    }

    #[inline]
    fn stage(&mut self, r: &Record) -> u32 {
        let site = r.metadata as *const _ as usize;
        if let Some(&i) = self.callsites.get(&site) {
            if Some(i) == self.stage_class.overflow {
                self.overflow_spans += 1;
            }
            return i;
        }
        let name = r.metadata.name();
        let i = match self.stage_names.get(name) {
            Some(&i) => i,
            None if self.stage_class.used >= self.stage_class.cap
                || !self.account.has_room(SERIES_BYTES) =>
            {
                // Callsites are static and few: remembering this one keeps
                // its later spans off the slow path.
                let i = self.overflow(false, || name.to_string());
                self.callsites.insert(site, i);
                return i;
            }
            None => {
                let i = self.push(name.to_string(), false);
                self.stage_class.used += 1;
                self.stage_names.insert(name, i);
                i
            }
        };
        self.callsites.insert(site, i);
        i
    }

    /// The overflow series of a class (made on first use); counts the span.
    /// Model keys past the cap are not remembered, so their number does not
    /// grow the table: each costs a failed lookup instead.
    #[cold]
    fn overflow(&mut self, model: bool, first: impl FnOnce() -> String) -> u32 {
        self.overflow_spans += 1;
        let class = if model {
            &mut self.model_class
        } else {
            &mut self.stage_class
        };
        if let Some(i) = class.overflow {
            return i;
        }
        if !class.reported {
            class.reported = true;
            let (what, field) = if model {
                ("model keys", "max_models")
            } else {
                ("stage names", "max_stages")
            };
            let why = if class.used >= class.cap {
                format!("more than {} distinct {what}", class.cap)
            } else {
                format!(
                    "the histograms of {} {what} took their share of memory_budget \
                     ({} of {} bytes)",
                    class.used,
                    self.account.used,
                    self.account.limit()
                )
            };
            eprintln!(
                "hdrtrace: {why}; spans of {:?} and of every later new one are recorded in \
                 the {OVERFLOW:?} series (TracingConfig::{field} and memory_budget; counted \
                 in Counters::overflow_spans)",
                first()
            );
        }
        let i = self.push_paid(OVERFLOW.to_string(), model);
        let class = if model {
            &mut self.model_class
        } else {
            &mut self.stage_class
        };
        class.overflow = Some(i);
        i
    }

    /// A new series, charged: callers checked there was room.
    fn push(&mut self, name: String, model: bool) -> u32 {
        self.account.used += SERIES_BYTES;
        self.push_paid(name, model)
    }

    fn push_paid(&mut self, name: String, model: bool) -> u32 {
        self.table.push(Keyed {
            name,
            model,
            series: Series::paid(),
        });
        (self.table.len() - 1) as u32
    }

    /// The series of a key.
    #[inline]
    pub(crate) fn series(&mut self, i: u32) -> &mut Series {
        &mut self.table[i as usize].series
    }

    /// The series of a key and the account its histograms charge.
    #[inline]
    pub(crate) fn series_and_account(&mut self, i: u32) -> (&mut Series, &mut Account) {
        (&mut self.table[i as usize].series, &mut self.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    #[test]
    fn long_keys_sharing_a_prefix_stay_apart_and_are_found_by_their_name() {
        let prefix = "a-model-id-that-is-longer-than-forty-bytes-in-all";
        let alpha = InlineText::from_str_truncated(&format!("{prefix}-alpha"));
        let beta = InlineText::from_str_truncated(&format!("{prefix}-beta"));
        assert!(alpha.is_truncated() && beta.is_truncated());
        assert_eq!(alpha.as_str(), beta.as_str());
        assert_ne!(alpha, beta);
        // Written in pieces, as `%display` formatting does, it is the same key.
        let mut pieces = InlineText::default();
        for part in [prefix, "-al", "pha"] {
            pieces.write_str(part).unwrap();
        }
        assert_eq!(pieces, alpha);
        assert_ne!(alpha.key_name(), beta.key_name());
        let mut keys = Keys::new(8, 8, usize::MAX);
        let a = keys.model(&alpha);
        let b = keys.model(&beta);
        assert_ne!(a, b);
        assert_eq!(keys.truncated_keys, 2);
    }

    /// A model span without a key is counted and keyed by its span name;
    /// one with a key never is.
    #[test]
    fn a_model_span_without_a_key_is_counted() {
        let record = crate::handoff::record::model_span;
        let mut keys = Keys::new(8, 8, usize::MAX);
        let named = keys.of(&record("Causal"));
        let missing = [keys.of(&record("")), keys.of(&record(""))];
        assert_eq!(keys.missing_model_ids, 2);
        assert_eq!(missing[0], missing[1]);
        assert_ne!(named, missing[0]);
        let stage = &keys.table[missing[0] as usize];
        assert_eq!((stage.name.as_str(), stage.model), ("test", false));
    }

    #[test]
    fn keys_past_the_cap_share_one_overflow_series() {
        let mut keys = Keys::new(2, 1, usize::MAX);
        let ids: Vec<u32> = ["a", "b", "c", "d", "a"]
            .iter()
            .map(|k| keys.model(&InlineText::from_str_truncated(k)))
            .collect();
        assert_eq!(ids[0], ids[4]);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[2], ids[3], "c and d overflow together");
        assert_eq!(keys.table[ids[2] as usize].name, OVERFLOW);
        assert_eq!(keys.overflow_spans, 2);
        assert_eq!(keys.table.len(), 3);
    }

    #[test]
    fn keys_past_the_histograms_account_share_the_overflow_series() {
        // Room for the two overflow series and three more.
        let mut keys = Keys::new(100, 100, 5 * SERIES_BYTES);
        let ids: Vec<u32> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| keys.model(&InlineText::from_str_truncated(k)))
            .collect();
        assert_eq!(ids[3], ids[4], "d and e overflow together");
        assert_eq!(keys.table[ids[3] as usize].name, OVERFLOW);
        assert_eq!(keys.overflow_spans, 2);
        assert_eq!(keys.account.used, 5 * SERIES_BYTES);
    }
}
