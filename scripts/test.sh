#!/usr/bin/env bash
# Every test, loom model checks included (loom-tests/ is a workspace member).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features
