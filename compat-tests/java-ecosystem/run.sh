#!/usr/bin/env bash
# Apache Kafka 4.0's stock Java tools and frameworks against Fjord (KAFKA_HOME, default
# ../shared/kafka-4.0.0 beside the repository; Java 17). Every check reads a real outcome back:
#   1. kafka-topics creates topics (describe: partition counts, the create-time config); kafka-configs
#      adds and deletes topic configs (describe: the dynamic configs left).
#  1c. kafka-client-metrics (KIP-714) alters, describes (list and configs) and deletes a client
#      metrics subscription, with Kafka 4.0's outputs; an interval below 100 ms is refused in its words.
#  1d. KIP-714 client telemetry with Fjord's receiver on: a subscription for org.apache.kafka.producer.
#      every second, a console producer (enable.metrics.push, default true) sending for 10 s: its
#      record-send-total, as pushed, is on Fjord's /metrics under its client id while it runs.
#   2. console producer -> console consumers in two groups (classic and KIP-848) read every record;
#      kafka-consumer-groups --describe: current offset == log end, lag 0; --reset-offsets
#      --to-earliest --execute, then describe: current offsets 0, lag == the record count.
#   3. kafka-producer-perf-test with a transactional id: a read_committed console consumer reads
#      exactly the records sent; the log end offset is past them (the commit markers).
#   4. Kafka Streams WordCount (the examples jar's WordCountDemo) with in-memory stores and
#      exactly_once_v2: the output topic, read_committed, holds each word's counts 1..n in order and
#      n is the word's count in the input; the application's group committed the input's end.
#      Then kafka-streams-application-reset (--force: a stopped Streams member stays in its group
#      until its session times out): the group's offsets are the input's, at 0 (describe), the
#      application's changelog and repartition topics are deleted (kafka-topics --list), and the
#      same application run again on the same input counts from scratch: the output then holds
#      each word's 1..n twice.
#   5. Connect standalone with the file source connector copies a file line by line into a topic;
#      its offsets file records the file's length. Stopped, the file grown by 50 lines, started
#      again with the same offsets file: the topic holds the original lines once, then the new
#      ones, in order (log end == the line count), and the offsets file the new length.
#   6. MirrorMaker 2 replicates a topic from Fjord into a reference Kafka broker (started in the
#      background at the beginning): the target's fjord.<topic> holds every record, key and value, in
#      the source's partition count; a group's offsets committed on Fjord reach the target,
#      translated (at most the source offset, above 0).
# The long-running JVMs (Streams, Connect, MirrorMaker 2, each run of them) run beside the short
# tools; their logs hold no ERROR line while they run, and each stops on SIGTERM. JAVA_ECO_TOOL_S
# bounds each short tool, JAVA_ECO_WAIT_S each wait for a background result.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init java-ecosystem

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"
BIN="$KAFKA_HOME/bin"
[ -x "$BIN/kafka-topics.sh" ] || die "Kafka tools not found under KAFKA_HOME=$KAFKA_HOME"
[ -x "$KAFKA_HOME/reference-kafka.sh" ] || die "reference-kafka.sh not found under KAFKA_HOME=$KAFKA_HOME"
command -v java >/dev/null || die "java not installed"
export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="-Xmx256m"
mkdir -p "$LOG_DIR"
TOOL_S="${JAVA_ECO_TOOL_S:-60}"
WAIT_S="${JAVA_ECO_WAIT_S:-90}"
N_GROUP=3000      # records read by the consumer groups
N_TXN=5000        # records of the transactional perf test
N_CONNECT=1000    # lines of the file Connect copies
N_CONNECT_MORE=50 # lines appended while Connect is stopped, copied after its restart
N_MM2=2000        # records MirrorMaker 2 replicates
N_MM2_READ=1500   # of which a group on Fjord reads (and commits) this many before MirrorMaker 2 starts
STREAMS_LINES=300 # lines of the WordCount input
# WordCountDemo's fixed topic names.
STREAMS_IN=streams-plaintext-input
STREAMS_OUT=streams-wordcount-output
STREAMS_APP=wordcount-fjord

