#!/usr/bin/env bash
# Fjord and Apache Kafka 4.0 side by side in one run: the same client (librdkafka's own load
# generator, examples/rdkafka_performance.c from the librdkafka source in rdkafka-sys), the same
# scenarios, the two brokers alternating (Fjord Kafka, then Kafka Fjord, ...), on equal footing:
# every produce run writes a fresh topic made with the same CreateTopics request on both, and every
# run starts from the same page-cache state (sync and drop_caches when root). Broker CPU
# (utime+stime of the broker process, /proc/PID/stat) is read around each run and divided by the
# bytes moved. Medians, spread (min-max) and Fjord/Kafka ratios go to a table on stdout and to
# bench/results/<stamp>.json with every run and the conditions.
#   scripts/bench.sh                      BENCH_RUNS rounds (default 3) of BENCH_COUNT records (1M)
#   BENCH_QUICK=1 scripts/bench.sh        200k records per run: a few minutes, to try it out
#   BENCH_LIMITS=1                        also measure the machine's limits (disk, page cache, loopback)
#   BENCH_DROPBEHIND=1                    also a Fjord-only broker with drop-behind on
#   BENCH_SCENARIOS="produce_1p_acks1 ..." only these scenarios (default: all of them)
#   BENCH_SUSTAIN_FACTOR=4                produce_1p_sustained writes this many times BENCH_COUNT records
#   BENCH_FJORD_OVERRIDES="k=v k=v"       extra settings for the measured Fjord broker (A/B runs)
#   BENCH_PRODUCER_PROPS="k=v k=v"        librdkafka properties for the produce runs, both brokers
#                                         (e.g. queue.buffering.max.messages=2000000)
#   BENCH_PRODUCER_LINGER_MS=5            linger.ms of the produce runs (default: librdkafka's own
#                                         default, 5; the generator's source sets 1000, see below)
# Kafka comes from $KAFKA_HOME, else ../shared/kafka-4.0.0 beside the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK="${BENCH_QUICK:-0}"
RUNS="${BENCH_RUNS:-3}"
if [ "$QUICK" = 1 ]; then
  COUNT="${BENCH_COUNT:-200000}"; LAT_COUNT="${BENCH_LATENCY_COUNT:-60000}"
else
  COUNT="${BENCH_COUNT:-1000000}"; LAT_COUNT="${BENCH_LATENCY_COUNT:-200000}"
fi
SIZE=1024              # record value bytes
LAT_RATE=20000         # records/s in the latency scenario
LAT_WARMUP=20000       # latency samples dropped at the start of each run (its first second)
# Seconds to wait after dropping the page cache. On a VM with free page reporting (virtio-balloon)
# the kernel hands freed pages back to the host about 2 s after they are freed, and a page cache
# page written after that faults on the host first: measured on this machine kind, 1M x 1 KiB to
# a fresh Fjord topic took 0.9-1.6 s of broker CPU when started right after the drop and 2.1-3.3 s
# after 5 s (6 alternating pairs). Without the wait, a run's first seconds get the cheap pages,
# which favours whichever broker writes faster; with it, both start from the state a broker that
# has been running for a while is in.
SETTLE_S="${BENCH_SETTLE_S:-5}"
# linger.ms of the throughput producers. rdkafka_performance's source sets linger.ms=1000 for
# itself; librdkafka's default is 5 (the Java client's too). With 1000, the last partial batch of
# a run (1M x 1 KiB: 122 records after 1034 full 1 MB batches) waits out the linger before it is
# sent, so every run ended with up to a second in which nothing moved, and that fixed tail, not
# the broker, decided much of the rate: measured here on one Fjord, 3 runs each, 450-480 MB/s with
# 1000 against 680-720 MB/s with 5, and the client's stats showed the 122 records queued for the
# last half second. The produce runs therefore use the client's default.
PRODUCER_LINGER_MS="${BENCH_PRODUCER_LINGER_MS:-5}"
# produce_1p_sustained writes this many times COUNT records in one run (4 GiB by default), the page
# cache dropped only before it: what a broker in service sees once its appends no longer fit in
# pages freed a moment ago. Measured on this machine kind (2026-12-06, one broker each, 1 GiB runs
# back to back, no drop between): Fjord held 830-1100 MB/s for 8 GiB with its default drop-behind
# and fell to 300-470 MB/s once the page cache passed about 3 GiB with drop-behind off; Kafka went
# from 253-296 MB/s in the first 2 GiB to 180-226 MB/s.
SUSTAIN_FACTOR="${BENCH_SUSTAIN_FACTOR:-4}"
WORK="$ROOT/bench/out"
OUT_DIR="$ROOT/bench/results"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/../shared/kafka-4.0.0}"
mkdir -p "$WORK" "$OUT_DIR"

