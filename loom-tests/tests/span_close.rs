//! Loom models of how a span is closed (`src/recording/refcount.rs` and
//! `src/recording/split_sum.rs`, as `Core::try_close` and `SpanSlot` use
//! them): holders on several threads add busy time and count descendants,
//! then drop their handles; exactly one drop is the last, and the thread
//! that makes it reads every tick and every descendant, whichever path
//! (the single-handle shortcut or the decrement) it took.

use hdrtrace_loom_tests::{Arc, RefCount, SplitSum};
use loom::thread;

/// What the slot keeps for one span, as far as closing it goes.
#[derive(Default)]
struct Span {
    refs: RefCount,
    busy: SplitSum,
    descendants: SplitSum,
}

impl Span {
    /// A new tenant: one handle, zero sums (as `SpanSlot::open` sets them).
    fn open(&self) {
        self.refs.reset();
        self.busy.reset();
        self.descendants.reset();
    }
}

/// Runs `model` under loom with a preemption bound of 3 (enough for the
/// three threads' interleavings these models need, and quick).
fn check_bounded(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(model);
}

/// A holder's work: busy time and a child, then its handle dropped. Returns
/// the sums read when this drop was the last one (as `close_into` reads
/// them), or `None`.
fn use_and_drop(span: &Span, ticks: u64, by_owner: bool) -> Option<(u64, u64)> {
    span.busy.add(ticks, by_owner);
    span.descendants.add(1, by_owner);
    span.refs
        .release()
        .then(|| (span.busy.get(), span.descendants.get()))
}

/// The closes that were the last among `results`: exactly one, with every
/// holder's additions in it.
fn the_one_close(results: impl IntoIterator<Item = Option<(u64, u64)>>) -> (u64, u64) {
    let closes: Vec<_> = results.into_iter().flatten().collect();
    assert_eq!(closes.len(), 1, "last drops: {closes:?}");
    closes[0]
}

/// The owner and two other threads each hold a handle (three in all, made
/// by the owner before it hands them over): one of them closes the span and
/// it reads all 1 + 10 + 100 ticks and 3 descendants.
#[test]
fn one_holder_closes_and_reads_every_thread_s_additions() {
    check_bounded(|| {
        let span = Arc::new(Span::default());
        span.open();
        let others: Vec<_> = [10, 100]
            .into_iter()
            .map(|ticks| {
                span.refs.add();
                let span = span.clone();
                thread::spawn(move || use_and_drop(&span, ticks, false))
            })
            .collect();
        let mine = use_and_drop(&span, 1, true);
        let theirs = others.into_iter().map(|t| t.join().unwrap());
        let closed = the_one_close(std::iter::once(mine).chain(theirs));
        assert_eq!(closed, (111, 3));
    });
}

/// A holder on another thread clones its handle for a third thread and drops
/// its own while the owner drops the first: the count never reads 1 while
/// two handles are alive, so the owner's shortcut cannot close the span
/// under the third thread, and the one close still reads everything.
#[test]
fn a_clone_made_on_another_thread_keeps_the_span_open() {
    check_bounded(|| {
        let span = Arc::new(Span::default());
        span.open();
        span.refs.add();
        let second = span.clone();
        let relay = thread::spawn(move || {
            second.refs.add();
            let third = second.clone();
            let last = thread::spawn(move || use_and_drop(&third, 100, false));
            let mine = use_and_drop(&second, 10, false);
            [mine, last.join().unwrap()]
        });
        let mine = use_and_drop(&span, 1, true);
        let theirs = relay.join().unwrap();
        let closed = the_one_close(std::iter::once(mine).chain(theirs));
        assert_eq!(closed, (111, 3));
    });
}

/// A span with one handle closes through the shortcut on its first drop,
/// and a slot's next tenant starts from one handle and zero sums.
#[test]
fn a_single_handle_closes_at_once_and_a_reset_starts_over() {
    loom::model(|| {
        let span = Span::default();
        span.open();
        assert_eq!(use_and_drop(&span, 5, true), Some((5, 1)));
        span.open();
        span.refs.add();
        assert_eq!(use_and_drop(&span, 2, true), None);
        assert_eq!(use_and_drop(&span, 3, true), Some((5, 2)));
    });
}
