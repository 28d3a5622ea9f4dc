#!/usr/bin/env bash
# Builds and runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) on this machine:
#   scripts/fuzz.sh                      every target, 60 s each (a smoke run)
#   scripts/fuzz.sh TARGET|all [SECONDS]  SECONDS of CPU time per target (3600: a CPU-hour)
# The budget is CPU time, not wall time: a target stops when its fuzzer has used SECONDS of
# CPU, so a run that shares the machine with a build still fuzzes for what it says.
# FUZZ_JOBS=2 runs two targets at a time (one core each). Each target starts from its seeds
# (fuzz/seeds/TARGET, committed) and what earlier runs found (fuzz/corpus/TARGET, not
# committed). A crash, timeout (-timeout, 10 s) or out-of-memory input (-rss_limit_mb) is
# written to fuzz/artifacts/TARGET and fails the run: minimise it (`cargo +nightly fuzz tmin`),
# fix the host and keep it in fuzz/regressions/TARGET, which the unit tests replay.
# cargo-fuzz needs a nightly toolchain: the installed one is used, never downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION="0.13.2"
TARGETS=(config cron queue_message aws_call_request arn_pattern guest_text aws_answer sns_message)
target="${1:-all}"
seconds="${2:-60}"
jobs="${FUZZ_JOBS:-1}"
# The parsers are safe Rust: libFuzzer looks for panics (debug assertions, so overflows too),
# timeouts and memory blow-ups; AddressSanitizer would halve the executions for nothing.
# SENTINELA_FUZZ_SANITIZER=address turns it on.
sanitizer="${SENTINELA_FUZZ_SANITIZER:-none}"

if [[ "$target" == all ]]; then
  selected=("${TARGETS[@]}")
elif [[ " ${TARGETS[*]} " == *" $target "* ]]; then
  selected=("$target")
else
  echo "fuzz.sh: unknown target '$target'; the targets: all ${TARGETS[*]}" >&2
  exit 2
fi
if ! [[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]]; then
  echo "fuzz.sh: SECONDS must be a positive number, not '$seconds'" >&2
  exit 2
fi

nightly="$(rustup toolchain list | awk '/^nightly/ { print $1; exit }')"
if [[ -z "$nightly" ]]; then
  echo "fuzz.sh: no nightly toolchain is installed (rustup toolchain list), which cargo-fuzz needs; this script does not download toolchains" >&2
  exit 1
fi
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz ${CARGO_FUZZ_VERSION}" ]]; then
  cargo install --quiet --locked cargo-fuzz --version "${CARGO_FUZZ_VERSION}"
fi

fuzz() { cargo "+${nightly}" fuzz "$@"; }

# Inputs as long as each parser's own caps make interesting: a config up to 64 KiB (nesting
# and long cron lists included), requests and answers up to 16 KiB.
max_len() {
  case "$1" in
    config) echo 65536 ;;
    aws_call_request | aws_answer | sns_message | queue_message) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

echo "building ${#selected[@]} target(s) with ${nightly} (sanitizer: ${sanitizer})"
for t in "${selected[@]}"; do
  fuzz build --sanitizer "$sanitizer" "$t"
done

# The CPU seconds (user + system) process `pid` has used so far; fails once it has exited
# (a zombie until `wait`).
cpu_seconds() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The fields after the command name (in parentheses): state, ..., utime, stime.
  read -r -a fields <<<"${stat##*) }"
  [[ "${fields[0]}" != Z ]] || return 1
  echo $(((fields[11] + fields[12]) / ticks))
}
ticks="$(getconf CLK_TCK)"

mkdir -p fuzz/logs
run_one() {
  local t="$1" log="fuzz/logs/$1.log"
  local bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release/$t"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local status=ok cpu=0
  # The built fuzzer itself (what `cargo fuzz run` starts), so that its CPU time can be read.
  "$bin" "fuzz/corpus/$t" "fuzz/seeds/$t" \
    -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 &
  local pid=$!
  # SIGUSR1 asks libFuzzer to stop after the current input, print its stats and exit 0.
  local now
  while now="$(cpu_seconds "$pid")"; do
    cpu="$now"
    if [[ "$cpu" -ge "$seconds" ]]; then
      kill -USR1 "$pid" 2>/dev/null || true
      break
    fi
    sleep 2
  done
  wait "$pid" || status=FAILED
  local execs rate="" rss cov ft corpus
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  # Executions per CPU second (libFuzzer's own figure is per wall second).
  [[ -n "$execs" && "$cpu" -gt 0 ]] && rate=$((execs / cpu))
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  corpus="$(find "fuzz/corpus/$t" -type f | wc -l)"
  printf '%-18s %6ss %12s %10s %7s %8s %7s %6sMB  %s\n' "$t" "$cpu" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "${rss:-?}" "$status"
  if [[ "$status" != ok ]]; then
    grep -E '^(==[0-9]+== ERROR|thread .* panicked|.*Test unit written to)' "$log" | head -5 | sed 's/^/    /'
    return 1
  fi
}

printf '%-18s %7s %12s %10s %7s %8s %7s %8s  %s\n' target cpu executions exec/cpu-s cov features corpus peak result
failed=0
running=0
for t in "${selected[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [[ "$running" -ge "$jobs" ]]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [[ "$running" -gt 0 ]]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [[ "$failed" -ne 0 ]]; then
  echo "fuzz.sh: a target failed; its input is in fuzz/artifacts/, its log in fuzz/logs/" >&2
  exit 1
fi