log() { printf '[bench] %s\n' "$*" >&2; }

[ -x "$KAFKA_HOME/reference-kafka.sh" ] || {
  log "no Apache Kafka 4.0 at $KAFKA_HOME (set KAFKA_HOME, or put it at ../shared/kafka-4.0.0)"; exit 1; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# Disk: a round writes about 3.3 x COUNT records per broker (4 produce runs, lz4 compresses to
# little, plus the latency topic); each round's topics are deleted after it (Kafka removes the
# files 60 s later, file.delete.delay.ms), so about two rounds are on disk at once, plus warm-up.
need_kib=$(( (2 * 33 * COUNT / 10 + ${BENCH_WARMUP_COUNT:-1000000}) * 2 + 2 * 1024 * 1024 ))
free_kib=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
[ "$free_kib" -ge "$need_kib" ] || {
  log "needs about $((need_kib / 1048576)) GiB free in $WORK, has $((free_kib / 1048576)) GiB: lower BENCH_COUNT"; exit 1; }

# 1. The broker and the load generator (and the helpers shared with the other bench scripts:
#    free_port, wait_port, cpu_ticks, rss_kib, drop_cache, parse_perf, percentiles).
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$WORK"
ADMIN="$ROOT/scripts/bench-admin.py"
CLK_TCK=$(getconf CLK_TCK)
if [ -w /proc/sys/vm/drop_caches ]; then
  DROP=1
else
  DROP=0
  log "NOT ROOT: the page cache cannot be dropped; every run only syncs first, so runs inherit whatever the one before left cached"
fi

# 2. Optional: the machine's own limits (BENCH_LIMITS=1; about a minute). Sequential write of the
#    data disk with fdatasync (dd, 1 GiB), sustained writes into the page cache with no sync (4 GiB,
#    the median GiB after the first, which may reuse pages just freed), memory copy, loopback TCP
#    (iperf3 for 5 s).
disk_mb_s=null; pagecache_mb_s=null; memcpy_mb_s=null; loopback_mb_s=null
if [ "${BENCH_LIMITS:-0}" = 1 ]; then
  disk_mb_s=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024 conv=fdatasync 2>&1 | python3 -c '
import re, sys
m = re.search(r"(\d+) bytes.* copied, ([0-9.]+) s", sys.stdin.read())
print(f"{int(m.group(1)) / float(m.group(2)) / 1e6:.0f}" if m else "null")')
  rm -f "$WORK/dd.bin"
  pagecache_mb_s=$(python3 - "$WORK/dd.bin" <<'PY'
import os, statistics, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk, rates = b"\0" * (1 << 20), []
for _ in range(4):
    t = time.perf_counter()
    for _ in range(1024):
        os.write(fd, chunk)
    rates.append((1 << 30) / (time.perf_counter() - t) / 1e6)
os.close(fd)
print(f"{statistics.median(rates[1:]):.0f}")
PY
)
  rm -f "$WORK/dd.bin"
  memcpy_mb_s=$(python3 -c '
import time
n = 512 << 20
src = bytearray(b"\x01") * n; dst = bytearray(n); memoryview(dst)[:] = src
t = time.perf_counter(); memoryview(dst)[:] = src; print(f"{n / (time.perf_counter() - t) / 1e6:.0f}")')
  if command -v iperf3 >/dev/null 2>&1; then
    iport=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$iport" >/dev/null 2>&1 &
    ipid=$!
    sleep 0.5
    loopback_mb_s=$(iperf3 -c 127.0.0.1 -p "$iport" -t 5 -J 2>/dev/null | python3 -c '
import json, sys
print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))' || echo null)
    wait "$ipid" 2>/dev/null || true
  else
    log "iperf3 not installed (Debian package iperf3): loopback limit not measured"
  fi
  log "machine limits: disk write (fdatasync) $disk_mb_s MB/s, page-cache write $pagecache_mb_s MB/s, memcpy $memcpy_mb_s MB/s, loopback TCP $loopback_mb_s MB/s"
fi

# 3. Fjord-only: startup (launch until the port accepts, polled every ms; median of 3 launches on an
#    empty data dir).
port=$(free_port)
starts=()
for _ in 1 2 3; do
  rm -rf "$WORK/data-startup"
  t0=$(date +%s%N)
  "$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$WORK/data-startup" > "$WORK/fjord-startup.log" 2>&1 &
  spid=$!
  wait_port "$port"
  starts+=($(( ($(date +%s%N) - t0) / 1000000 )))
  kill "$spid"; wait "$spid" 2>/dev/null || true
done
rm -rf "$WORK/data-startup"
startup_ms=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n 2p)
log "Fjord startup, 3 launches: ${starts[*]} ms"

