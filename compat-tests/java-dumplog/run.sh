#!/usr/bin/env bash
# Apache Kafka 4.0's own kafka-dump-log on segments Fjord wrote: deep iteration of every .log (every
# record readable, offsets consecutive), the default verification of every .index (each entry names
# the last offset of the batch at its position) and .timeindex (each entry names the last offset of a
# batch whose max timestamp is the entry's, timestamps strictly growing), and --index-sanity-check.
# Checked twice: on a copy of the data dir taken while Fjord runs (the active segments' indexes hold
# their entries as data arrives), and on the data dir after a clean stop (sealed and closed indexes).
# Before the checks, kafka-reassign-partitions.sh with log_dirs gathers the topics into the first
# of Fjord's two log dirs (AlterReplicaLogDirs, then --verify until it reports the moves done), so
# the segments and indexes checked include those Fjord's move copied.
# Any line the tool prints on stderr fails the suite. Needs kcat and the Kafka distribution
# (KAFKA_HOME, default ../shared/kafka-4.0.0 beside the repository) with Java 17.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init java-dumplog

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"
DUMP="$KAFKA_HOME/bin/kafka-dump-log.sh"
[ -x "$DUMP" ] || die "kafka-dump-log.sh not found under KAFKA_HOME=$KAFKA_HOME"
command -v kcat >/dev/null || die "kcat not installed (scripts/install-deps.sh)"
command -v java >/dev/null || die "java not installed"
export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="-Xmx256m"
mkdir -p "$LOG_DIR"

N="${DUMPLOG_RECORDS:-20000}"
TOPICS=(plain lz4 keyed)
# 256 KiB segments so each topic rolls several times; index entries every 1000 bytes. Two log
# dirs: the topics are spread over them until the move below.
fjord_start "$WORK/data" --override "log.dirs=$WORK/data,$WORK/data2" --override num.partitions=1 --override log.segment.bytes=262144 \
  --override log.index.interval.bytes=1000 || { fail "broker starts"; suite_finish; exit 1; }
KC=(kcat -b "$FJORD_BOOTSTRAP" -m 15 -X socket.timeout.ms=15000)

# Records of varied sizes; batches of at most 7 records (several batches per index interval).
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) { printf "record-%06d-", i; for (j = 0; j < i % 90; j++) printf "x"; printf "\n" } }' >"$WORK/values.txt"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) { printf "key-%d\x1fvalue-%06d-", i % 500, i; for (j = 0; j < i % 40; j++) printf "y"; printf "\x1e" } }' >"$WORK/keyed.txt"
produced=0
"${KC[@]}" -P -t plain -p 0 -X batch.num.messages=7 -X linger.ms=5 -l "$WORK/values.txt" >"$WORK/produce-plain.out" 2>&1 && produced=$((produced + 1))
"${KC[@]}" -P -t lz4 -p 0 -z lz4 -X batch.num.messages=50 -X linger.ms=5 -l "$WORK/values.txt" >"$WORK/produce-lz4.out" 2>&1 && produced=$((produced + 1))
"${KC[@]}" -P -t keyed -p 0 -K '\x1f' -D '\x1e' -X batch.num.messages=7 -X linger.ms=5 -l "$WORK/keyed.txt" >"$WORK/produce-keyed.out" 2>&1 && produced=$((produced + 1))
assert_eq "kcat -P $N records to each of ${TOPICS[*]}" 3 "$produced"

# Every topic to the first log dir (a no-op for those already there), with the stock tool.
REASSIGN="$KAFKA_HOME/bin/kafka-reassign-partitions.sh"
moving=0
for t in "${TOPICS[@]}"; do [ -d "$WORK/data2/$t-0" ] && moving=$((moving + 1)); done
check "some topic is in the second log dir before the move" test "$moving" -gt 0
parts=""
for t in "${TOPICS[@]}"; do parts="$parts${parts:+,}{\"topic\":\"$t\",\"partition\":0,\"replicas\":[1],\"log_dirs\":[\"$WORK/data\"]}"; done
echo "{\"version\":1,\"partitions\":[$parts]}" >"$WORK/move.json"
"$REASSIGN" --bootstrap-server "$FJORD_BOOTSTRAP" --reassignment-json-file "$WORK/move.json" --execute >"$WORK/reassign-execute.out" 2>&1
check "kafka-reassign-partitions.sh --execute with log_dirs exits 0" test $? -eq 0
assert_eq "--execute starts a log dir move for each replica" 3 "$(grep -c "^Successfully started moving log directory to $WORK/data for replica" "$WORK/reassign-execute.out")"
for _ in 1 2 3 4 5; do
  "$REASSIGN" --bootstrap-server "$FJORD_BOOTSTRAP" --reassignment-json-file "$WORK/move.json" --verify >"$WORK/reassign-verify.out" 2>&1
  [ "$(grep -c '^Reassignment of replica .* completed successfully' "$WORK/reassign-verify.out")" -eq 3 ] && break
  sleep 1
