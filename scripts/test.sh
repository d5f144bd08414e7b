#!/usr/bin/env bash
# The one test command: installs what is missing, builds, and runs every test.
# Tests that need root (eBPF, network namespaces) skip with a printed reason when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets
