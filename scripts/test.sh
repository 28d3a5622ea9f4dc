#!/usr/bin/env bash
# Sets up everything and runs every test:
#   the wasm32-wasip2 target, a Python venv with moto[server] and componentize-py, the Rust and
#   Python guest components,
#   a moto server on a free loopback port, `cargo test`, and moto's shutdown.
# Idempotent. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_venv
guests/build.sh
guests/python/build.sh

start_moto
trap stop_moto EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
echo "moto listening on ${AWS_ENDPOINT_URL}"

cargo test --workspace "$@"
