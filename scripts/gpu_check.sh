#!/usr/bin/env bash
# The GPU checks of docs/gpu.md, in two steps:
#   scripts/gpu_check.sh stage   here: builds the GPU test, bench and demo
#                                binaries (feature `cuda`) into target/gpu-carry
#   scripts/gpu_check.sh run     on the GPU machine, with target/gpu-carry
#                                carried: runs them, output under $OUT (or ./gpu-out)
set -euo pipefail
cd "$(dirname "$0")/.."
carry=target/gpu-carry

# The newest executable cargo printed for a target of this kind and name.
built() {
    jq -r --arg kind "$1" --arg name "$2" \
        'select(.reason == "compiler-artifact" and .target.name == $name
                and (.target.kind | index($kind)) and .executable != null) | .executable' |
        tail -1
}

stage() {
    rm -rf "$carry" && mkdir -p "$carry"
    cp "$(cargo test -p hdrtrace-pipeline --features cuda --test gpu --no-run \
        --message-format=json | built test gpu)" "$carry/gpu-test"
    cp "$(cargo bench -p hdrtrace-pipeline --features cuda --bench gpu --no-run \
        --message-format=json | built bench gpu)" "$carry/gpu-bench"
    cp "$(cargo build --release -p hdrtrace-pipeline --features cuda --example pipeline \
        --message-format=json | built example pipeline)" "$carry/pipeline"
    strip "$carry"/*
    du -sh "$carry"/*
}

# The steps of `run` that failed, by the file their output went to.
failed=()

# Runs one step of `run`, its output shown and kept in $out/$1; a failure is
# remembered and the next step still runs.
step() {
    local file=$1
    shift
    if ! "$@" 2>&1 | tee "$out/$file"; then
        failed+=("$file")
    fi
}

run() {
    mkdir -p "${OUT:-gpu-out}"
    out=$(cd "${OUT:-gpu-out}" && pwd)
    export CUDA_DEVICE_MAX_CONNECTIONS=32
    # cudarc looks for libnvrtc.so, .so.12, .so.11, ... but not .so.13: link
    # whichever NVRTC the machine has under the name it looks for.
    if ! ldconfig -p | grep -q 'libnvrtc\.so '; then
        local found
        # Neither search may end the script (`|| true`): grep exits non-zero
        # on no match, find on any unreadable directory.
        found=$(ldconfig -p | grep -o '/[^ ]*libnvrtc\.so\.[0-9]*' | head -1 || true)
        if [ -z "$found" ]; then
            found=$(find / -path /proc -prune -o -name 'libnvrtc.so.*' -print 2>/dev/null |
                head -1 || true)
        fi
        if [ -n "$found" ]; then
            mkdir -p "$out/lib" && ln -sf "$found" "$out/lib/libnvrtc.so"
            export LD_LIBRARY_PATH="$out/lib:${LD_LIBRARY_PATH:-}"
        fi
    fi
    step card.txt nvidia-smi --query-gpu=name,driver_version --format=csv
    step tests.txt "$carry/gpu-test" --test-threads 1
    for i in 1 2 3 4 5; do
        step "device_time_$i.txt" "$carry/gpu-test" recorded_device_time --nocapture
    done
    step bench.txt "$carry/gpu-bench" --bench --warm-up-time 1 --measurement-time 3
    step demo.txt "$carry/pipeline" --backend cuda --level verbose --requests 300
    if [ ${#failed[@]} -gt 0 ]; then
        echo "failed: ${failed[*]} (their output is under $out)" >&2
        return 1
    fi
    echo "every step passed"
}

case "${1:-}" in
stage) stage ;;
run) run ;;
*)
    echo "usage: $0 stage|run" >&2
    exit 2
    ;;
esac
