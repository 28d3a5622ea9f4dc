#!/usr/bin/env bash
# Builds every guest component (wasm32-wasip2, release) and copies them to guests/dist/.
# Idempotent; cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -qx wasm32-wasip2
cargo build --release --target wasm32-wasip2 --quiet
mkdir -p dist
for wasm in "${CARGO_TARGET_DIR:-target}"/wasm32-wasip2/release/*.wasm; do
  cp -u "$wasm" dist/
done
echo "guests built: $(ls dist | wc -l) components in guests/dist/"
