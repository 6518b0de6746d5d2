#!/usr/bin/env bash
# Real-client compatibility: builds the release broker, then runs every suite in compat-tests/
# (each compat-tests/<suite>/run.sh, in name order: crash, kcat, python, ...) in turn, each bounded in
# time (COMPAT_SUITE_TIMEOUT_S, default 3600 s: a first build of a suite's client may be slow, and the
# librdkafka suite builds its test runner, then runs about 85 test processes of up to 300 s each).
# Prints a per-suite summary and exits non-zero if any suite failed.
#   scripts/compat.sh                 # all suites
#   scripts/compat.sh kcat crash      # only these
#   FJORD_BIN=/path/fjord scripts/compat.sh   # skip the build, use this binary
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
SUITE_TIMEOUT_S="${COMPAT_SUITE_TIMEOUT_S:-3600}"

if [ -z "${FJORD_BIN:-}" ]; then
  echo "== cargo build --release"
  cargo build --release || { echo "compat: release build failed"; exit 1; }
  export FJORD_BIN="$ROOT/target/release/fjord"
fi
export FJORD_BIN

suites=("$@")
if [ "${#suites[@]}" -eq 0 ]; then
  for f in "$ROOT"/compat-tests/*/run.sh; do
    [ -e "$f" ] && suites+=("$(basename "$(dirname "$f")")")
  done
fi
[ "${#suites[@]}" -gt 0 ] || { echo "compat: no suites found under compat-tests/"; exit 1; }

passed=0; failed=0; summary=()
for s in "${suites[@]}"; do
  script="$ROOT/compat-tests/$s/run.sh"
  [ -x "$script" ] || { echo "compat: no suite $s ($script)"; failed=$((failed + 1)); summary+=("FAIL $s (missing)"); continue; }
  echo "== compat suite: $s"
  start=$(date +%s)
  timeout --kill-after=30 "$SUITE_TIMEOUT_S" "$script"
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); summary+=("PASS $s (${secs}s)")
  else
    [ "$rc" -eq 124 ] && echo "compat: suite $s timed out after ${SUITE_TIMEOUT_S}s"
    failed=$((failed + 1)); summary+=("FAIL $s (rc=$rc, ${secs}s)")
  fi
done

echo "== compat summary"
printf '  %s\n' "${summary[@]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