# Background JVMs by name -> pid; the exit trap stops every one still running, then the reference broker.
declare -A BG_PIDS=()
REF_DIR="$WORK/ref"
REF_STARTED=""
REF_START_PID=""
bg_start() {
  local name="$1"; shift
  "$@" >"$WORK/$name.out" 2>&1 &
  BG_PIDS[$name]=$!
  log "$name started (pid ${BG_PIDS[$name]})"
}
# bg_stop NAME: SIGTERM (the JVM's shutdown hook closes it), SIGKILL after 20 s; returns 0 if it
# ended on SIGTERM.
bg_stop() {
  local name="$1" pid="${BG_PIDS[$1]:-}"
  [ -n "$pid" ] || return 0
  unset "BG_PIDS[$name]"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 20 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null
    return 1
  fi
  wait "$pid" 2>/dev/null
  return 0
}
# stop_checked NAME...: SIGTERM to all of them at once (their shutdowns overlap), then bg_stop
# each, recording whether it ended on SIGTERM.
stop_checked() {
  local name
  for name in "$@"; do kill -TERM "${BG_PIDS[$name]}" 2>/dev/null || true; done
  for name in "$@"; do
    if bg_stop "$name"; then pass "$name stops on SIGTERM"; else fail "$name stops on SIGTERM"; fi
  done
}
on_exit() {
  local rc=$? name
  for name in "${!BG_PIDS[@]}"; do bg_stop "$name" || true; done
  if [ -n "$REF_STARTED" ]; then
    # A start still under way first (it writes the broker's pid file the stop reads), then the stop.
    kill -TERM "$REF_START_PID" 2>/dev/null && wait "$REF_START_PID" 2>/dev/null
    timeout 90 "$KAFKA_HOME/reference-kafka.sh" stop "$REF_DIR" >/dev/null 2>&1 || true
  fi
  (exit "$rc"); _suite_exit  # lib.sh's handler: stops Fjord, exits with rc
}
trap on_exit EXIT

# tool NAME ARGS...: one stock tool, bounded in time.
tool() { local t="$1"; shift; timeout --kill-after=5 "$TOOL_S" "$BIN/$t" "$@"; }
# consume OUT ARGS...: console consumer, bounded by WAIT_S; ARGS say the topic, the group, how many.
consume() { local out="$1"; shift; timeout --kill-after=5 "$WAIT_S" "$BIN/kafka-console-consumer.sh" "$@" >"$out" 2>"$out.err"; }
# no_errors NAME LOG: no ERROR line in a background JVM's log.
no_errors() {
  local lines
  lines="$(grep -c ' ERROR ' "$2")"
  if [ "$lines" -eq 0 ]; then pass "$1"; else fail "$1" "$lines ERROR lines, first: $(grep -m1 ' ERROR ' "$2" | cut -c1-300)"; fi
}

# The reference broker (MirrorMaker 2's target) takes 10-30 s: start it first, in the background.
# It needs two consecutive free ports (broker, controller).
REF_PORT="$(python3 -c '
import socket
while True:
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
')"
REF_BOOTSTRAP="127.0.0.1:$REF_PORT"
REF_STARTED=1
KAFKA_HEAP_OPTS="-Xmx384m -Xms384m" timeout 120 "$KAFKA_HOME/reference-kafka.sh" start "$REF_DIR" "$REF_PORT" 1 \
  >"$WORK/ref-start.out" 2>&1 &
REF_START_PID=$!

# The telemetry receiver is on for the whole suite: every Java client here pushes what step 1d's
# subscription asks for, beside its work.
HTTP_PORT="$(free_port)"
FJORD_HTTP_LISTENER="127.0.0.1:$HTTP_PORT" fjord_start "$WORK/data" --override group.initial.rebalance.delay.ms=0 \
  --override fjord.client.telemetry.enabled=true \
  || { fail "broker starts"; suite_finish; exit 1; }
B="$FJORD_BOOTSTRAP"

# ---- 1. topics and configs ---------------------------------------------------------------------
pids=()
for spec in cg:3 "$STREAMS_IN":2 "$STREAMS_OUT":2 mm2-src:2; do
  extra=()
  [ "${spec%%:*}" = cg ] && extra=(--config retention.ms=86400000)
  tool kafka-topics.sh --bootstrap-server "$B" --create --topic "${spec%%:*}" --partitions "${spec##*:}" "${extra[@]}" \
    >"$WORK/create-${spec%%:*}.out" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
assert_eq "kafka-topics --create: 4 topics" 4 "$(cat "$WORK"/create-*.out | grep -c '^Created topic ')"

# Inputs.
awk -v n="$N_GROUP" 'BEGIN { for (i = 0; i < n; i++) printf "k%d:group-value-%05d\n", i % 101, i }' >"$WORK/cg-in.txt"
awk -v n="$N_MM2" 'BEGIN { for (i = 0; i < n; i++) printf "m%d:mm2-value-%05d\n", i % 37, i }' >"$WORK/mm2-in.txt"
awk -v n="$N_CONNECT" 'BEGIN { for (i = 0; i < n; i++) printf "connect line %05d of the file source\n", i }' >"$WORK/connect-source.txt"
# WordCount input: keyed lines of 1-7 words from a 13-word vocabulary; the expected counts from awk.
awk -v n="$STREAMS_LINES" 'BEGIN {
  split("fjord kafka stream table topic offset group record batch segment leader fetch commit", w, " ")
  for (i = 0; i < n; i++) { line = "l" i ":"; k = 1 + i % 7
    for (j = 0; j < k; j++) line = line (j ? " " : "") w[1 + (i * 7 + j * 3) % 13]
    print line } }' >"$WORK/words-in.txt"
