#!/bin/bash
# Interleaved rounds of span_overhead's global variants (its group
# span_lifecycle_global): each round runs every named variant once (a
# process each). Prints each one's sorted figures and median,
# and (after the first) the median of its per-round ratios to the first,
# which drifts less than the figures.
# Each figure also goes to stderr as it comes ("round R VARIANT NS"), for
# ratios between other pairs than the first.
# usage: bench_variants.sh ROUNDS BIN VARIANT...
#   a VARIANT written OTHER_BIN:VARIANT runs from OTHER_BIN instead of BIN.
R=$1; B=$2; shift 2
declare -A T Q
for r in $(seq "$R"); do
  base=""
  for v in "$@"; do
    bin=$B; name=$v
    if [[ $v == *:* ]]; then bin=${v%:*}; name=${v##*:}; fi
    t=$(HDRTRACE_GLOBAL_VARIANT=$name "$bin" --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E "^\s+time:" | awk '{print $4}')
    T[$v]="${T[$v]} $t"
    echo "round $r $v $t" >&2
    if [ -z "$base" ]; then base=$t; else Q[$v]="${Q[$v]} $(echo "scale=3; $t/$base" | bc)"; fi
  done
done
med() { echo "$@" | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for v in "$@"; do
  line="$v: $(echo ${T[$v]} | tr ' ' '\n' | sort -n | tr '\n' ' ') median $(med ${T[$v]})"
  [ -n "${Q[$v]}" ] && line="$line; ratio per round $(echo ${Q[$v]} | tr ' ' '\n' | sort -n | tr '\n' ' ') median $(med ${Q[$v]})"
  echo "$line"
done
