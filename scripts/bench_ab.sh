#!/bin/bash
# Interleaved A/B of span_global bench binaries built from different commits:
# the floor from the first binary, then hdrtrace_enabled from each, ROUNDS
# times (bench_variants.sh does the rounds).
# Build each with `cargo bench -p hdrtrace --all-features --bench span_global --no-run`
# and copy target/release/deps/span_global-<hash> aside.
# usage: bench_ab.sh ROUNDS BIN...
R=$1; shift
exec "$(dirname "$0")/bench_variants.sh" "$R" "$1" floor $(for b in "$@"; do echo "$b:hdrtrace_enabled"; done)
