#!/usr/bin/env bash
# A log dir Apache Kafka 4.0 wrote, served in place by Fjord (the migration path in docs/storage.md).
# The reference broker (KAFKA_HOME/reference-kafka.sh, one KRaft node) gets: a plain 3-partition
# topic (keyed records spread by the default partitioner), a keyed cleanup.policy=compact topic
# with small segments (its cleaner runs), a transactional topic (kafka-producer-perf-test with a
# transactional.id; a first producer is killed inside a transaction, which the next one's
# InitProducerId makes Kafka abort: markers and a .txnindex entry), a consumer group that reads part of the plain topic and commits, and a group that reads the
# transactional topic to its end. The stock tools record what Kafka shows; Kafka is stopped; Fjord
# starts on a copy of its log dir; the same tools must show the same topics, topic ids, partition
# counts, the compacted topic's configs, earliest and latest offsets, group positions, the
# producers' state (kafka-transactions describe-producers: id, epoch, last sequence), the same
# compacted records and the same read_committed records. Then clients carry on: the group resumes from its committed offsets and reads exactly
# the rest, the transactional id writes and commits again, and Kafka's original dir is untouched.
# Needs Java 17 and the Kafka distribution (KAFKA_HOME, default ../shared/kafka-4.0.0).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init kafka-logdir

BIN="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}/bin"
export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="-Xmx256m"
mkdir -p "$LOG_DIR"

ref_kafka_start || { fail "reference Kafka starts"; suite_finish; exit 1; }
KDATA="$REF/node-1/data"

RECORDS=300
# The cleaner's pause between passes (15 s) as a dynamic cluster-wide broker config: a broker
# config Fjord does not adopt, and a compacted log before Kafka is stopped.
"$BIN/kafka-configs.sh" --bootstrap-server "$KB" --alter --entity-type brokers --entity-default \
  --add-config log.cleaner.backoff.ms=1000 >/dev/null 2>&1
"$BIN/kafka-topics.sh" --bootstrap-server "$KB" --create --topic plain --partitions 3 >/dev/null 2>&1
"$BIN/kafka-topics.sh" --bootstrap-server "$KB" --create --topic keyed --partitions 2 \
  --config cleanup.policy=compact --config segment.bytes=1024 --config min.cleanable.dirty.ratio=0.01 \
  --config retention.ms=-1 >/dev/null 2>&1
"$BIN/kafka-topics.sh" --bootstrap-server "$KB" --create --topic txn --partitions 1 >/dev/null 2>&1
seq 1 "$RECORDS" | awk '{ print "key-" $1 ":plain-" $1 }' >"$WORK/plain.txt"
# 20 keys, each written 15 times: the cleaner has something to remove.
seq 1 "$RECORDS" | awk '{ print "k" ($1 % 20) ":v" $1 }' >"$WORK/keyed.txt"
"$BIN/kafka-console-producer.sh" --bootstrap-server "$KB" --topic plain --property parse.key=true --property key.separator=: <"$WORK/plain.txt" >/dev/null 2>&1
# Small batches so the 1 KiB segments roll.
"$BIN/kafka-console-producer.sh" --bootstrap-server "$KB" --topic keyed --property parse.key=true --property key.separator=: \
  --producer-property batch.size=200 --producer-property linger.ms=0 <"$WORK/keyed.txt" >/dev/null 2>&1
# An aborted transaction: a transactional producer killed inside a long transaction; the next
# producer with its transactional.id makes Kafka abort it (markers, a .txnindex entry).
"$BIN/kafka-producer-perf-test.sh" --topic txn --num-records 100000 --record-size 50 --throughput 200 \
  --producer-props bootstrap.servers="$KB" linger.ms=10 --transactional-id migrate-txn --transaction-duration-ms 100000 >"$WORK/perf-abort.out" 2>&1 &
aborting=$!
# Killed once its first report says records were acknowledged (the JVM's start varies with load).
for _ in $(seq 1 60); do grep -q 'records sent' "$WORK/perf-abort.out" && break; sleep 1; done
kill -9 "$aborting" 2>/dev/null; wait "$aborting" 2>/dev/null
"$BIN/kafka-producer-perf-test.sh" --topic txn --num-records 500 --record-size 50 --throughput -1 \
  --producer-props bootstrap.servers="$KB" --transactional-id migrate-txn --transaction-duration-ms 100 >"$WORK/perf-kafka.out" 2>&1