done
assert_eq "--verify reports every replica's move completed" 3 "$(grep -c '^Reassignment of replica .* completed successfully' "$WORK/reassign-verify.out")"
left=0
for t in "${TOPICS[@]}"; do [ -e "$WORK/data2/$t-0" ] || [ ! -d "$WORK/data/$t-0" ] && left=$((left + 1)); done
assert_eq "every topic is in the first log dir only" 0 "$left"

# dump_check LABEL DATA_DIR: runs the tool on the topics' segment files under DATA_DIR.
dump_check() {
  local label="$1" dir="$2" t
  local logs=() indexes=()
  for t in "${TOPICS[@]}"; do
    logs+=("$dir/$t-0"/*.log)
    indexes+=("$dir/$t-0"/*.index "$dir/$t-0"/*.timeindex)
  done
  local all=("${logs[@]}" "${indexes[@]}")
  local files
  files="$(IFS=,; echo "${all[*]}")"
  local out="$WORK/dump-$label.out" err="$WORK/dump-$label.err"
  "$DUMP" --files "$files" --deep-iteration >"$out" 2>"$err"
  local rc=$?
  check "[$label] kafka-dump-log --deep-iteration exits 0" test "$rc" -eq 0
  if [ -s "$err" ]; then
    fail "[$label] kafka-dump-log finds no index mismatch, timestamp mismatch or offset gap" "$(head -c 600 "$err")"
  else
    pass "[$label] kafka-dump-log finds no index mismatch, timestamp mismatch or offset gap"
  fi
  # Every record of every topic was read back by the tool.
  local records
  records="$(grep -c '^| offset: ' "$out")"
  assert_eq "[$label] deep iteration reads all $((N * 3)) records" "$((N * 3))" "$records"
  local entries
  entries="$(grep -c '^offset: [0-9]* position: ' "$out")"
  check "[$label] the offset indexes hold entries ($entries)" test "$entries" -gt "$(( N / 100 ))"
  entries="$(grep -c '^timestamp: [0-9]* offset: ' "$out")"
  check "[$label] the time indexes hold entries ($entries)" test "$entries" -gt 0

  local sout="$WORK/sanity-$label.out" serr="$WORK/sanity-$label.err"
  files="$(IFS=,; echo "${indexes[*]}")"
  "$DUMP" --files "$files" --index-sanity-check >"$sout" 2>"$serr"
  rc=$?
  # The tool says "is empty." for an offset index without entries and checks every time index.
  local checked=0 f
  for f in "${indexes[@]}"; do
    case "$f" in *.timeindex) checked=$((checked + 1)) ;; *) [ -s "$f" ] && checked=$((checked + 1)) ;; esac
  done
  check "[$label] kafka-dump-log --index-sanity-check exits 0 with nothing on stderr" test "$rc" -eq 0 -a ! -s "$serr"
  assert_eq "[$label] every index with entries passes the sanity check" "$checked" "$(grep -c 'passed sanity check' "$sout")"
}

# While Fjord runs: a copy of the directory, active segments included.
cp -r "$WORK/data" "$WORK/copy"
active_index="$(ls "$WORK/copy/plain-0"/*.index | tail -n 1)"
check "the active segment's offset index holds entries while Fjord runs" test -s "$active_index"
check "several segments per topic" test "$(ls "$WORK/copy/plain-0"/*.log | wc -l)" -ge 3
dump_check running-copy "$WORK/copy"

fjord_stop
check "broker exits cleanly on SIGTERM" test $? -eq 0
dump_check after-stop "$WORK/data"

suite_finish