cut -d: -f2 "$WORK/words-in.txt" | tr ' ' '\n' | sort | uniq -c | awk '{ print $2, $1 }' >"$WORK/words-expected.txt"
WORDS_TOTAL="$(cut -d: -f2 "$WORK/words-in.txt" | wc -w)"

produce() { tool kafka-console-producer.sh --bootstrap-server "$B" --topic "$1" --property parse.key=true --property key.separator=: <"$2"; }
produce cg "$WORK/cg-in.txt" >"$WORK/produce-cg.out" 2>&1 &
P1=$!
produce "$STREAMS_IN" "$WORK/words-in.txt" >"$WORK/produce-words.out" 2>&1 &
P2=$!
produce mm2-src "$WORK/mm2-in.txt" >"$WORK/produce-mm2.out" 2>&1 &
P3=$!
ok=0
for p in "$P1" "$P2" "$P3"; do wait "$p" && ok=$((ok + 1)); done
assert_eq "kafka-console-producer: 3 inputs written, exit 0" 3 "$ok"
# A group on Fjord that MirrorMaker 2 finds when it starts: its offsets are synced to the target.
consume "$WORK/mm2-reader.txt" --bootstrap-server "$B" --topic mm2-src --group mm2-reader --from-beginning \
  --max-messages "$N_MM2_READ" --timeout-ms 20000 &
P_MM2_READER=$!

# ---- the long-running JVMs, started now so their start-up overlaps the short tools --------------
# Kafka Streams WordCount: in-memory stores (the distribution has no RocksDB jar), exactly_once_v2.
cat >"$WORK/streams.properties" <<EOF
bootstrap.servers=$B
application.id=$STREAMS_APP
processing.guarantee=exactly_once_v2
dsl.store.suppliers.class=org.apache.kafka.streams.state.BuiltInDslStoreSuppliers\$InMemoryDslStoreSuppliers
state.dir=$WORK/streams-state
commit.interval.ms=100
EOF
bg_start streams "$BIN/kafka-run-class.sh" org.apache.kafka.streams.examples.wordcount.WordCountDemo "$WORK/streams.properties"

# Connect standalone: the file source connector (its jar is kept off the classpath: plugin.path),
# string converters, an offsets file, the REST listener on a free loopback port.
mkdir -p "$WORK/plugins"
for jar in "$KAFKA_HOME"/libs/connect-file-*.jar; do ln -s "$jar" "$WORK/plugins/"; done
cat >"$WORK/connect-worker.properties" <<EOF
bootstrap.servers=$B
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename=$WORK/connect.offsets
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$(free_port)
plugin.path=$WORK/plugins
plugin.discovery=service_load
EOF
cat >"$WORK/connect-file-source.properties" <<EOF
name=file-source
connector.class=FileStreamSource
tasks.max=1
file=$WORK/connect-source.txt
topic=connect-lines
EOF
bg_start connect "$BIN/connect-standalone.sh" "$WORK/connect-worker.properties" "$WORK/connect-file-source.properties"

# MirrorMaker 2 (dedicated mode): Fjord (alias fjord) -> the reference broker (alias ref), one topic;
# no flow back, so no herder writes to Fjord.
wait "$P_MM2_READER"
assert_eq "console consumer (group mm2-reader) reads $N_MM2_READ records of mm2-src" "$N_MM2_READ" "$(wc -l <"$WORK/mm2-reader.txt")"
ref_rc=0
wait "$REF_START_PID" || ref_rc=$?
check "the reference Kafka broker starts (rc=$ref_rc)" test "$ref_rc" -eq 0
cat >"$WORK/mm2.properties" <<EOF
clusters=fjord, ref
fjord.bootstrap.servers=$B
ref.bootstrap.servers=$REF_BOOTSTRAP
fjord->ref.enabled=true
fjord->ref.topics=mm2-src
fjord->ref.sync.group.offsets.enabled=true
fjord->ref.sync.group.offsets.interval.seconds=1
fjord->ref.emit.checkpoints.interval.seconds=1
ref->fjord.enabled=false
ref->fjord.emit.heartbeats.enabled=false
replication.factor=1
checkpoints.topic.replication.factor=1
heartbeats.topic.replication.factor=1
offset-syncs.topic.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
config.storage.replication.factor=1
EOF
[ "$ref_rc" -eq 0 ] && bg_start mm2 "$BIN/connect-mirror-maker.sh" "$WORK/mm2.properties"

