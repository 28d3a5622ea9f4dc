#!/usr/bin/env bash
# Builds Python monitors into components with componentize-py, from anywhere:
#   guests/python/build.sh APP_DIR -o OUT.wasm     one monitor, to OUT.wasm
#   guests/python/build.sh [DIR...]                each DIR to guests/dist/<dir name>_py.wasm
# Each directory holds an `app.py` that defines `Checks` (see guests/python/sdk/sentinela_monitor.py).
# Without arguments every directory under guests/python/ except sdk/ is built. A component is
# rebuilt only when a source file is newer. componentize-py comes from this checkout's .venv
# (scripts/test.sh or scripts/demo.sh creates it) unless COMPONENTIZE_PY names another.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
componentize_py="${COMPONENTIZE_PY:-$root/.venv/bin/componentize-py}"

out=""
dirs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o|--out) out="${2:?$1 needs a file name}"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) dirs+=("$1"); shift ;;
  esac
done
if [[ -n "$out" && ${#dirs[@]} -ne 1 ]]; then
  echo "error: -o takes exactly one app directory" >&2
  exit 2
fi
if [[ ! -x "$componentize_py" ]]; then
  echo "error: componentize-py not found at $componentize_py: run scripts/test.sh or scripts/demo.sh once, or set COMPONENTIZE_PY" >&2
  exit 1
fi
if [[ ${#dirs[@]} -eq 0 ]]; then
  for dir in "$here"/*/; do
    [[ "$(basename "$dir")" == sdk || ! -f "$dir/app.py" ]] || dirs+=("$dir")
  done
fi

for dir in "${dirs[@]}"; do
  if [[ ! -f "$dir/app.py" ]]; then
    echo "error: $dir: no app.py (a Python monitor directory holds app.py defining Checks)" >&2
    exit 1
  fi
  dir="$(cd "$dir" && pwd)"
  target="${out:-$root/guests/dist/$(basename "$dir")_py.wasm}"
  mkdir -p "$(dirname "$target")"
  # Rebuild when the app, the SDK or the WIT is newer than the component.
  if [[ -f "$target" ]] && [[ -z "$(find "$dir" "$here/sdk" "$root/wit" -name '*.py' -newer "$target" -o -name '*.wit' -newer "$target")" ]]; then
    continue
  fi
  log="$(mktemp)"
  if ! RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$componentize_py" -d "$root/wit" -w monitor \
      componentize app -p "$dir" -p "$here/sdk" -o "$target.tmp" >"$log" 2>&1; then
    # componentize-py puts the one useful line ("SyntaxError: ... (app.py, line 4)") after
    # "Caused by:", below a traceback of its own; show it first, then the whole output.
    cause="$(grep -A1 '^Caused by:' "$log" | sed -n '2s/^ *//p')"
    echo "error: $dir: ${cause:-componentize-py failed}" >&2
    sed 's/^/  | /' "$log" >&2
    rm -f "$log" "$target.tmp"
    exit 1
  fi
  rm -f "$log"
  mv "$target.tmp" "$target"
  echo "built $target ($(du -h "$target" | cut -f1))"
done
