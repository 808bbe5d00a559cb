//! Loom models of a span's inline links (`src/recording/links.rs`): threads
//! holding the span link it at once; the thread that drops the last reference
//! (through the span's real `RefCount`, as `Core::try_close` does) reads
//! every kept link, and past `MAX_LINKS` each further link is refused (and
//! counted by the caller), never written over a kept one.

use hdrtrace_loom_tests::{Arc, LinkSlots, RefCount, MAX_LINKS};
use loom::thread;

/// One span with its reference count, as a slot holds them.
#[derive(Default)]
struct Span {
    refs: RefCount,
    links: LinkSlots,
}

/// Drops one reference; the last one reads the links (`try_close`).
fn release(span: &Span) -> Option<Vec<u64>> {
    if !span.refs.release() {
        return None;
    }
    let mut out = [0; MAX_LINKS];
    let n = span.links.read(&mut out);
    Some(out[..n].to_vec())
}

/// Links `ids` to `span`; returns the ones kept.
fn link_all(span: &Span, ids: &[u64]) -> Vec<u64> {
    ids.iter()
        .copied()
        .filter(|&id| span.links.add(id))
        .collect()
}

/// Three holders link 2 spans each (6 links, 4 places): exactly `MAX_LINKS`
/// are kept, 2 refused, and whoever closes the span reads exactly the kept
/// ones, each once.
#[test]
fn the_last_holder_reads_every_kept_link_and_no_more() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let span = Arc::new(Span::default());
        span.refs.reset();
        let holders: Vec<_> = [[11, 12], [21, 22]]
            .into_iter()
            .map(|ids| {
                span.refs.add();
                let span = span.clone();
                thread::spawn(move || (link_all(&span, &ids), release(&span)))
            })
            .collect();
        let mut kept = link_all(&span, &[31, 32]);
        let mut read = release(&span);
        for h in holders {
            let (k, r) = h.join().unwrap();
            kept.extend(k);
            read = read.or(r);
        }
        let mut read = read.expect("one holder dropped the last reference");
        assert_eq!(kept.len(), MAX_LINKS, "kept {kept:?}");
        read.sort_unstable();
        kept.sort_unstable();
        assert_eq!(read, kept, "the closer read other links than were kept");
    });
}

/// A slot's next tenant starts with no links: a stale link count cannot
/// expose the previous tenant's IDs, and it fills its own places again.
#[test]
fn a_reset_slot_keeps_only_its_new_tenants_links() {
    loom::model(|| {
        let links = Arc::new(LinkSlots::default());
        let l2 = links.clone();
        let t = thread::spawn(move || {
            for id in 1..=MAX_LINKS as u64 + 1 {
                l2.add(id);
            }
        });
        t.join().unwrap();
        assert_eq!(links.kept(), MAX_LINKS);
        links.reset();
        assert_eq!(links.kept(), 0);
        let l3 = links.clone();
        let t = thread::spawn(move || assert!(l3.add(100)));
        assert!(links.add(200));
        t.join().unwrap();
        let mut out = [0; MAX_LINKS];
        let n = links.read(&mut out);
        let mut got = out[..n].to_vec();
        got.sort_unstable();
        assert_eq!(got, [100, 200]);
    });
}
