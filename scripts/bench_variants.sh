#!/bin/bash
# Interleaved rounds of span_global variants from one bench binary: each round
# runs every named variant once (a process each), then prints each variant's
# sorted figures and median.
# usage: bench_variants.sh ROUNDS BIN VARIANT...
R=$1; B=$2; shift 2
declare -A T
for r in $(seq "$R"); do
  for v in "$@"; do
    T[$v]="${T[$v]} $(HDRTRACE_GLOBAL_VARIANT=$v "$B" --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E "^\s+time:" | awk '{print $4}')"
  done
done
med() { echo "$@" | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for v in "$@"; do echo "$v: $(echo ${T[$v]} | tr ' ' '\n' | sort -n | tr '\n' ' ') median $(med ${T[$v]})"; done