# 4. The two brokers, default configs, fresh data dirs. Kafka: the reference script's single KRaft
#    node (heap -Xmx512m -Xms512m unless KAFKA_HEAP_OPTS says otherwise); its pid file holds the
#    java process (the start scripts exec into it).
FJORD_DATA="$WORK/fjord-data"
KAFKA_DIR="$WORK/kafka"
KAFKA_DATA="$KAFKA_DIR/node-1/data"
fpid=""; kstarted=0
cleanup() {
  [ -n "$fpid" ] && { kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null || true; }
  cp "$KAFKA_DIR/node-1/logs/server.log" "$WORK/kafka-server.log" 2>/dev/null || true
  [ "$kstarted" = 1 ] && "$KAFKA_HOME/reference-kafka.sh" stop "$KAFKA_DIR" >/dev/null 2>&1
  rm -rf "$FJORD_DATA" "$KAFKA_DIR"
}
trap cleanup EXIT
rm -rf "$FJORD_DATA" "$KAFKA_DIR"
FJORD_OVERRIDES=()
for kv in ${BENCH_FJORD_OVERRIDES:-}; do FJORD_OVERRIDES+=(--override "$kv"); done
"$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$FJORD_DATA" "${FJORD_OVERRIDES[@]}" > "$WORK/fjord.log" 2>&1 &
fpid=$!
wait_port "$port"
sleep 1
idle_rss=$(rss_kib "$fpid")
kport=$(free_port_pair)
log "starting Kafka 4.0 (10-30 s)"
kstarted=1
"$KAFKA_HOME/reference-kafka.sh" start "$KAFKA_DIR" "$kport" 1 >/dev/null
kpid=$(cat "$KAFKA_DIR/node-1/pid")
[ "$(cat "/proc/$kpid/comm")" = java ] || { log "Kafka's pid $kpid is $(cat "/proc/$kpid/comm"), not java"; exit 1; }
declare -A ADDR=([fjord]="127.0.0.1:$port" [kafka]="127.0.0.1:$kport")
declare -A PID=([fjord]="$fpid" [kafka]="$kpid")
declare -A DATA=([fjord]="$FJORD_DATA" [kafka]="$KAFKA_DATA")
declare -A PEER=([fjord]=kafka [kafka]=fjord)
kafka_idle_rss=$(rss_kib "$kpid")
log "Fjord ${ADDR[fjord]} pid $fpid, Kafka ${ADDR[kafka]} pid $kpid"