check "Kafka: the transactional perf test ran" grep -q "500 records sent" "$WORK/perf-kafka.out"
timeout 60 "$BIN/kafka-console-consumer.sh" --bootstrap-server "$KB" --topic plain --group g-plain --from-beginning \
  --max-messages 120 >"$WORK/g-plain-kafka.txt" 2>/dev/null
timeout 60 "$BIN/kafka-console-consumer.sh" --bootstrap-server "$KB" --topic txn --group g-txn --from-beginning \
  --isolation-level read_committed --max-messages 500 --timeout-ms 10000 >/dev/null 2>&1
# The cleaner's first pass (log.cleaner.backoff.ms is 15 s) before Kafka is stopped, if it comes.
for _ in $(seq 1 30); do
  grep -q '^keyed ' "$KDATA/cleaner-offset-checkpoint" 2>/dev/null && break
  sleep 1
done
check "Kafka's cleaner compacted the keyed topic" grep -q '^keyed ' "$KDATA/cleaner-offset-checkpoint"

# view BOOTSTRAP LABEL: what the stock tools show, normalized, into $WORK/LABEL.*
view() {
  local b="$1" l="$2"
  "$BIN/kafka-topics.sh" --bootstrap-server "$b" --describe --topic 'plain|keyed|txn|__consumer_offsets|__transaction_state' 2>/dev/null \
    | grep -v 'Partition: ' >"$WORK/$l.describe"
  awk -F'\t' '{ print $1, $2, $3 }' "$WORK/$l.describe" | sort >"$WORK/$l.topics"
  grep '^Topic: keyed' "$WORK/$l.describe" | grep -o 'Configs: .*' \
    | tr ',' '\n' | sed 's/^Configs: //' | grep -E '^(cleanup.policy|segment.bytes|min.cleanable.dirty.ratio|retention.ms)=' | sort >"$WORK/$l.keyed-configs"
  "$BIN/kafka-get-offsets.sh" --bootstrap-server "$b" --time -1 2>/dev/null | sort >"$WORK/$l.end-offsets"
  "$BIN/kafka-get-offsets.sh" --bootstrap-server "$b" --time -2 2>/dev/null | sort >"$WORK/$l.start-offsets"
  "$BIN/kafka-consumer-groups.sh" --bootstrap-server "$b" --describe --group g-plain --group g-txn 2>/dev/null >"$WORK/$l.groups"
  local g
  for g in g-plain g-txn; do
    awk '$1 == "'"$g"'" { print $1, $2, $3, $4, $5, $6 }' "$WORK/$l.groups" | sort >"$WORK/$l.$g"
  done
  local p
  : >"$WORK/$l.producers"
  "$BIN/kafka-transactions.sh" --bootstrap-server "$b" describe-producers --topic txn --partition 0 2>/dev/null \
    | awk 'NR > 1 { print "txn-0", $1, $2, $4, $6 }' >>"$WORK/$l.producers"
  # Assigned partitions without commits: nothing here may write to __consumer_offsets.
  # Against Kafka the compacted record count is unknown: read until 10 s without a record. Against
  # Fjord, Kafka's count per partition (a record too many or too few shows in the comparison).
  local limit
  for p in 0 1; do
    limit=()
    [ "$l" = kafka ] || limit=(--max-messages "$(grep -c "^Partition:$p"$'\t' "$WORK/kafka.keyed-records")")
    "$BIN/kafka-console-consumer.sh" --bootstrap-server "$b" --topic keyed --partition "$p" --offset earliest --timeout-ms 10000 \
      "${limit[@]}" --consumer-property enable.auto.commit=false \
      --property print.key=true --property print.offset=true --property print.partition=true 2>/dev/null
  done | sort >"$WORK/$l.keyed-records"
  # The 500 committed records, by offset: the aborted ones must be skipped in the same places.
  "$BIN/kafka-console-consumer.sh" --bootstrap-server "$b" --topic txn --partition 0 --offset earliest --max-messages 500 --timeout-ms 15000 \
    --consumer-property enable.auto.commit=false --isolation-level read_committed --property print.offset=true 2>/dev/null \
    | cut -f1 >"$WORK/$l.txn-committed"
}

