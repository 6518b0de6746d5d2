#!/usr/bin/env bash
# librdkafka's own integration tests with security on, the part CI runs (a few minutes); the work
# is compat-tests/librdkafka/run.sh's (same test-runner, same per-entry fresh broker; its header
# describes both modes):
#   1. --acl: every entry of ../librdkafka/acl-list.txt (0081's CreateAcls / DescribeAcls /
#      DeleteAcls, 0109 / 0115 / 0119's authorization failures, Kafka's own kafka-acls.sh) against a
#      PLAINTEXT broker with the StandardAuthorizer and allow.everyone.if.no.acl.found=true.
#   2. --sasl-ssl over ../librdkafka/sasl-ssl-ci.txt: a subset of the allow-list (produce, consume,
#      groups with one KIP-848 entry, transactions, admin, offsets) with every client over SASL_SSL
#      and SCRAM-SHA-512, against a broker with the same authorizer. The whole allow-list over
#      SASL_SSL (~25 min) is compat-tests/librdkafka/run.sh --sasl-ssl, not run in CI.
# Output: compat-tests/librdkafka-sec/out/{acl,sasl-ssl}/ (entry logs, broker logs), and
# out/{acl,sasl-ssl}.out (each run's output). Passes when both runs pass.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RDK="$HERE/../librdkafka"
OUT="$HERE/out"
rm -rf "$OUT"
mkdir -p "$OUT"

total_pass=0; total_fail=0; failed_runs=()
for run in acl sasl-ssl; do
  case "$run" in
    acl) args=(--acl) ;;
    sasl-ssl) args=(--sasl-ssl --list "$RDK/sasl-ssl-ci.txt") ;;
  esac
  echo "== librdkafka ${args[*]}"
  LIBRDKAFKA_WORK="$OUT/$run" "$RDK/run.sh" "${args[@]}" 2>&1 | tee "$OUT/$run.out"
  rc=${PIPESTATUS[0]}
  # The run's last line: "librdkafka-<run>: N passed, M failed".
  counts="$(grep -E "^librdkafka-$run: [0-9]+ passed, [0-9]+ failed$" "$OUT/$run.out" | tail -n 1)"
  if [ -z "$counts" ]; then
    echo "librdkafka-sec: the $run run ended without its summary (rc=$rc)"
    total_fail=$((total_fail + 1)); failed_runs+=("$run"); continue
  fi
  p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$counts")"; f="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$counts")"
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
  [ "$rc" -eq 0 ] || failed_runs+=("$run")
done

[ "${#failed_runs[@]}" -eq 0 ] || echo "librdkafka-sec failures in: ${failed_runs[*]}"
printf 'librdkafka-sec: %d passed, %d failed\n' "$total_pass" "$total_fail"
[ "${#failed_runs[@]}" -eq 0 ]
