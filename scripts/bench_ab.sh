#!/bin/bash
# Interleaved A/B of span_overhead bench binaries built from different commits,
# in its global group: the floor from the first binary, then hdrtrace_enabled
# from each, ROUNDS times (bench_variants.sh does the rounds).
# Build each with `cargo bench -p hdrtrace --all-features --bench span_overhead --no-run`
# and copy the executable it names aside. (Before session 6 the global group
# was its own bench, span_global; its binaries run the same way.)
# usage: bench_ab.sh ROUNDS BIN...
R=$1; shift
exec "$(dirname "$0")/bench_variants.sh" "$R" "$1" floor $(for b in "$@"; do echo "$b:hdrtrace_enabled"; done)
