#!/usr/bin/env bash
# The one command that runs the demo on a fresh machine: installs what is missing, builds,
# and runs `periscope demo` (root: network namespaces and eBPF). Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi
bash scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/periscope demo "$@"
