#!/usr/bin/env bash
# Sets up everything and runs the demo: the example monitors in config/demo.yaml on the
# in-process queue. No AWS account needed. Stop it with Ctrl-C.
# DEMO_SECONDS=N stops it by itself after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
guests/build.sh
cargo build --release --quiet --bin sentinela

if [[ -n "${DEMO_SECONDS:-}" ]]; then
  target/release/sentinela run config/demo.yaml &
  pid=$!
  sleep "$DEMO_SECONDS"
  kill -TERM "$pid"
  wait "$pid"
else
  exec target/release/sentinela run config/demo.yaml
fi