view "$KB" kafka
check "Kafka shows the three topics" test "$(grep -cE '^Topic: (plain|keyed|txn) ' "$WORK/kafka.topics")" -eq 3
check "Kafka: g-plain committed 120 records" test "$(awk '{ s += $4 } END { print s }' "$WORK/kafka.g-plain")" -eq 120
check "Kafka: the transactional producer's state" test -s "$WORK/kafka.producers"
check "Kafka: the aborted transaction is in txn-0's .txnindex" bash -c "cat '$KDATA'/txn-0/*.txnindex | wc -c | grep -qv '^0$'"
aborted="$(( $(awk -F: '$1 == "txn" { print $3 }' "$WORK/kafka.end-offsets") - $(wc -l <"$WORK/kafka.txn-committed") ))"
check "Kafka: read_committed hides the aborted records ($aborted offsets hidden, $(wc -l <"$WORK/kafka.txn-committed") records seen)" test "$(wc -l <"$WORK/kafka.txn-committed")" -eq 500 -a "$aborted" -gt 100
log "Kafka: $(tr '\n' ' ' <"$WORK/kafka.end-offsets")"

ref_kafka_stop
check "Kafka stopped cleanly (.kafka_cleanshutdown written)" test -f "$KDATA/.kafka_cleanshutdown"
cp -a "$KDATA" "$WORK/data"
(cd "$KDATA" && find . -type f -exec md5sum {} + | sort -k2) >"$WORK/kafka-dir.md5"

# node.id 1 is Kafka's (meta.properties); the offsets topic's 50 partitions are both defaults.
fjord_start "$WORK/data" --override node.id=1 || { fail "Fjord starts on Kafka's log dir"; suite_finish; exit 1; }
pass "Fjord starts on Kafka's log dir"
check "Fjord logs each adopted topic" test "$(grep -c 'adopted a topic' "$FJORD_LOG_FILE")" -eq 5
view "$FJORD_BOOTSTRAP" fjord

same() {
  if cmp -s "$WORK/kafka.$2" "$WORK/fjord.$2"; then pass "$1"; else fail "$1" "$(diff "$WORK/kafka.$2" "$WORK/fjord.$2" | head -8 | tr '\n' ' ')"; fi
}
same "same topics, topic ids and partition counts" topics
same "the compacted topic keeps its configs" keyed-configs
same "same end offsets" end-offsets
same "same earliest offsets" start-offsets
same "same committed offsets and lag of g-plain" g-plain
same "same committed offsets and lag of g-txn" g-txn
same "same producer state (id, epoch, last sequence, open txn)" producers
same "same read_committed offsets of the topic with an aborted transaction" txn-committed
same "same compacted records (partition, offset, key, value)" keyed-records

# The group resumes where it committed: exactly the records it had not read, none of the others.
total="$(awk -F: '$1 == "plain" { s += $3 } END { print s }' "$WORK/kafka.end-offsets")"
timeout 60 "$BIN/kafka-console-consumer.sh" --bootstrap-server "$FJORD_BOOTSTRAP" --topic plain --group g-plain \
  --max-messages "$((total - 120))" --timeout-ms 10000 >"$WORK/g-plain-fjord.txt" 2>/dev/null
assert_eq "g-plain resumes: reads the $((total - 120)) records it had not read" "$((total - 120))" "$(wc -l <"$WORK/g-plain-fjord.txt")"
check "g-plain resumes: no record read twice" test -z "$(sort "$WORK/g-plain-kafka.txt" "$WORK/g-plain-fjord.txt" | uniq -d)"
assert_eq "g-plain resumes: every record read once" "$total" "$(cat "$WORK/g-plain-kafka.txt" "$WORK/g-plain-fjord.txt" | sort -u | wc -l)"
"$BIN/kafka-consumer-groups.sh" --bootstrap-server "$FJORD_BOOTSTRAP" --describe --group g-plain 2>/dev/null \
  | awk '$1 == "g-plain" { s += $6 } END { print s }' >"$WORK/g-plain-lag"
assert_eq "g-plain: lag 0 after resuming" 0 "$(cat "$WORK/g-plain-lag")"

