#!/usr/bin/env python3
"""Per-instruction counts of one function, per lifecycle, from a callgrind
profile written with --dump-instr=yes, beside objdump's disassembly.

usage: hot_instructions.py CALLGRIND_OUT BINARY FUNCTION_SUBSTRING LIFECYCLES

Prints each instruction executed at least half a time per lifecycle, then
the function's total (its own instructions; callees are not included).
Used by scripts/hot_profile.sh; the figures are in docs/performance.md.
"""
import collections
import re
import subprocess
import sys


def value(token, previous):
    """A position in callgrind's compressed form: absolute, +/- relative, or *."""
    if token == "*":
        return previous
    if token[0] in "+-":
        step = int(token[1:], 0) if len(token) > 1 else 0
        return previous + step if token[0] == "+" else previous - step
    return int(token, 0)


def costs(path, pattern):
    names, cost = {}, collections.Counter()
    function, after_call, addr, line = "", False, 0, 0
    for raw in open(path):
        raw = raw.rstrip("\n")
        named = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", raw)
        if named:
            if named.group(2):
                names[named.group(1)] = named.group(2)
            if raw.startswith("fn="):
                function, after_call = names.get(named.group(1), ""), False
            continue
        if raw.startswith(("cfi=", "cob=", "cfl=")):
            continue
        if raw.startswith("calls="):
            after_call = True
            continue
        if raw and (raw[0].isdigit() or raw[0] in "+-*"):
            tokens = raw.split()
            addr = value(tokens[0], addr)
            if len(tokens) > 1:
                line = value(tokens[1], line)
            if after_call:
                # The line after `calls=` is the call's inclusive cost.
                after_call = False
            elif pattern in function and len(tokens) > 2:
                cost[addr] += int(tokens[2])
    return cost


def main():
    out, binary, pattern, lifecycles = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cost = costs(out, pattern)
    disassembly = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True, text=True
    ).stdout
    text = {}
    for l in disassembly.splitlines():
        m = re.match(r"^\s+([0-9a-f]+):\s+(.*)$", l)
        if m:
            text[int(m.group(1), 16)] = re.sub(r"<_ZN.*>", "", m.group(2))
    total = 0.0
    for a in sorted(cost):
        per = cost[a] / lifecycles
        total += per
        if per >= 0.5:
            print(f"{a:x} {per:6.1f} {text.get(a, '?')}")
    print(f"total {total:.0f}")


if __name__ == "__main__":
    main()
