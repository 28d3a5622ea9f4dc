#!/usr/bin/env bash
# Builds Python monitors into components with componentize-py:
#   guests/python/build.sh [DIR...]
# Each DIR holds an `app.py` that defines `Checks` (see guests/python/sdk/sentinela_monitor.py).
# Without arguments every directory under guests/python/ except sdk/ is built. The component
# is written to guests/dist/<dir name>_py.wasm and rebuilt only when a source file changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
componentize_py="${COMPONENTIZE_PY:-$root/.venv/bin/componentize-py}"
if [[ ! -x "$componentize_py" ]]; then
  echo "componentize-py not found at $componentize_py: run scripts/test.sh or scripts/demo.sh once" >&2
  exit 1
fi

if [[ $# -eq 0 ]]; then
  set --
  for dir in "$here"/*/; do
    [[ "$(basename "$dir")" == sdk || ! -f "$dir/app.py" ]] || set -- "$@" "$dir"
  done
fi

mkdir -p "$root/guests/dist"
for dir in "$@"; do
  dir="$(cd "$dir" && pwd)"
  out="$root/guests/dist/$(basename "$dir")_py.wasm"
  # Rebuild when the app, the SDK or the WIT is newer than the component.
  if [[ -f "$out" ]] && [[ -z "$(find "$dir" "$here/sdk" "$root/wit" -name '*.py' -newer "$out" -o -name '*.wit' -newer "$out")" ]]; then
    continue
  fi
  "$componentize_py" -d "$root/wit" -w monitor componentize app \
    -p "$dir" -p "$here/sdk" -o "$out.tmp" >/dev/null
  mv "$out.tmp" "$out"
  echo "built $out ($(du -h "$out" | cut -f1))"
done