# ---- 1b. describe and configs ------------------------------------------------------------------
tool kafka-topics.sh --bootstrap-server "$B" --describe --topic "cg|mm2-src|$STREAMS_IN" >"$WORK/topics-describe.out" 2>&1
assert_eq "kafka-topics --describe: partition counts" "cg:3 mm2-src:2 $STREAMS_IN:2" \
  "$(awk '$1 == "Topic:" && $5 == "PartitionCount:" { print $2 ":" $6 }' "$WORK/topics-describe.out" | sort | xargs)"
check "kafka-topics --describe: cg has its create-time retention.ms" grep -q 'Topic: cg.*Configs:.*retention.ms=86400000' "$WORK/topics-describe.out"
tool kafka-configs.sh --bootstrap-server "$B" --alter --entity-type topics --entity-name cg \
  --add-config max.message.bytes=200000,cleanup.policy=delete --delete-config retention.ms >"$WORK/configs-alter.out" 2>&1
check "kafka-configs --alter (add two, delete one) completes" grep -q '^Completed updating config for topic cg' "$WORK/configs-alter.out"
tool kafka-configs.sh --bootstrap-server "$B" --describe --entity-type topics --entity-name cg >"$WORK/configs-describe.out" 2>&1
assert_eq "kafka-configs --describe: the dynamic configs are the two added" \
  "cleanup.policy=delete max.message.bytes=200000" \
  "$(awk '/DYNAMIC_TOPIC_CONFIG/ { print $1 }' "$WORK/configs-describe.out" | sort | xargs)"

# ---- 1c. client metrics subscriptions (KIP-714) ------------------------------------------------
# The outputs are Kafka 4.0's (checked against the reference broker). --describe without a name
# lists the subscriptions (ListClientMetricsResources) and describes each (DescribeConfigs).
tool kafka-client-metrics.sh --bootstrap-server "$B" --alter --name cm1 --metrics org.apache.kafka.producer. \
  --interval 1000 --match client_software_name=apache-kafka-java >"$WORK/cm-alter.out" 2>&1
check "kafka-client-metrics --alter completes" grep -qx 'Altered client metrics config for cm1.' "$WORK/cm-alter.out"
tool kafka-client-metrics.sh --bootstrap-server "$B" --describe >"$WORK/cm-describe.out" 2>&1
assert_eq "kafka-client-metrics --describe: the subscription as altered" \
  "Client metrics configs for cm1 are:|  interval.ms=1000|  match=client_software_name=apache-kafka-java|  metrics=org.apache.kafka.producer." \
  "$(paste -sd'|' "$WORK/cm-describe.out")"
tool kafka-client-metrics.sh --bootstrap-server "$B" --delete --name cm1 >"$WORK/cm-delete.out" 2>&1 &
tool kafka-client-metrics.sh --bootstrap-server "$B" --alter --name cm2 --interval 10 >"$WORK/cm-bad.out" 2>&1
wait $!
check "kafka-client-metrics --delete completes" grep -qx 'Deleted client metrics config for cm1.' "$WORK/cm-delete.out"
check "kafka-client-metrics --alter --interval 10 is refused in Kafka's words" \
  grep -qx 'Error while executing client metrics command : Invalid value 10 for interval.ms, interval must be between 100 and 3600000 (1 hour)' "$WORK/cm-bad.out"

# ---- 1d. client telemetry (KIP-714) --------------------------------------------------------------
# The producer (about 2 s to start) sends a record every 0.5 s for 10 s and pushes its metrics about
# every second after its first GetTelemetrySubscriptions (a push that comes too early is throttled,
# as Kafka throttles it); /metrics is read every 0.5 s while it runs, so what is checked is a
# periodic push, not only its last (terminating) one.
tool kafka-client-metrics.sh --bootstrap-server "$B" --alter --name all --metrics org.apache.kafka.producer. \
  --interval 1000 >"$WORK/tm-alter.out" 2>&1
check "kafka-client-metrics --alter all (interval 1000) completes" grep -qx 'Altered client metrics config for all.' "$WORK/tm-alter.out"
( for i in $(seq 1 20); do echo "t$i"; sleep 0.5; done ) \
  | tool kafka-console-producer.sh --bootstrap-server "$B" --topic telemetry --producer-property client.id=tm-producer \
  >"$WORK/tm-produce.out" 2>&1 &
