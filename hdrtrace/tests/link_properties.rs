//! Property test of links through the whole path (subscriber, rings,
//! aggregator, captured traces): for any pattern of `follows_from` calls
//! between requests' model spans and one batch, a span keeps its first
//! `MAX_LINKS` links and counts the rest as dropped, and a request carries
//! the batch exactly when its model span's link to it was kept.
//!
//! One test in this file: scoped subscribers built on several test threads at
//! once race in tracing-core's interest cache.

use hdrtrace::{limits, SpanClass, TracingConfig};
use proptest::prelude::*;

/// What one request's model span does: `extra` links to its own root first,
/// then (`to_batch`) a link to the batch; and whether the batch links back.
#[derive(Debug, Clone)]
struct Request {
    extra: usize,
    to_batch: bool,
    from_batch: bool,
}

fn requests() -> impl Strategy<Value = Vec<Request>> {
    prop::collection::vec(
        (0usize..6, any::<bool>(), any::<bool>()).prop_map(|(extra, to_batch, from_batch)| {
            Request {
                extra,
                to_batch,
                from_batch,
            }
        }),
        1..7,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn spans_keep_their_first_links_and_requests_carry_their_batch(reqs in requests()) {
        let (subscriber, guard) = hdrtrace::build(&TracingConfig {
            sampling_rate: 1.0,
            ..TracingConfig::default()
        })
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let batch =
                tracing::info_span!(parent: None, "batch", model_id = "Causal", batch_size = 3u64);
            let mut open = Vec::new();
            for (i, r) in reqs.iter().enumerate() {
                let root = tracing::info_span!("embed_pipeline", request_id = i as u64 + 1);
                let model = tracing::info_span!(parent: &root, "model", model_id = "Causal");
                for _ in 0..r.extra {
                    model.follows_from(root.id());
                }
                if r.to_batch {
                    model.follows_from(batch.id());
                }
                if r.from_batch {
                    batch.follows_from(model.id());
                }
                open.push((root, model));
            }
            drop(batch);
            drop(open);
        });
        let snapshot = guard.flushed_snapshot();

        let over = |n: usize| n.saturating_sub(limits::MAX_LINKS) as u64;
        let model_drops: u64 = reqs.iter().map(|r| over(r.extra + r.to_batch as usize)).sum();
        let batch_drops = over(reqs.iter().filter(|r| r.from_batch).count());
        prop_assert_eq!(snapshot.counters().dropped_links, model_drops + batch_drops);

        let kept = |r: &Request| r.to_batch && r.extra < limits::MAX_LINKS;
        let mut served: Vec<u64> = (1..=reqs.len() as u64)
            .filter(|&id| kept(&reqs[id as usize - 1]))
            .collect();
        served.sort_unstable();
        prop_assert_eq!(snapshot.captured().len(), reqs.len());
        for t in snapshot.captured() {
            let r = &reqs[t.request_id() as usize - 1];
            let model = t.models().next().unwrap();
            let batch = t.spans().iter().find(|s| s.class == SpanClass::Batch);
            prop_assert_eq!(batch.is_some(), kept(r), "{:?}: {:?}", r, t.spans());
            let share = t.attribution().unwrap().batch.as_ref();
            // Its links to its own root, kept up to MAX_LINKS, are in the trace.
            let mut expected: Vec<u64> = (r.extra > 0).then_some(t.root().unwrap().id).into_iter().collect();
            expected.extend(batch.map(|b| b.id));
            let mut links = model.links.clone();
            links.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(links, expected);
            match batch {
                Some(b) => {
                    prop_assert!(b.shared);
                    prop_assert_eq!(&b.links, &vec![model.id]);
                    let share = share.expect("a batched bottleneck has a share");
                    prop_assert_eq!(share.span, b.id);
                    prop_assert_eq!(share.size, 3);
                    // Those whose links had arrived when this one was judged:
                    // its own, and only requests the batch served.
                    prop_assert!(share.requests.contains(&t.request_id()));
                    prop_assert!(share.requests.iter().all(|id| served.contains(id)));
                }
                None => prop_assert!(share.is_none()),
            }
        }
    }
}
