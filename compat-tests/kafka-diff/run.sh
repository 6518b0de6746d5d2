#!/usr/bin/env bash
# Fjord against Apache Kafka 4.0, request by request: examples/kafka_diff.rs sends the same edge
# cases (produce framing, timestamps, sequences and transactions; fetch and list-offsets bounds;
# topic, partition, record, config, group, producer and transaction admin) to a default Fjord and
# to the reference Kafka broker (KAFKA_HOME/reference-kafka.sh, one KRaft node), and compares the
# answers field by field, leaving out what differs by nature (ids, timestamps, ports, messages).
# Each case is a PASS or FAIL line here; NOTE lines show differing error messages.
# Needs Java 17 and the Kafka distribution (KAFKA_HOME, default ../shared/kafka-4.0.0).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init kafka-diff

log "building the comparison (cargo build --release --example kafka_diff)"
(cd "$REPO_ROOT" && cargo build --release --example kafka_diff) >"$WORK/build.log" 2>&1 \
  || { tail -n 20 "$WORK/build.log" >&2; die "cargo build --example kafka_diff failed"; }
DIFF_BIN="$REPO_ROOT/target/release/examples/kafka_diff"

ref_kafka_start || { fail "reference Kafka starts"; suite_finish; exit 1; }

fjord_start "$WORK/data" || { fail "broker starts"; suite_finish; exit 1; }

rc=0
RUST_BACKTRACE=1 timeout --kill-after=5 300 "$DIFF_BIN" "$FJORD_BOOTSTRAP" "$KB" >"$WORK/test.out" 2>"$WORK/test.err" || rc=$?
cat "$WORK/test.out"
count_results "$WORK/test.out" "$WORK/test.err" "$rc" "kafka_diff"
[ "$rc" -ne 0 ] && [ -s "$WORK/test.err" ] && { log "stderr:"; tail -n 20 "$WORK/test.err" >&2; }

ref_kafka_stop
suite_finish