# 5. One run. Rows of $results (tab-separated): round, position in the round, broker, scenario,
#    MB/s, msg/s, bytes moved, broker CPU s, the other broker's CPU s meanwhile, 1-min load
#    average at the start, latency (e2e p50 p99 p99.9, producer ack p50 p99, ms) or "-".
results="$WORK/results.tsv"
: > "$results"
# run_one ROUND POSITION BROKER SCENARIO
run_one() {
  local round=$1 pos=$2 b=$3 name=$4 addr=${ADDR[$3]} pid=${PID[$3]} peer=""
  [ -n "${PEER[$b]:-}" ] && peer=${PID[${PEER[$b]}]}
  local topic args="" out="$WORK/run.out" lat="-" parts=1 c0 p0 c1 p1 load r
  kill -0 "$pid" 2>/dev/null || { log "broker $b (pid $pid) has exited: see $WORK/fjord.log or $WORK/kafka-server.log"; exit 1; }
  case "$name" in
    produce_1p_acks1)     args="-P -p 0 -s $SIZE -c $COUNT -a 1" ;;
    produce_1p_acksall)   args="-P -p 0 -s $SIZE -c $COUNT -a -1" ;;
    produce_8p_acks1)     args="-P -s $SIZE -c $COUNT -a 1"; parts=8 ;;
    produce_1p_acks1_lz4) args="-P -p 0 -s $SIZE -c $COUNT -a 1 -z lz4" ;;
    produce_1p_sustained) args="-P -p 0 -s $SIZE -c $((COUNT * SUSTAIN_FACTOR)) -a 1" ;;
    consume_1p_cold|consume_1p_warm) args="-C -p 0 -o beginning -c $COUNT" ;;
    latency_e2e_20k) ;;
  esac
  # BENCH_PRODUCER_PROPS: librdkafka properties for every throughput producer, on both brokers.
  local prop
  case "$name" in produce_*) args="$args -X linger.ms=$PRODUCER_LINGER_MS"; for prop in ${BENCH_PRODUCER_PROPS:-}; do args="$args -X $prop"; done ;; esac
  case "$name" in
    consume_*) topic="produce_1p_acks1-r$round" ;;   # what this round produced
    *) topic="$name-r$round"; python3 "$ADMIN" create "$addr" "$topic" "$parts" ;;
  esac
  drop_cache
  # warm: the whole partition read into the page cache, the same files on both brokers
  [ "$name" = consume_1p_warm ] && cat "${DATA[$b]}/$topic-0"/* > /dev/null
  load=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(cpu_ticks "$pid"); p0=0; [ -n "$peer" ] && p0=$(cpu_ticks "$peer"); m0=$(machine_ticks)
  if [ "$name" = latency_e2e_20k ]; then
    # End to end: a consumer reading the topic from the start while a producer sends at 20k msg/s
    # with linger.ms=0; each record carries its send time (wall clock, one machine).
    rm -f "$WORK/lat-e2e.txt" "$WORK/lat-ack.txt"
    timeout 300 "$PERF" -C -t "$topic" -p 0 -o beginning -c "$LAT_COUNT" -l -A "$WORK/lat-e2e.txt" -b "$addr" > "$WORK/lat-cons.out" 2>&1 &
    local cons=$!
    sleep 1.5
    timeout 300 "$PERF" -P -t "$topic" -p 0 -s "$SIZE" -c "$LAT_COUNT" -a 1 -r "$LAT_RATE" -X linger.ms=0 \
      -l -A "$WORK/lat-ack.txt" -b "$addr" > "$out" 2>&1 || true
    wait "$cons" || true
    lat="$(percentiles "$WORK/lat-e2e.txt") $(percentiles "$WORK/lat-ack.txt" | cut -d' ' -f1,2)"
  else
    # shellcheck disable=SC2086  # args is a word list by design
    timeout 600 "$PERF" $args -t "$topic" -b "$addr" > "$out" 2>&1 || true
  fi
  c1=$(cpu_ticks "$pid"); p1=0; [ -n "$peer" ] && p1=$(cpu_ticks "$peer"); m1=$(machine_ticks)
  r=$(parse_perf "$out")
  [ -n "$r" ] || { log "round $round $b $name FAILED (output kept in $WORK/failed-$b-$name-r$round.out)"; cp "$out" "$WORK/failed-$b-$name-r$round.out"; r="0 0 0 0"; }
  read -r mbs msgs nbytes _ <<<"$r"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$pos" "$b" "$name" "$mbs" "$msgs" "$nbytes" \
    "$(awk -v a="$c0" -v z="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" \
    "$(awk -v a="$p0" -v z="$p1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" "$load" \
    "$(awk -v a="$m0" -v z="$m1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" "$lat" >> "$results"
  log "round $round $b $name: $mbs MB/s, broker CPU $(awk -v a="$c0" -v z="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}') s, load $load${lat:+, latency $lat}"
}

# Warm-up, not measured: each broker takes WARMUP records and serves them once, so that Kafka's JIT
# has compiled its hot paths (a broker in service is warm). Measured on a fresh Kafka, 1M x 1 KiB
# per run: 7.7 s of broker CPU for the first run, 4.1-5.5 s for the 7 after it; 200k records of
# warm-up left the first measured round's Kafka runs at 7.6 s/GB.
WARMUP="${BENCH_WARMUP_COUNT:-1000000}"
for b in fjord kafka; do
  python3 "$ADMIN" create "${ADDR[$b]}" warmup 1
  timeout 300 "$PERF" -P -t warmup -p 0 -s "$SIZE" -c "$WARMUP" -a 1 -b "${ADDR[$b]}" > "$WORK/warmup.out" 2>&1 || true
  timeout 300 "$PERF" -C -t warmup -p 0 -o beginning -c "$WARMUP" -b "${ADDR[$b]}" >> "$WORK/warmup.out" 2>&1 || true
  timeout 300 "$PERF" -P -t warmup -p 0 -s "$SIZE" -c 40000 -a 1 -r "$LAT_RATE" -X linger.ms=0 -b "${ADDR[$b]}" >> "$WORK/warmup.out" 2>&1 || true
done
log "warm-up done ($WARMUP records produced and consumed, 2 s at $LAT_RATE msg/s with linger.ms=0, on each broker)"

SCENARIOS=(produce_1p_acks1 produce_1p_acksall produce_8p_acks1 produce_1p_acks1_lz4 produce_1p_sustained
           consume_1p_cold consume_1p_warm latency_e2e_20k)
# shellcheck disable=SC2206  # a word list by design
[ -n "${BENCH_SCENARIOS:-}" ] && SCENARIOS=(${BENCH_SCENARIOS})
for round in $(seq "$RUNS"); do
  if [ $((round % 2)) = 1 ]; then order=(fjord kafka); else order=(kafka fjord); fi
  for s in "${SCENARIOS[@]}"; do
    run_one "$round" 1 "${order[0]}" "$s"
    run_one "$round" 2 "${order[1]}" "$s"
  done
  made=()   # the topics this round created: every scenario but the consumes
  for s in "${SCENARIOS[@]}"; do case "$s" in consume_*) ;; *) made+=("$s-r$round") ;; esac; done
  for b in fjord kafka; do
    [ "${#made[@]}" -gt 0 ] && python3 "$ADMIN" delete "${ADDR[$b]}" "${made[@]}"
  done
done
fjord_rss=$(rss_kib "$fpid"); kafka_rss=$(rss_kib "$kpid")
kill "$fpid"; wait "$fpid" 2>/dev/null || true; fpid=""
"$KAFKA_HOME/reference-kafka.sh" stop "$KAFKA_DIR" >/dev/null 2>&1; kstarted=0
rm -rf "$FJORD_DATA" "$KAFKA_DIR"

# 6. Fjord-only: idle RSS of a broker holding 100 partitions (auto-created with num.partitions=100,
#    10k records across them, then 2 s idle).
port100=$(free_port)
rm -rf "$WORK/data100"
"$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port100" --override "log.dirs=$WORK/data100" \
  --override num.partitions=100 > "$WORK/fjord100.log" 2>&1 &
pid100=$!
wait_port "$port100"
timeout 120 "$PERF" -P -t P100 -s "$SIZE" -c 10000 -a 1 -X partitioner=random -b "127.0.0.1:$port100" >/dev/null 2>&1 || true
parts100=$(find "$WORK/data100" -maxdepth 1 -type d -name 'P100-*' | wc -l)
sleep 2
idle_rss_100p=$(rss_kib "$pid100")
kill "$pid100"; wait "$pid100" 2>/dev/null || true
rm -rf "$WORK/data100"

# 7. Optional, Fjord-only (BENCH_DROPBEHIND=1): drop-behind on (fjord.log.writeback.step.bytes,
#    fjord.log.drop.behind.bytes), a fresh topic per produce run, then a consume of it right after
#    (no drop: it reads what the window let go).
if [ "${BENCH_DROPBEHIND:-0}" = 1 ]; then
  portdb=$(free_port)
  rm -rf "$WORK/data-db"
  "$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$portdb" --override "log.dirs=$WORK/data-db" \
    --override fjord.log.writeback.step.bytes=2097152 --override fjord.log.drop.behind.bytes=33554432 \
    > "$WORK/fjord-db.log" 2>&1 &
  piddb=$!
  wait_port "$portdb"
  ADDR[fjord_dropbehind]="127.0.0.1:$portdb"; PID[fjord_dropbehind]=$piddb; DATA[fjord_dropbehind]="$WORK/data-db"
  PEER[fjord_dropbehind]=""
  for round in $(seq "$RUNS"); do
    run_one "$round" 1 fjord_dropbehind produce_1p_acks1
    load=$(cut -d' ' -f1 /proc/loadavg); c0=$(cpu_ticks "$piddb"); m0=$(machine_ticks)
    timeout 600 "$PERF" -C -p 0 -o beginning -c "$COUNT" -t "produce_1p_acks1-r$round" -b "127.0.0.1:$portdb" > "$WORK/run.out" 2>&1 || true
    c1=$(cpu_ticks "$piddb"); m1=$(machine_ticks)
    r=$(parse_perf "$WORK/run.out"); [ -n "$r" ] || r="0 0 0 0"
    read -r mbs msgs nbytes _ <<<"$r"
    printf '%s\t1\tfjord_dropbehind\tconsume_1p_after_produce\t%s\t%s\t%s\t%s\t0\t%s\t%s\t-\n' "$round" "$mbs" "$msgs" "$nbytes" \
      "$(awk -v a="$c0" -v z="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" "$load" \
      "$(awk -v a="$m0" -v z="$m1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" >> "$results"
    log "round $round fjord_dropbehind consume_1p_after_produce: $mbs MB/s"
  done
  kill "$piddb"; wait "$piddb" 2>/dev/null || true
  rm -rf "$WORK/data-db"
fi

# 8. Medians, spread, ratios and the issue's goals: JSON and a table.
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
export WARMUP SETTLE_S SUSTAIN_FACTOR RUNS COUNT LAT_COUNT LAT_RATE LAT_WARMUP SIZE DROP QUICK load_start load_end startup_ms idle_rss \
  kafka_idle_rss fjord_rss kafka_rss idle_rss_100p parts100 disk_mb_s pagecache_mb_s memcpy_mb_s loopback_mb_s
FJORD_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
LIBRDKAFKA="$("$PERF" -h 2>&1 | grep -m1 -o 'librdkafka version [0-9.]*' || true)"
KAFKA_HEAP="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
export FJORD_COMMIT LIBRDKAFKA KAFKA_HEAP BENCH_FJORD_OVERRIDES BENCH_SCENARIOS BENCH_PRODUCER_PROPS PRODUCER_LINGER_MS
python3 - "$results" "$OUT_DIR/$stamp.json" <<'PY'
import json, os, platform, statistics, sys
E = os.environ
path, out = sys.argv[1:]
cols = ["round", "position", "broker", "scenario", "mb_s", "msg_s", "bytes", "broker_cpu_s", "peer_cpu_s", "load1", "machine_cpu_s", "latency"]
runs = []
for line in open(path):
    row = dict(zip(cols, line.rstrip("\n").split("\t")))
    for k in ("round", "position", "bytes"):
        row[k] = int(row[k])
    for k in ("mb_s", "msg_s", "broker_cpu_s", "peer_cpu_s", "load1", "machine_cpu_s"):
        row[k] = float(row[k])
    lat = row.pop("latency")
    if lat != "-":
        row.update(zip(["e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "ack_p50_ms", "ack_p99_ms"], map(float, lat.split())))
    if row["bytes"] and not row["scenario"].startswith("latency"):
        row["broker_cpu_s_per_gb"] = row["broker_cpu_s"] / (row["bytes"] / 1e9)
        row["machine_cpu_s_per_gb"] = row["machine_cpu_s"] / (row["bytes"] / 1e9)
    runs.append(row)

def spread(values):
    v = [x for x in values if x == x]  # drop NaN
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}

metrics = {}  # (scenario, metric) -> broker -> spread
for r in runs:
    s = r["scenario"]
    keys = ["msg_s", "e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "ack_p50_ms", "ack_p99_ms"] if s.startswith("latency") else ["mb_s", "broker_cpu_s_per_gb", "machine_cpu_s_per_gb"]
    for k in keys:
        if k in r and (r["mb_s"] > 0 or s.startswith("latency")):
            metrics.setdefault((s, k), {}).setdefault(r["broker"], []).append(r[k])
# The issue's goals: (scenario, metric) -> (test on Fjord/Kafka, text)
goals = {("produce_1p_acks1", "mb_s"): (lambda x: x >= 1.5, ">= 1.5"),
         ("produce_1p_sustained", "mb_s"): (lambda x: x >= 1.5, ">= 1.5"),
         ("produce_8p_acks1", "mb_s"): (lambda x: x >= 1.5, ">= 1.5"),
         ("consume_1p_cold", "mb_s"): (lambda x: x >= 1.2, ">= 1.2"),
         ("consume_1p_warm", "mb_s"): (lambda x: x >= 1.2, ">= 1.2"),
         ("latency_e2e_20k", "e2e_p99_ms"): (lambda x: x <= 0.2, "<= 0.2")}
for s in ("produce_1p_acks1", "produce_1p_acksall", "produce_8p_acks1", "produce_1p_acks1_lz4", "produce_1p_sustained", "consume_1p_cold", "consume_1p_warm"):
    goals[(s, "broker_cpu_s_per_gb")] = (lambda x: x <= 0.5, "<= 0.5")
units = {"msg_s": "sent msg/s", "mb_s": "MB/s", "broker_cpu_s_per_gb": "CPU s/GB", "machine_cpu_s_per_gb": "machine CPU s/GB", "e2e_p50_ms": "e2e p50 ms", "e2e_p99_ms": "e2e p99 ms",
         "e2e_p999_ms": "e2e p99.9 ms", "ack_p50_ms": "ack p50 ms", "ack_p99_ms": "ack p99 ms"}
summary = []
for (s, k), by in metrics.items():
    f, kf = spread(by.get("fjord", [])), spread(by.get("kafka", []))
    entry = {"scenario": s, "metric": k, "fjord": f, "kafka": kf}
    if "fjord_dropbehind" in by:
        entry["fjord_dropbehind"] = spread(by["fjord_dropbehind"])
    if f and kf and kf["median"] > 0:
        entry["ratio_fjord_to_kafka"] = f["median"] / kf["median"]
        if (s, k) in goals:
            test, text = goals[(s, k)]
            entry["goal"] = text
            entry["goal_met"] = bool(test(entry["ratio_fjord_to_kafka"]))
    summary.append(entry)
order = ["mb_s", "broker_cpu_s_per_gb", "machine_cpu_s_per_gb", "msg_s", "e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "ack_p50_ms", "ack_p99_ms"]
summary.sort(key=lambda e: order.index(e["metric"]))
def fmt(sp):
    if not sp:
        return "-"
    d = 0 if sp["median"] >= 100 else 2
    return f"{sp['median']:.{d}f} ({sp['min']:.{d}f}-{sp['max']:.{d}f})"
conditions = {
    "record_bytes": int(E["SIZE"]), "records_per_produce_run": int(E["COUNT"]),
    "records_per_consume_run": int(E["COUNT"]), "records_per_sustained_run": int(E["COUNT"]) * int(E["SUSTAIN_FACTOR"]), "rounds": int(E["RUNS"]), "quick": E["QUICK"] == "1",
    "partitions": {"produce_1p_*": 1, "produce_8p_acks1": 8, "consume": 1, "latency": 1},
    "acks": {"produce_1p_acksall": "all", "otherwise": 1},
    "compression": {"produce_1p_acks1_lz4": "lz4", "otherwise": "none"},
    "latency": {"records": int(E["LAT_COUNT"]), "rate_msg_s": int(E["LAT_RATE"]), "warmup_records_dropped": int(E["LAT_WARMUP"]),
                "producer": "-X linger.ms=0, acks=1", "consumer": "rdkafka_performance -C -l from the start of the topic"},
    "topics": "deleted after each round (DeleteTopics v1; Kafka removes the files 60 s later); fresh per produce and latency run, CreateTopics v2 with the same partition count on both, replication 1; consume reads the round's produce_1p_acks1 topic",
    "page_cache": f"sync + drop_caches + {E['SETTLE_S']} s wait before every run" if E["DROP"] == "1" else "NOT dropped (not root): sync only",
    "consume_1p_warm": "page cache dropped, then the partition's files read (cat) on both brokers",
    "warmup": f"not measured: {E['WARMUP']} records produced and consumed, then 40k at the latency rate with linger.ms=0, on each broker",
    "order": "alternating per round: odd rounds Fjord first, even rounds Kafka first, scenario by scenario",
    "load_generator": "librdkafka examples/rdkafka_performance (" + E["LIBRDKAFKA"] + "), default settings otherwise; produce runs with linger.ms=" + E["PRODUCER_LINGER_MS"] + " (librdkafka's default; the generator's own is 1000)" + ("; producer properties: " + E["BENCH_PRODUCER_PROPS"] if E.get("BENCH_PRODUCER_PROPS") else ""),
    "fjord": "release build " + E["FJORD_COMMIT"] + (", overrides: " + E["BENCH_FJORD_OVERRIDES"] if E.get("BENCH_FJORD_OVERRIDES") else ", default config"),
    "scenarios": E.get("BENCH_SCENARIOS") or "all",
    "kafka": "Apache Kafka 4.0.0, reference-kafka.sh single KRaft node, default config, heap " + E["KAFKA_HEAP"],
    "both_brokers_running": "yes; peer_cpu_s is the other broker's CPU during each run",
    "cpu": "utime+stime of the broker process from /proc/PID/stat before and after each run, per 1e9 bytes of record values moved; machine_cpu: busy time of all cores (user, nice, system, irq, softirq of /proc/stat) over the run, the client and the idle peer broker included, per 1e9 bytes",
    "load_average_start": E["load_start"], "load_average_end": E["load_end"],
    "kernel": platform.release(), "cores": os.cpu_count(),
}
def num(x):
    return None if x in ("", "null") else float(x)
res = {"conditions": conditions, "summary": summary, "runs": runs,
       "rss_kib": {"fjord_idle": int(E["idle_rss"]), "kafka_idle": int(E["kafka_idle_rss"]),
                   "fjord_after_runs": int(E["fjord_rss"]), "kafka_after_runs": int(E["kafka_rss"])},
       "fjord_only": {"startup_ms_median_of_3": float(E["startup_ms"]), "idle_rss_100_partitions_kib": int(E["idle_rss_100p"]),
                      "partitions_in_rss_check": int(E["parts100"])},
       "machine_limits_mb_s": {"disk_write_fdatasync": num(E["disk_mb_s"]), "page_cache_write": num(E["pagecache_mb_s"]),
                               "memcpy": num(E["memcpy_mb_s"]), "loopback_tcp": num(E["loopback_mb_s"])}}
print(f"\nFjord {E['FJORD_COMMIT']} vs Apache Kafka 4.0.0, {E['RUNS']} alternating rounds, {E['COUNT']} x {E['SIZE']} B records per run, "
      f"{conditions['page_cache']}; load average {E['load_start']} at start, {E['load_end']} at end; "
      f"kernel {conditions['kernel']}, {conditions['cores']} cores")
print(f"{'scenario':22} {'metric':16} {'Fjord median (min-max)':>24} {'Kafka median (min-max)':>24} {'Fjord/Kafka':>11} {'goal':>7} {'met':>4}")
for e in summary:
    ratio = f"{e['ratio_fjord_to_kafka']:.2f}" if "ratio_fjord_to_kafka" in e else "-"
    met = ("yes" if e["goal_met"] else "NO") if "goal_met" in e else ""
    if not e["fjord"] and not e["kafka"]:  # a Fjord-only scenario
        print(f"{e['scenario']:22} {units[e['metric']]:16} {fmt(e.get('fjord_dropbehind')):>24}   (drop-behind Fjord only)")
        continue
    print(f"{e['scenario']:22} {units[e['metric']]:16} {fmt(e['fjord']):>24} {fmt(e['kafka']):>24} {ratio:>11} {e.get('goal', ''):>7} {met:>4}")
    if "fjord_dropbehind" in e:
        print(f"{'  drop-behind Fjord':22} {units[e['metric']]:16} {fmt(e['fjord_dropbehind']):>24}")
rss = res["rss_kib"]
print(f"RSS after the runs: Fjord {rss['fjord_after_runs']/1024:.1f} MiB, Kafka {rss['kafka_after_runs']/1024:.1f} MiB "
      f"(idle before: {rss['fjord_idle']/1024:.1f} / {rss['kafka_idle']/1024:.1f} MiB)")
fo = res["fjord_only"]
print(f"Fjord only: startup {fo['startup_ms_median_of_3']:.0f} ms, idle RSS holding {fo['partitions_in_rss_check']} partitions "
      f"{fo['idle_rss_100_partitions_kib']/1024:.1f} MiB")
if any(v is not None for v in res["machine_limits_mb_s"].values()):
    print(f"machine limits (MB/s): {res['machine_limits_mb_s']}")
json.dump(res, open(out, "w"), indent=2)
print(f"results: {out}")
PY
