#!/usr/bin/env bash
# The one test command: installs what is missing, builds, and runs every test.
# Tests that need root (eBPF, network namespaces) skip with a printed reason when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (the last binaries run are benchmark smoke runs).
sum() { { grep -Eo "[0-9]+ $1" || true; } | awk '{s+=$1} END {print s+0}'; }
results=$(grep -E "^test result:" "$log" || true)
passed=$(sum passed <<<"$results")
failed=$(sum failed <<<"$results")
ignored=$(sum ignored <<<"$results")
echo "summary: $passed passed, $failed failed, $ignored skipped"
exit "$status"
