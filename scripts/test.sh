#!/usr/bin/env bash
# Sets up everything and runs every test:
#   the wasm32-wasip2 target, a Python venv with moto[server] and componentize-py,
#   componentize-js (npm, into guests/js/node_modules), the Rust, Python and JavaScript guest
#   components,
#   a moto server, a PostgreSQL server and two OCI registries (Debian's packages, installed if
#   missing) on free loopback ports, promtool (Debian's prometheus package) for the alerting
#   rules, `cargo test`, and their shutdown.
# Idempotent. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_venv
ensure_componentize_js
ensure_promtool
guests/build.sh
guests/python/build.sh
guests/js/build.sh

start_moto
trap 'stop_moto; stop_postgres; stop_registries' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
echo "moto listening on ${AWS_ENDPOINT_URL}"
start_postgres
echo "PostgreSQL listening on 127.0.0.1:${PG_PORT}"
start_registries
echo "OCI registries on ${SENTINELA_TEST_REGISTRY} and ${SENTINELA_TEST_AUTH_REGISTRY} (login)"

cargo test --workspace "$@"