# A new idempotent producer gets an id Kafka never gave out (the next block in Kafka's metadata), so
# it meets none of the state Kafka's producers left in the partitions.
seq 1 30 | awk '{ print "key-" $1 ":after-" $1 }' | "$BIN/kafka-console-producer.sh" --bootstrap-server "$FJORD_BOOTSTRAP" \
  --topic plain --property parse.key=true --property key.separator=: >"$WORK/produce-after.out" 2>&1
after="$("$BIN/kafka-get-offsets.sh" --bootstrap-server "$FJORD_BOOTSTRAP" --topic plain 2>/dev/null | awk -F: '{ s += $3 } END { print s }')"
assert_eq "a new idempotent producer appends 30 records to plain" "$((total + 30))" "$after"
check "the new producer met no old producer's sequence state" bash -c "! grep -q OUT_OF_ORDER_SEQUENCE '$WORK/produce-after.out'"
# Partition 0 holds records of both (the keys are the same every run, so is their partition).
"$BIN/kafka-transactions.sh" --bootstrap-server "$FJORD_BOOTSTRAP" describe-producers --topic plain --partition 0 2>/dev/null \
  | awk 'NR > 1 { print $1 }' | sort -u >"$WORK/plain-pids-after"
# Kafka's controller gave this broker the block 0-999; the metadata log says the next starts at 1000.
check "plain shows Kafka's producers and a new one with an id from 1000 on" awk '$1 < 1000 { old = 1 } $1 >= 1000 { new = 1 } END { exit !(old && new) }' "$WORK/plain-pids-after"

# The transactional id Kafka knew carries on (InitProducerId bumps its epoch, then commits).
"$BIN/kafka-producer-perf-test.sh" --topic txn --num-records 100 --record-size 50 --throughput -1 \
  --producer-props bootstrap.servers="$FJORD_BOOTSTRAP" --transactional-id migrate-txn --transaction-duration-ms 100 >"$WORK/perf-fjord.out" 2>&1
check "Fjord: the same transactional id writes 100 more records" grep -q "100 records sent" "$WORK/perf-fjord.out"
"$BIN/kafka-console-consumer.sh" --bootstrap-server "$FJORD_BOOTSTRAP" --topic txn --partition 0 --offset earliest --timeout-ms 10000 \
  --consumer-property enable.auto.commit=false --isolation-level read_committed 2>/dev/null | wc -l >"$WORK/txn-after"
assert_eq "read_committed sees Kafka's 500 and Fjord's 100 records" 600 "$(cat "$WORK/txn-after")"
"$BIN/kafka-transactions.sh" --bootstrap-server "$FJORD_BOOTSTRAP" describe-producers --topic txn --partition 0 2>/dev/null \
  | awk 'NR > 1 { print $1, $2 }' >"$WORK/producers-after"
# Kafka's producer (id, epoch) on the partition it wrote; the same id must now have a higher epoch.
read -r kafka_pid kafka_epoch < <(awk 'NR == 1 { print $2, $3 }' "$WORK/kafka.producers")
check "the transactional id kept its producer id ($kafka_pid) with a higher epoch than $kafka_epoch" \
  awk -v id="$kafka_pid" -v e="$kafka_epoch" '$1 == id && $2 > e { ok = 1 } END { exit !ok }' "$WORK/producers-after"

# Restart: the adopted table is Fjord's own now and everything is still there.
fjord_stop
fjord_start "$WORK/data" --override node.id=1 || { fail "Fjord restarts on the adopted dir"; suite_finish; exit 1; }
"$BIN/kafka-topics.sh" --bootstrap-server "$FJORD_BOOTSTRAP" --describe --topic 'plain|keyed|txn|__consumer_offsets|__transaction_state' 2>/dev/null \
  | grep -v 'Partition: ' | awk -F'\t' '{ print $1, $2, $3 }' | sort >"$WORK/restart.topics"
if cmp -s "$WORK/kafka.topics" "$WORK/restart.topics"; then pass "after a Fjord restart: same topics and ids"; else fail "after a Fjord restart: same topics and ids"; fi
check "no adoption the second time" test "$(grep -c 'adopted a topic' "$FJORD_LOG_FILE")" -eq 0

# Kafka's own dir was only copied.
(cd "$KDATA" && find . -type f -exec md5sum {} + | sort -k2) >"$WORK/kafka-dir.md5.after"
check "Kafka's original log dir is unchanged" cmp -s "$WORK/kafka-dir.md5" "$WORK/kafka-dir.md5.after"

suite_finish
