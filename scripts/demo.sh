#!/usr/bin/env bash
# Sets up everything and runs the demo: the example monitors in config/demo.yaml on the
# in-process queue. No AWS account needed. Stop it with Ctrl-C.
# DEMO_SECONDS=N stops it by itself after N seconds and lists the issues it recorded.
# Issues are kept in config/demo.db; `sentinela issues config/demo.yaml` lists them any time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
echo "building the example monitors (guests/) and the host; the first build compiles wasmtime and takes several minutes..."
guests/build.sh
cargo build --release --bin sentinela

if [[ -n "${DEMO_SECONDS:-}" ]]; then
  target/release/sentinela run config/demo.yaml &
  pid=$!
  sleep "$DEMO_SECONDS"
  kill -TERM "$pid"
  wait "$pid"
  echo
  echo "Issues kept in config/demo.db (they survive restarts):"
  target/release/sentinela issues config/demo.yaml
else
  exec target/release/sentinela run config/demo.yaml
fi
