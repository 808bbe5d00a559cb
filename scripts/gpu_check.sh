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

run() {
    local out=${OUT:-gpu-out}
    mkdir -p "$out"
    export CUDA_DEVICE_MAX_CONNECTIONS=32
    # cudarc looks for libnvrtc.so, .so.12, .so.11, ... but not .so.13: link
    # whichever NVRTC the machine has under the name it looks for.
    if ! ldconfig -p | grep -q 'libnvrtc\.so '; then
        local found
        found=$(ldconfig -p | grep -o '/[^ ]*libnvrtc\.so\.[0-9]*' | head -1 ||
            find / -name 'libnvrtc.so.*' -not -path '*/proc/*' 2>/dev/null | head -1)
        if [ -n "$found" ]; then
            mkdir -p "$out/lib" && ln -sf "$found" "$out/lib/libnvrtc.so"
            export LD_LIBRARY_PATH="$PWD/$out/lib:${LD_LIBRARY_PATH:-}"
        fi
    fi
    nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$out/card.txt"
    "$carry/gpu-test" --test-threads 1 2>&1 | tee "$out/tests.txt"
    for i in 1 2 3 4 5; do
        "$carry/gpu-test" recorded_device_time --nocapture 2>&1 | tee "$out/device_time_$i.txt"
    done
    "$carry/gpu-bench" --bench --warm-up-time 1 --measurement-time 3 2>&1 | tee "$out/bench.txt"
    "$carry/pipeline" --backend cuda --level verbose --requests 300 2>&1 | tee "$out/demo.txt"
}

case "${1:-}" in
stage) stage ;;
run) run ;;
*)
    echo "usage: $0 stage|run" >&2
    exit 2
    ;;
esac