P_TM=$!
pushed=""
while kill -0 "$P_TM" 2>/dev/null && [ -z "$pushed" ]; do
  sleep 0.5
  pushed="$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" \
    | grep -E '^org_apache_kafka_producer_record_send_total\{client_instance_id="[^"]+",client_id="tm-producer"\} [1-9]')"
done
wait "$P_TM"
check "telemetry: the running producer's pushed record-send-total (> 0) is on /metrics under client_id tm-producer" \
  test -n "$pushed"
log "telemetry: $pushed"

# ---- 2. consumer groups ------------------------------------------------------------------------
consume "$WORK/g-classic.txt" --bootstrap-server "$B" --topic cg --group g-classic --from-beginning \
  --max-messages "$N_GROUP" --timeout-ms 20000 --property print.key=true --property key.separator=: &
P1=$!
consume "$WORK/g-848.txt" --bootstrap-server "$B" --topic cg --group g-848 --from-beginning \
  --consumer-property group.protocol=consumer --max-messages "$N_GROUP" --timeout-ms 20000 \
  --property print.key=true --property key.separator=: &
P2=$!
wait "$P1" "$P2"
sort "$WORK/cg-in.txt" >"$WORK/cg-in.sorted"
for g in classic 848; do
  assert_eq "console consumer (group g-$g) reads all $N_GROUP records, keys and values" "$N_GROUP same" \
    "$(wc -l <"$WORK/g-$g.txt") $(sort "$WORK/g-$g.txt" | cmp -s - "$WORK/cg-in.sorted" && echo same || echo differ)"
done
# describe_sum FILE GROUP: "rows current log_end lag" summed over the topic cg's partitions.
describe_sum() { awk -v g="$2" '$1 == g && $2 == "cg" { r++; c += $4; e += $5; l += $6 } END { print r + 0, c + 0, e + 0, l + 0 }' "$1"; }
tool kafka-consumer-groups.sh --bootstrap-server "$B" --describe --group g-classic --group g-848 --group mm2-reader \
  >"$WORK/groups-describe.out" 2>&1
for g in classic 848; do
  assert_eq "kafka-consumer-groups --describe g-$g: 3 partitions, current offsets sum $N_GROUP == log end, lag 0" \
    "3 $N_GROUP $N_GROUP 0" "$(describe_sum "$WORK/groups-describe.out" "g-$g")"
done
tool kafka-consumer-groups.sh --bootstrap-server "$B" --reset-offsets --to-earliest --execute --group g-classic --topic cg \
  >"$WORK/groups-reset.out" 2>&1
assert_eq "kafka-consumer-groups --reset-offsets --to-earliest --execute: 3 partitions to 0" "3 0" \
  "$(awk '$1 == "g-classic" && $2 == "cg" { r++; s += $4 } END { print r + 0, s + 0 }' "$WORK/groups-reset.out")"
tool kafka-consumer-groups.sh --bootstrap-server "$B" --describe --group g-classic >"$WORK/groups-describe2.out" 2>&1
assert_eq "kafka-consumer-groups --describe after the reset: current offsets 0, lag $N_GROUP" \
  "3 0 $N_GROUP $N_GROUP" "$(describe_sum "$WORK/groups-describe2.out" g-classic)"

# ---- 3. the transactional perf test, read_committed --------------------------------------------
tool kafka-producer-perf-test.sh --topic txn --num-records "$N_TXN" --record-size 100 --throughput -1 \
  --transactional-id perf-txn --transaction-duration-ms 100 --producer-props bootstrap.servers="$B" \
  >"$WORK/perf-txn.out" 2>&1
check "kafka-producer-perf-test --transactional-id: $N_TXN records sent" grep -q "^$N_TXN records sent" "$WORK/perf-txn.out"
# One record more than sent asked for: the consumer ends on its idle timeout, having read all there is.
consume "$WORK/txn-read.txt" --bootstrap-server "$B" --topic txn --from-beginning --isolation-level read_committed \
  --max-messages "$((N_TXN + 1))" --timeout-ms 4000
assert_eq "read_committed console consumer reads exactly the $N_TXN committed records" "$N_TXN" "$(wc -l <"$WORK/txn-read.txt")"
# transaction.version 2 (KIP-890, as on a new Kafka 4.0 cluster): every EndTxn moves the producer one
# epoch up and its commit marker carries the new one, so the n-th marker of the new producer id is at
# epoch n. (The client sends no AddPartitionsToTxn: Produce v12 adds the partition.)
tool kafka-dump-log.sh --files "$(ls "$WORK"/data/txn-0/*.log | head -1)" >"$WORK/txn-dump.out" 2>&1
assert_eq "KIP-890: the transactional perf test's markers carry epochs 1, 2, ..., one per transaction" \
  "rising" "$(awk '/isControl: true/ { for (i = 1; i <= NF; i++) if ($i == "producerEpoch:") e = $(i + 1); n++; if (e != n) bad = 1 }
    END { print (n >= 1 && !bad) ? "rising" : "not rising (" n " markers, last epoch " e ")" }' "$WORK/txn-dump.out")"

