#!/usr/bin/env bash
# Everything CI runs, in order: dependencies, the Rust tests, the real-client compat suites.
# Exits non-zero if any phase fails (later phases still run so one run shows every failure).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

declare -a results=()
overall=0

phase() {
  # phase NAME CMD...: runs CMD, records its time and outcome.
  local name="$1"; shift
  echo
  echo "==== phase: $name"
  local start rc=0
  start=$(date +%s)
  "$@" || rc=$?
  local secs=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    results+=("ok    ${secs}s  $name")
  else
    results+=("FAIL  ${secs}s  $name (rc=$rc)")
    overall=1
  fi
  echo "==== phase: $name: $([ "$rc" -eq 0 ] && echo ok || echo "FAILED rc=$rc") in ${secs}s"
  return "$rc"
}

# shellcheck disable=SC2317  # invoked indirectly through phase
rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-targets --no-tests=warn
  else
    cargo test --all-targets
  fi
}

# Without the dependencies nothing else can run meaningfully.
phase "install-deps" scripts/install-deps.sh || { echo "test.sh: dependency install failed"; exit 1; }
phase "cargo test" rust_tests
phase "compat (release build + real clients)" scripts/compat.sh

echo
echo "==== test.sh summary"
printf '  %s\n' "${results[@]}"
exit "$overall"
