#!/usr/bin/env bash
# Instructions per span lifecycle of ours (or VARIANT) in span_overhead's
# global group, in all and per hot method, instruction by instruction.
# Needs valgrind and objdump (binutils), which the project does not install.
# usage: scripts/hot_profile.sh [VARIANT]   (default hdrtrace_enabled)
# Writes /tmp/hot_<method>.txt for new_span, enter, exit and try_close: each
# instruction of the method itself executed at least half a time per lifecycle.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-hdrtrace_enabled}
out=$(CARGO_PROFILE_BENCH_DEBUG=line-tables-only cargo bench -p hdrtrace --all-features \
  --bench span_overhead --no-run 2>&1)
bin=$(echo "$out" | grep -oE "Executable benches/span_overhead/main.rs \([^)]*\)" | sed 's/.*(\(.*\))/\1/')
profile=/tmp/hot_profile.callgrind
HDRTRACE_GLOBAL_VARIANT=$variant valgrind --tool=callgrind --callgrind-out-file=$profile \
  --dump-instr=yes --toggle-collect='span_overhead::common::lifecycle*' \
  "$bin" --bench --warm-up-time 1 --measurement-time 3 --sample-size 10 >/dev/null 2>&1
# Each lifecycle makes one span: the count of Span::new calls is the count of lifecycles.
lifecycles=$(callgrind_annotate --tree=caller $profile 2>/dev/null | grep -oE "Span::new \(([0-9,]+)x\)" \
  | head -1 | grep -oE "[0-9,]+" | tr -d ',')
total=$(callgrind_annotate $profile 2>/dev/null | grep "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}')
echo "$variant: $((total / lifecycles)) instructions per lifecycle ($lifecycles lifecycles)"
for method in new_span enter exit try_close; do
  python3 scripts/hot_instructions.py $profile "$bin" "Subscriber>::$method" "$lifecycles" \
    > /tmp/hot_$method.txt
  echo "  $method: $(tail -1 /tmp/hot_$method.txt | cut -d' ' -f2) of its own, callees apart (/tmp/hot_$method.txt)"
done
# Inlined code is listed per source file; the walk's own entry is the largest.
walk=$(callgrind_annotate --inclusive=yes $profile 2>/dev/null | grep -E "Attributes::record \[" \
  | awk '{gsub(",","",$1); print $1}' | sort -n | tail -1)
echo "  field walk (tracing's Attributes::record with the subscriber's visitor): $(( ${walk:-0} / lifecycles ))"
echo "  clock reads through quanta's Clock::raw (0 where Clock::now reads the TSC inline): $(callgrind_annotate --inclusive=yes $profile 2>/dev/null \
  | grep -E "Clock::raw \[" | awk -v n=$lifecycles '{gsub(",","",$1); s+=$1} END{print int(s/n)}')"