# ---- 4. Streams WordCount -----------------------------------------------------------------------
# Without the state store cache every input word gives one output record: WORDS_TOTAL of them.
consume "$WORK/words-out.txt" --bootstrap-server "$B" --topic "$STREAMS_OUT" --from-beginning --isolation-level read_committed \
  --max-messages "$WORDS_TOTAL" --timeout-ms 60000 --property print.key=true \
  --value-deserializer org.apache.kafka.common.serialization.LongDeserializer &
P_WORDS=$!
# ---- 5. Connect: the copied lines ---------------------------------------------------------------
consume "$WORK/connect-read.txt" --bootstrap-server "$B" --include connect-lines --consumer-property metadata.max.age.ms=1000 \
  --from-beginning --max-messages "$N_CONNECT" --timeout-ms 60000 &
P_CONNECT=$!
# ---- 6. MirrorMaker 2: the replicated topic on the reference broker ------------------------------
consume "$WORK/mm2-read.txt" --bootstrap-server "$REF_BOOTSTRAP" --include 'fjord\.mm2-src' \
  --consumer-property metadata.max.age.ms=1000 --from-beginning --max-messages "$N_MM2" --timeout-ms 80000 \
  --property print.key=true --property key.separator=: --property print.partition=true &
P_MM2=$!

wait "$P_WORDS"
assert_eq "Streams WordCount (exactly_once_v2, in-memory stores): $WORDS_TOTAL output records, read_committed" \
  "$WORDS_TOTAL" "$(wc -l <"$WORK/words-out.txt")"
# Each word's counts arrive as 1, 2, ..., n (no duplicate, no gap) and n is its count in the input.
assert_eq "Streams WordCount: each word counted 1..n in order, n its count in the input" "$(cat "$WORK/words-expected.txt")" \
  "$(awk -F'\t' '{ if ($2 != seen[$1] + 1) bad[$1] = 1; seen[$1] = $2 } END { for (w in seen) print w, (w in bad) ? "out-of-order" : seen[w] }' \
     "$WORK/words-out.txt" | sort)"

wait "$P_CONNECT"
assert_eq "Connect file source: the $N_CONNECT lines of the file, in order" "$N_CONNECT same" \
  "$(wc -l <"$WORK/connect-read.txt") $(cmp -s "$WORK/connect-read.txt" "$WORK/connect-source.txt" && echo same || echo differ)"

# The first runs of Streams and Connect end together, while the Streams group's offsets are read
# (they stay committed). Logs are read before a stop: MirrorMaker 2's checkpoint task may log an
# ERROR while it shuts down (its admin client closes under it).
tool kafka-consumer-groups.sh --bootstrap-server "$B" --describe --group "$STREAMS_APP" >"$WORK/streams-group.out" 2>&1 &
P1=$!
no_errors "Streams log: no ERROR while it runs" "$WORK/streams.out"
no_errors "Connect log: no ERROR while it runs" "$WORK/connect.out"
stop_checked streams connect
wait "$P1"
assert_eq "Streams group: committed offsets of $STREAMS_IN == log end ($STREAMS_LINES), lag 0" "$STREAMS_LINES $STREAMS_LINES 0" \
  "$(awk -v t="$STREAMS_IN" '$2 == t { c += $4; e += $5; l += $6 } END { print c + 0, e + 0, l + 0 }' "$WORK/streams-group.out")"

# ---- 5b. Connect restarted with the same offsets file resumes where it stopped -------------------
assert_eq "Connect offsets file: position == the file's $(wc -c <"$WORK/connect-source.txt") bytes" \
  "$(wc -c <"$WORK/connect-source.txt")" "$(grep -ao '"position":[0-9]*' "$WORK/connect.offsets" | cut -d: -f2)"
awk -v n="$N_CONNECT" -v m="$N_CONNECT_MORE" 'BEGIN { for (i = n; i < n + m; i++) printf "connect line %05d, written while Connect was down\n", i }' \
  >>"$WORK/connect-source.txt"
