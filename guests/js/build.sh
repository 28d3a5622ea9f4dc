#!/usr/bin/env bash
# Builds JavaScript monitors into components with componentize-js, from anywhere:
#   guests/js/build.sh APP_DIR -o OUT.wasm     one monitor, to OUT.wasm
#   guests/js/build.sh [DIR...]                each DIR to guests/dist/<dir name>_js.wasm
# Each directory holds an `app.js` that exports `checks` (see guests/js/sdk/sentinela_monitor.js)
# and imports the SDK as './sentinela_monitor.js': the build copies it next to the app. Without
# arguments every directory under guests/js/ but sdk/ is built. A component is rebuilt only
# when a source file is newer. componentize-js comes from guests/js/node_modules (scripts/test.sh
# or scripts/demo.sh installs it) unless COMPONENTIZE_JS names another.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
componentize_js="${COMPONENTIZE_JS:-$here/node_modules/.bin/componentize-js}"

out=""
dirs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o|--out) out="${2:?$1 needs a file name}"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) dirs+=("$1"); shift ;;
  esac
done
if [[ -n "$out" && ${#dirs[@]} -ne 1 ]]; then
  echo "error: -o takes exactly one app directory" >&2
  exit 2
fi
if [[ ! -x "$componentize_js" ]]; then
  echo "error: componentize-js not found at $componentize_js: run scripts/test.sh or scripts/demo.sh once, or set COMPONENTIZE_JS" >&2
  exit 1
fi
if [[ ${#dirs[@]} -eq 0 ]]; then
  for dir in "$here"/*/; do
    [[ "$(basename "$dir")" == sdk || ! -f "$dir/app.js" ]] || dirs+=("$dir")
  done
fi

# Node's own parser first: componentize-js reports a syntax error without its line ("failed
# to parse JS source"). Prints "error: FILE:LINE:COLUMN: SyntaxError: ..." and the line.
check_syntax() {
  local file="$1" copy out line col reason
  command -v node >/dev/null 2>&1 || return 0
  copy="$(mktemp --suffix=.mjs)"
  cp "$file" "$copy"
  if out="$(node --check "$copy" 2>&1)"; then
    rm -f "$copy"
    return 0
  fi
  rm -f "$copy"
  line="$(printf '%s\n' "$out" | sed -n '1s/.*:\([0-9][0-9]*\)$/\1/p')"
  col="$(printf '%s\n' "$out" | sed -n '3p' | awk '{ print index($0, "^") }')"
  reason="$(printf '%s\n' "$out" | grep -m1 -E '^[A-Za-z]*Error: ' || true)"
  echo "error: $file:${line:-?}:${col:-?}: ${reason:-syntax error}" >&2
  printf '%s\n' "$out" | sed -n '2,3p' | sed 's/^/  | /' >&2
  return 1
}

for dir in "${dirs[@]}"; do
  if [[ ! -f "$dir/app.js" ]]; then
    echo "error: $dir: no app.js (a JavaScript monitor directory holds app.js exporting checks)" >&2
    exit 1
  fi
  dir="$(cd "$dir" && pwd)"
  target="${out:-$root/guests/dist/$(basename "$dir")_js.wasm}"
  mkdir -p "$(dirname "$target")"
  if [[ -f "$target" ]] && [[ -z "$(find "$dir" "$here/sdk" "$root/wit" -name '*.js' -newer "$target" -o -name '*.wit' -newer "$target")" ]]; then
    continue
  fi
  while IFS= read -r -d '' source; do
    check_syntax "$source" || exit 1
  done < <(find "$dir" -name node_modules -prune -o -name '*.js' -print0)
  # The app and the SDK side by side, so `import ... from './sentinela_monitor.js'` resolves.
  stage="$(mktemp -d)"
  log="$stage.log"
  trap 'rm -rf "$stage" "$stage.log"' EXIT
  cp -R "$dir"/. "$stage"/
  cp "$here/sdk/sentinela_monitor.js" "$stage/"
  # wasi:http is never offered to monitors: the component must not import it.
  if ! "$componentize_js" "$stage/app.js" --wit "$root/wit" --world-name monitor \
      --disable http fetch-event -o "$target.tmp" >"$log" 2>&1; then
    cause="$(grep -m1 -E 'Error|error' "$log" || true)"
    echo "error: $dir: ${cause:-componentize-js failed}" >&2
    sed 's/^/  | /' "$log" >&2
    rm -f "$target.tmp"
    exit 1
  fi
  rm -rf "$stage" "$log"
  trap - EXIT
  mv "$target.tmp" "$target"
  echo "built $target ($(du -h "$target" | cut -f1))"
done
