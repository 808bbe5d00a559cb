#!/bin/bash
# Interleaved A/B of span_global bench binaries built from different commits:
# the floor from the first binary, then hdrtrace_enabled from each, ROUNDS times.
# Build each with `cargo bench -p hdrtrace --all-features --bench span_global --no-run`
# and copy target/release/deps/span_global-<hash> aside.
# usage: ab2.sh ROUNDS BIN...  -> floor (from the first BIN) and ours per BIN, interleaved; prints sorted lists + median
R=$1; shift
declare -A O; FL=""
for r in $(seq $R); do
  FL="$FL $(HDRTRACE_GLOBAL_VARIANT=floor $1 --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E "^\s+time:" | awk '{print $4}')"
  for B in "$@"; do
    O[$B]="${O[$B]} $(HDRTRACE_GLOBAL_VARIANT=hdrtrace_enabled $B --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E "^\s+time:" | awk '{print $4}')"
  done
done
med() { echo $@ | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo "floor: $(echo $FL | tr ' ' '\n' | sort -n | tr '\n' ' ') median $(med $FL)"
for B in "$@"; do echo "$(basename $B): $(echo ${O[$B]} | tr ' ' '\n' | sort -n | tr '\n' ' ') median $(med ${O[$B]})"; done