bg_start connect2 "$BIN/connect-standalone.sh" "$WORK/connect-worker.properties" "$WORK/connect-file-source.properties"
consume "$WORK/connect-read2.txt" --bootstrap-server "$B" --topic connect-lines --from-beginning \
  --max-messages "$((N_CONNECT + N_CONNECT_MORE))" --timeout-ms 60000 &
P_CONNECT2=$!

# ---- 4b. the Streams application reset tool, then the same application again --------------------
# A stopped Streams instance does not leave its group (it waits for its session timeout, 45 s, so
# that a restart does not rebalance): without --force the tool refuses the group as still active.
# --force removes the member first. The 4.0 tool executes unless --dry-run (it has no --execute).
tool kafka-streams-application-reset.sh --bootstrap-server "$B" --application-id "$STREAMS_APP" \
  --input-topics "$STREAMS_IN" --force >"$WORK/streams-reset.out" 2>&1
check "kafka-streams-application-reset: exit 0, Done" grep -q '^Done' "$WORK/streams-reset.out"
assert_eq "kafka-streams-application-reset: deletes the changelog and the repartition topic" "changelog repartition" \
  "$(sed -n 's/^Deleting inferred internal topics \[\(.*\)\]$/\1/p' "$WORK/streams-reset.out" | tr -d ' ' | tr ',' '\n' \
     | sed -n "s/^$STREAMS_APP-.*-\(changelog\|repartition\)\$/\1/p" | sort | xargs)"
tool kafka-consumer-groups.sh --bootstrap-server "$B" --describe --group "$STREAMS_APP" >"$WORK/streams-group-reset.out" 2>&1 &
P1=$!
tool kafka-topics.sh --bootstrap-server "$B" --list >"$WORK/topics-after-reset.out" 2>&1 &
P2=$!
wait "$P1" "$P2"
# Only the input topic's offsets are left, at its beginning (the deleted topics' offsets went with them).
assert_eq "Streams group after the reset: $STREAMS_IN's offsets at 0, lag $STREAMS_LINES, no other topic" \
  "$STREAMS_IN:0:0 $STREAMS_IN:1:0 lag $STREAMS_LINES" \
  "$(awk -v g="$STREAMS_APP" '$1 == g { print $2 ":" $3 ":" $4 }' "$WORK/streams-group-reset.out" | sort | xargs) lag $(
     awk -v g="$STREAMS_APP" '$1 == g { l += $6 } END { print l + 0 }' "$WORK/streams-group-reset.out")"
assert_eq "kafka-topics --list after the reset: no $STREAMS_APP- topic left, the input and output kept" "0 1 1" \
  "$(grep -c "^$STREAMS_APP-" "$WORK/topics-after-reset.out") $(grep -cx "$STREAMS_IN" "$WORK/topics-after-reset.out") $(grep -cx "$STREAMS_OUT" "$WORK/topics-after-reset.out")"
# Local state goes too (what KafkaStreams#cleanUp does); then the same application on the same input.
rm -rf "$WORK/streams-state"
bg_start streams2 "$BIN/kafka-run-class.sh" org.apache.kafka.streams.examples.wordcount.WordCountDemo "$WORK/streams.properties"
consume "$WORK/words-out2.txt" --bootstrap-server "$B" --topic "$STREAMS_OUT" --from-beginning --isolation-level read_committed \
  --max-messages "$((2 * WORDS_TOTAL))" --timeout-ms 60000 --property print.key=true \
  --value-deserializer org.apache.kafka.common.serialization.LongDeserializer &
P_WORDS2=$!

wait "$P_MM2"
assert_eq "MirrorMaker 2: fjord.mm2-src on the reference broker holds all $N_MM2 records, keys and values" "$N_MM2 same" \
  "$(wc -l <"$WORK/mm2-read.txt") $(cut -d: -f3- "$WORK/mm2-read.txt" | sort | cmp -s - <(sort "$WORK/mm2-in.txt") && echo same || echo differ)"
assert_eq "MirrorMaker 2: the replicated topic has the source's 2 partitions" 2 \
  "$(cut -d: -f2 "$WORK/mm2-read.txt" | sort -u | wc -l)"
# The group's offsets on the target: MirrorMaker 2 translates each conservatively (never past the
# source's committed offset). Polled until both partitions are there (the sync runs every second).
awk '$1 == "mm2-reader" && $2 == "mm2-src" { print $3, $4 }' "$WORK/groups-describe.out" | sort >"$WORK/mm2-reader-source.txt"
assert_eq "mm2-reader on Fjord: offsets committed on 2 partitions summing to $N_MM2_READ" "2 $N_MM2_READ" \
  "$(awk '{ r++; s += $2 } END { print r + 0, s + 0 }' "$WORK/mm2-reader-source.txt")"
deadline=$(( $(date +%s) + 40 ))
while :; do
  tool kafka-consumer-groups.sh --bootstrap-server "$REF_BOOTSTRAP" --describe --group mm2-reader >"$WORK/mm2-reader-target.out" 2>&1
  [ "$(awk '$2 == "fjord.mm2-src" && $4 ~ /^[0-9]+$/' "$WORK/mm2-reader-target.out" | wc -l)" -eq 2 ] && break
  [ "$(date +%s)" -ge "$deadline" ] && break
  sleep 3
done
assert_eq "MirrorMaker 2: mm2-reader's offsets on the target's fjord.mm2-src, each in 1..the source offset" "0 ok
1 ok" "$(awk '$2 == "fjord.mm2-src" { print $3, $4 }' "$WORK/mm2-reader-target.out" | sort \
  | join - "$WORK/mm2-reader-source.txt" | awk '{ print $1, ($2 > 0 && $2 <= $3) ? "ok" : "translated " $2 " of " $3 }')"

# The second run: the first run's counts, then each word counted again from 1 (nothing carried
# over from before the reset), in order, up to its count in the input.
wait "$P_WORDS2"
assert_eq "Streams after the reset: $((2 * WORDS_TOTAL)) output records (two runs), read_committed" \
  "$((2 * WORDS_TOTAL))" "$(wc -l <"$WORK/words-out2.txt")"
assert_eq "Streams after the reset: each word counted 1..n, then 1..n again, n its count in the input" \
  "$(awk '{ print $1, "1.." $2, "1.." $2 }' "$WORK/words-expected.txt")" \
  "$(awk -F'\t' 'NR == FNR { split($0, f, " "); n[f[1]] = f[2]; next }
     { w = $1; if ($2 == 1 && seen[w] > 0) { if (seen[w] != n[w]) bad[w] = 1; runs[w] = runs[w] "1.." seen[w] " " }
       else if ($2 != seen[w] + 1) bad[w] = 1
       seen[w] = $2 }
     END { for (w in seen) print w, (w in bad) ? "out-of-order" : runs[w] "1.." seen[w] }' "$WORK/words-expected.txt" "$WORK/words-out2.txt" | sort)"

# Connect's second run: the topic holds the original lines once, then the new ones; on its stop the
# offsets file records the new length; nothing more was produced (the end offset).
wait "$P_CONNECT2"
assert_eq "Connect after the restart: the topic holds the $N_CONNECT lines, then the $N_CONNECT_MORE new ones, each once, in order" \
  "$((N_CONNECT + N_CONNECT_MORE)) same" \
  "$(wc -l <"$WORK/connect-read2.txt") $(cmp -s "$WORK/connect-read2.txt" "$WORK/connect-source.txt" && echo same || echo differ)"
no_errors "MirrorMaker 2 log: no ERROR while it runs" "$WORK/mm2.out"
no_errors "Streams log (after the reset): no ERROR while it runs" "$WORK/streams2.out"
no_errors "Connect log (after the restart): no ERROR while it runs" "$WORK/connect2.out"
stop_checked streams2 connect2 mm2
assert_eq "Connect offsets file after the restart: position == the file's new $(wc -c <"$WORK/connect-source.txt") bytes" \
  "$(wc -c <"$WORK/connect-source.txt")" "$(grep -ao '"position":[0-9]*' "$WORK/connect.offsets" | cut -d: -f2)"

# End offsets after the background work: the transactional topics hold markers past their records;
# Connect's topic holds exactly the file's lines.
tool kafka-get-offsets.sh --bootstrap-server "$B" --topic "txn|$STREAMS_OUT|connect-lines" >"$WORK/end-offsets.out" 2>&1
txn_end="$(awk -F: '$1 == "txn" { s += $3 } END { print s + 0 }' "$WORK/end-offsets.out")"
check "transactional perf test: log end offset $txn_end > $N_TXN (commit markers)" test "$txn_end" -gt "$N_TXN"
words_end="$(awk -F: -v t="$STREAMS_OUT" '$1 == t { s += $3 } END { print s + 0 }' "$WORK/end-offsets.out")"
check "Streams output: log end offset $words_end > $((2 * WORDS_TOTAL)) (commit markers)" test "$words_end" -gt "$((2 * WORDS_TOTAL))"
assert_eq "Connect's topic: log end offset == $((N_CONNECT + N_CONNECT_MORE)) (no line sent twice)" \
  "$((N_CONNECT + N_CONNECT_MORE))" "$(awk -F: '$1 == "connect-lines" { s += $3 } END { print s + 0 }' "$WORK/end-offsets.out")"

suite_finish
