#!/usr/bin/env bash
# Fjord's 3-node cluster (scripts/cluster.sh) against Apache Kafka 4.0's 3-node KRaft cluster
# (reference-kafka.sh), both on loopback, both running for the whole run, the same client, the same
# topic requests (bench-admin.py: replication factor 3, min.insync.replicas=2), rounds alternating
# Fjord / Kafka (odd rounds Fjord first, even rounds Kafka first), medians over the rounds:
#   produce_3p_acksall, produce_1p_acksall   BENCH_COUNT x 1 KiB records, acks=all, to a fresh
#        topic with 3 (resp. 1) partitions: MB/s, msg/s, and CPU seconds of the 3 brokers together
#        (utime+stime, /proc/PID/stat) per GB of record values produced; after each run the RSS of
#        every broker. Page cache dropped (root) and BENCH_SETTLE_S waited before every run.
#   latency_e2e_20k_acksall   BENCH_LATENCY_COUNT records at 20k msg/s (BENCH_LATENCY_RATE; the name
#        follows it: latency_e2e_5k_acksall at 5000), acks=all, linger.ms=0, one partition; a consumer
#        reads from the start: end-to-end and producer-ack p50/p99/p99.9 (the first second's samples
#        dropped), as scripts/bench.sh measures it. The achieved rate is reported beside them.
#   failover   (after all the rounds above, again alternating) scripts/bench-failover.py: an acks=all
#        idempotent producer (confluent-kafka) sends 100 B records at 1000 msg/s to the partition of
#        a fresh 3-partition topic whose leader is not the active controller; after 3 s of
#        acknowledgements that leader is killed with SIGKILL; failover time = kill -> first
#        acknowledgement of a record produced after the kill. The node is then restarted and the
#        next round waits until every replica is back in sync.
#   RSS per broker: idle after start, after every produce run, steady (5 s after the last produce
#        round) and peak (VmHWM) at the end of the produce rounds.
# Results: a table with Fjord/Kafka ratios and the goals (produce MB/s >= Kafka's, failover time
# <= Kafka's, RSS per broker <= 1/20 of Kafka's) on stdout, everything in
# bench/results/cluster-<UTC stamp>.json. Logs and work files: bench/out/cluster/.
#   scripts/bench-cluster.sh
#   BENCH_ROUNDS=3             rounds of each scenario (default 3)
#   BENCH_COUNT=500000         records per produce run
#   BENCH_LATENCY_COUNT=100000 records per latency run (at 20k msg/s: 5 s)
#   BENCH_LATENCY_RATE=20000   records/s in the latency runs
#   BENCH_WARMUP_COUNT=300000  records produced to each cluster before the rounds (not measured)
#   BENCH_FAILOVER=0           skip the failover rounds
#   BENCH_SCENARIOS="..."      only these of the produce/latency scenarios
#   BENCH_PRODUCER_LINGER_MS=5 linger.ms of the produce runs (librdkafka's default; the generator's
#                              source sets 1000, whose tail ended every run: see scripts/bench.sh)
# Needs: Kafka at $KAFKA_HOME (else ../shared/kafka-4.0.0), compat-tests/.venv with confluent-kafka
# (scripts/install-deps.sh) for the failover rounds; builds the broker and rdkafka_performance.
# Every node it starts is stopped at the end, by the pids the cluster scripts wrote, also on error.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_ROUNDS:-3}"
COUNT="${BENCH_COUNT:-500000}"
PRODUCER_LINGER_MS="${BENCH_PRODUCER_LINGER_MS:-5}"
LAT_COUNT="${BENCH_LATENCY_COUNT:-100000}"
WARMUP="${BENCH_WARMUP_COUNT:-300000}"
FAILOVER="${BENCH_FAILOVER:-1}"
SIZE=1024              # record value bytes
RF=3
MIN_ISR=2
LAT_RATE="${BENCH_LATENCY_RATE:-20000}"   # records/s in the latency scenario
LAT_WARMUP="$LAT_RATE"                    # latency samples dropped at the start of each run (its first second)
LAT_NAME="latency_e2e_$((LAT_RATE / 1000))k_acksall"
FO_RATE=1000           # records/s in the failover scenario
FO_SIZE=100            # record bytes there (small, so a retried backlog is one request)
FO_STEADY_S=3          # seconds of acknowledgements before the kill
FO_TIMEOUT_S=90        # no acknowledgement this long after the kill: the failover failed
SETTLE_S="${BENCH_SETTLE_S:-5}"   # see scripts/bench.sh: free page reporting after drop_caches
WORK="$ROOT/bench/out/cluster"
OUT_DIR="$ROOT/bench/results"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/../shared/kafka-4.0.0}"
VENV_PY="$ROOT/compat-tests/.venv/bin/python"
ADMIN="$ROOT/scripts/bench-admin.py"
SCENARIOS=(produce_3p_acksall produce_1p_acksall "$LAT_NAME")
# shellcheck disable=SC2206  # a word list by design
[ -n "${BENCH_SCENARIOS:-}" ] && SCENARIOS=(${BENCH_SCENARIOS})

log() { printf '[bench-cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

[ -x "$KAFKA_HOME/reference-kafka.sh" ] || {
  log "no Apache Kafka 4.0 at $KAFKA_HOME (set KAFKA_HOME, or put it at ../shared/kafka-4.0.0)"; exit 1; }
if [ "$FAILOVER" = 1 ] && ! "$VENV_PY" -c 'import confluent_kafka' 2>/dev/null; then
  log "no compat-tests/.venv with confluent-kafka (scripts/install-deps.sh makes it), or BENCH_FAILOVER=0"; exit 1
fi
mkdir -p "$WORK" "$OUT_DIR"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# Disk: each round's topics are deleted after it, Kafka removes the files 60 s later; so about two
# rounds of both clusters (3 replicas of every record) plus the warm-up are on disk at once.
need_kib=$(( (2 * 2 * RF * (2 * COUNT + LAT_COUNT) + 2 * RF * WARMUP) * SIZE / 1024 + 2 * 1024 * 1024 ))
free_kib=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
[ "$free_kib" -ge "$need_kib" ] || {
  log "needs about $((need_kib / 1048576)) GiB free in $WORK, has $((free_kib / 1048576)) GiB: lower BENCH_COUNT"; exit 1; }

# 1. The broker, the load generator (shared with scripts/bench.sh) and the helpers.
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$ROOT/bench/out"
CLK_TCK=$(getconf CLK_TCK)
if [ -w /proc/sys/vm/drop_caches ]; then DROP=1; else
  DROP=0; log "NOT ROOT: the page cache cannot be dropped; every run only syncs first"
fi

# 2. The two clusters. Fjord: client ports FPORT..+2, controllers FPORT+3..+5. Kafka: broker i on
#    KPORT+2(i-1), its controller on the next port; heap -Xmx512m -Xms512m per broker unless
#    KAFKA_HEAP_OPTS says otherwise.
FDIR="$WORK/fjord"
KDIR="$WORK/kafka"
LOGS="$WORK/logs"
fstarted=0; kstarted=0
save_logs() {
  mkdir -p "$LOGS"
  for i in 1 2 3; do
    cp "$FDIR/node-$i/fjord.log" "$LOGS/fjord-node-$i.log" 2>/dev/null || true
    cp "$KDIR/node-$i/logs/server.log" "$LOGS/kafka-node-$i-server.log" 2>/dev/null || true
    cp "$KDIR/node-$i/logs/controller.log" "$LOGS/kafka-node-$i-controller.log" 2>/dev/null || true
  done
}
cleanup() {
  save_logs
  [ "$fstarted" = 1 ] && scripts/cluster.sh stop "$FDIR" >/dev/null 2>&1
  [ "$kstarted" = 1 ] && "$KAFKA_HOME/reference-kafka.sh" stop "$KDIR" >/dev/null 2>&1
  rm -rf "$FDIR" "$KDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$FDIR" "$KDIR" "$LOGS"
fport=$(free_port_range 6)
log "starting the Fjord cluster (3 nodes, 127.0.0.1:$fport..$((fport + 5)))"
fstarted=1
FBOOT=$(FJORD_BIN="$FJORD_BIN" scripts/cluster.sh start "$FDIR" 3 "$fport" 2>"$WORK/cluster-start.log" | tail -1)
kport=$(free_port_range 6)
log "starting the Kafka 4.0 cluster (3 nodes, 127.0.0.1:$kport..$((kport + 5)); 10-30 s)"
kstarted=1
KBOOT=$("$KAFKA_HOME/reference-kafka.sh" start "$KDIR" "$kport" 3 | tail -1)
declare -A BOOT=([fjord]="$FBOOT" [kafka]="$KBOOT")
declare -A PEER=([fjord]=kafka [kafka]=fjord)
# node_pid SYSTEM ID: the broker process (Kafka's pid file holds the java process: the start
# scripts exec into it). Read afresh each time: the failover rounds restart nodes.
node_pid() {
  local pid comm
  if [ "$1" = fjord ]; then pid=$(cat "$FDIR/node-$2/pid"); comm=fjord; else pid=$(cat "$KDIR/node-$2/pid"); comm=java; fi
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || { log "$1 node $2: pid $pid is not a running $comm"; return 1; }
  echo "$pid"
}
node_addr() { if [ "$1" = fjord ]; then echo "127.0.0.1:$((fport + $2 - 1))"; else echo "127.0.0.1:$((kport + 2 * ($2 - 1)))"; fi; }
# The address of a running node other than SKIP (for admin requests).
live_addr() {
  local i
  for i in 1 2 3; do
    [ "$i" = "${2:-0}" ] && continue
    node_pid "$1" "$i" >/dev/null 2>&1 && { node_addr "$1" "$i"; return; }
  done
  return 1
}
cluster_cpu_ticks() { local i t=0; for i in 1 2 3; do t=$((t + $(cpu_ticks "$(node_pid "$1" "$i")"))); done; echo "$t"; }
# Per-node list "n1,n2,n3" of a reading (rss_kib or hwm_kib).
per_node() { local i out=""; for i in 1 2 3; do out+="${out:+,}$($2 "$(node_pid "$1" "$i")")"; done; echo "$out"; }
for b in fjord kafka; do for i in 1 2 3; do node_pid "$b" "$i" >/dev/null || exit 1; done; done
sleep 2
idle_rss_fjord=$(per_node fjord rss_kib); idle_rss_kafka=$(per_node kafka rss_kib)
log "Fjord $FBOOT (RSS $idle_rss_fjord KiB), Kafka $KBOOT (RSS $idle_rss_kafka KiB)"

# 3. One produce or latency run. Rows of $results (tab-separated): round, position, system,
#    scenario, MB/s, msg/s, bytes, CPU s of the 3 brokers, CPU s of the other cluster meanwhile,
#    1-min load average at the start, latency (e2e p50 p99 p99.9, ack p50 p99, ms) or "-", RSS per
#    node after the run (KiB, n1,n2,n3), VmHWM per node.
results="$WORK/results.tsv"
: > "$results"
run_one() {
  local round=$1 pos=$2 b=$3 name=$4 boot=${BOOT[$3]} out="$WORK/run.out" lat="-" parts=1 args="" topic c0 p0 c1 p1 load r cpu pcpu
  case "$name" in
    produce_3p_acksall) args="-P -s $SIZE -c $COUNT -a -1 -X linger.ms=$PRODUCER_LINGER_MS"; parts=3 ;;
    produce_1p_acksall) args="-P -p 0 -s $SIZE -c $COUNT -a -1 -X linger.ms=$PRODUCER_LINGER_MS" ;;
    "$LAT_NAME") ;;
    *) log "unknown scenario $name"; exit 1 ;;
  esac
  topic="$name-r$round"
  python3 "$ADMIN" create "$(live_addr "$b")" "$topic" "$parts" "$RF" "min.insync.replicas=$MIN_ISR"
  drop_cache
  load=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(cluster_cpu_ticks "$b"); p0=$(cluster_cpu_ticks "${PEER[$b]}")
  if [ "$name" = "$LAT_NAME" ]; then
    # A consumer reading the partition from the start while a producer sends at LAT_RATE with
    # linger.ms=0; each record carries its send time (wall clock, one machine).
    rm -f "$WORK/lat-e2e.txt" "$WORK/lat-ack.txt"
    timeout 300 "$PERF" -C -t "$topic" -p 0 -o beginning -c "$LAT_COUNT" -l -A "$WORK/lat-e2e.txt" -b "$boot" > "$WORK/lat-cons.out" 2>&1 &
    local cons=$!
    sleep 1.5
    timeout 300 "$PERF" -P -t "$topic" -p 0 -s "$SIZE" -c "$LAT_COUNT" -a -1 -r "$LAT_RATE" -X linger.ms=0 \
      -l -A "$WORK/lat-ack.txt" -b "$boot" > "$out" 2>&1 || true
    wait "$cons" || true
    lat="$(percentiles "$WORK/lat-e2e.txt") $(percentiles "$WORK/lat-ack.txt" | cut -d' ' -f1,2)"
  else
    # shellcheck disable=SC2086  # args is a word list by design
    timeout 600 "$PERF" $args -t "$topic" -b "$boot" > "$out" 2>&1 || true
  fi
  c1=$(cluster_cpu_ticks "$b"); p1=$(cluster_cpu_ticks "${PEER[$b]}")
  r=$(parse_perf "$out")
  [ -n "$r" ] || { log "round $round $b $name FAILED (output kept in $WORK/failed-$b-$name-r$round.out)"; cp "$out" "$WORK/failed-$b-$name-r$round.out"; r="0 0 0 0"; }
  read -r mbs msgs nbytes _ <<<"$r"
  cpu=$(awk -v a="$c0" -v z="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')
  pcpu=$(awk -v a="$p0" -v z="$p1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$pos" "$b" "$name" "$mbs" "$msgs" "$nbytes" \
    "$cpu" "$pcpu" "$load" "$lat" "$(per_node "$b" rss_kib)" "$(per_node "$b" hwm_kib)" >> "$results"
  log "round $round $b $name: $mbs MB/s, $msgs msg/s, brokers' CPU $cpu s, load $load${lat:+, latency $lat}"
}

# 4. Warm-up, not measured: WARMUP records to a 3-partition RF-3 topic, then 2 s at the latency
#    rate with linger.ms=0, on each cluster (Kafka's JIT compiles its produce and replication
#    paths; both create their producer-id state).
for b in fjord kafka; do
  python3 "$ADMIN" create "$(live_addr "$b")" warmup 3 "$RF" "min.insync.replicas=$MIN_ISR"
  timeout 300 "$PERF" -P -t warmup -s "$SIZE" -c "$WARMUP" -a -1 -b "${BOOT[$b]}" > "$WORK/warmup-$b.out" 2>&1 || true
  timeout 300 "$PERF" -P -t warmup -p 0 -s "$SIZE" -c 40000 -a -1 -r "$LAT_RATE" -X linger.ms=0 -b "${BOOT[$b]}" >> "$WORK/warmup-$b.out" 2>&1 || true
  [ -n "$(parse_perf "$WORK/warmup-$b.out")" ] || { log "warm-up on $b failed: see $WORK/warmup-$b.out"; exit 1; }
  python3 "$ADMIN" delete "$(live_addr "$b")" warmup
done
log "warm-up done ($WARMUP records, then 40k at $LAT_RATE msg/s, on each cluster)"

# 5. The produce and latency rounds.
for round in $(seq "$RUNS"); do
  if [ $((round % 2)) = 1 ]; then order=(fjord kafka); else order=(kafka fjord); fi
  for s in "${SCENARIOS[@]}"; do
    run_one "$round" 1 "${order[0]}" "$s"
    run_one "$round" 2 "${order[1]}" "$s"
  done
  made=(); for s in "${SCENARIOS[@]}"; do made+=("$s-r$round"); done
  for b in fjord kafka; do python3 "$ADMIN" delete "$(live_addr "$b")" "${made[@]}"; done
done
sleep 5
steady_rss_fjord=$(per_node fjord rss_kib); steady_rss_kafka=$(per_node kafka rss_kib)
peak_rss_fjord=$(per_node fjord hwm_kib); peak_rss_kafka=$(per_node kafka hwm_kib)
log "RSS per node 5 s after the produce rounds: Fjord $steady_rss_fjord KiB (peak $peak_rss_fjord), Kafka $steady_rss_kafka KiB (peak $peak_rss_kafka)"

# 6. Failover rounds. One JSON object a line in $fo_results: the system, round, the node killed,
#    the partition, the active controller, scripts/bench-failover.py's result, and the seconds from
#    the node's restart until every replica of the topic was in sync again.
fo_results="$WORK/failover.jsonl"
: > "$fo_results"
# wait_in_sync SYSTEM TOPIC SECONDS: every partition has a leader and RF replicas in sync.
wait_in_sync() {
  local deadline=$(( $(date +%s) + $3 )) addr
  while [ "$(date +%s)" -lt "$deadline" ]; do
    addr=$(live_addr "$1") && python3 "$ADMIN" leaders "$addr" "$2" 2>/dev/null \
      | awk -v rf="$RF" '$2 < 0 || $3 < rf {bad = 1} END {exit bad || NR == 0}' && return 0
    sleep 0.5
  done
  return 1
}
failover_one() {
  local round=$1 b=$2 topic="failover-r$1" addr ctrl part victim vpid t0 res rc=0 restart_s
  addr=$(live_addr "$b")
  python3 "$ADMIN" create "$addr" "$topic" 3 "$RF" "min.insync.replicas=$MIN_ISR"
  ctrl=$(python3 "$ADMIN" controller "$addr")
  # The first partition whose leader is not the active controller (a controller's death adds a
  # quorum election to the measurement, on both systems; that is another scenario).
  read -r part victim < <(python3 "$ADMIN" leaders "$addr" "$topic" | awk -v c="$ctrl" '$2 != c {print $1, $2; exit}') || true
  [ -n "${victim:-}" ] || { log "failover $b: every partition of $topic is led by the controller $ctrl"; exit 1; }
  vpid=$(node_pid "$b" "$victim")
  log "round $round $b failover: killing node $victim (pid $vpid), leader of $topic-$part; the active controller is node $ctrl"
  res=$("$VENV_PY" "$ROOT/scripts/bench-failover.py" --bootstrap "${BOOT[$b]}" --topic "$topic" --partition "$part" \
    --kill-pid "$vpid" --rate "$FO_RATE" --size "$FO_SIZE" --steady-s "$FO_STEADY_S" --timeout-s "$FO_TIMEOUT_S" \
    2>>"$WORK/failover-$b.log") || rc=$?
  [ -n "$res" ] || res='{"error": "bench-failover.py gave no result"}'
  [ "$rc" = 0 ] || log "round $round $b failover FAILED: $res (client log $WORK/failover-$b.log)"
  t0=$(date +%s%N)
  if [ "$b" = fjord ]; then
    scripts/cluster.sh start-node "$FDIR" "$victim" 2>>"$WORK/cluster-start.log"
  else
    "$KAFKA_HOME/reference-kafka.sh" start "$KDIR" "$kport" 3 >/dev/null
  fi
  restart_s=null
  if wait_in_sync "$b" "$topic" 180; then
    restart_s=$(awk -v a="$t0" -v z="$(date +%s%N)" 'BEGIN {printf "%.1f", (z - a) / 1e9}')
  else
    log "round $round $b: $topic not fully in sync 180 s after node $victim restarted"
  fi
  python3 - "$round" "$b" "$victim" "$part" "$ctrl" "$restart_s" "$res" >> "$fo_results" <<'PY'
import json, sys
round_, system, victim, part, ctrl, restart_s, res = sys.argv[1:]
row = {"round": int(round_), "system": system, "killed_node": int(victim), "partition": int(part),
       "active_controller": int(ctrl), "restart_to_in_sync_s": None if restart_s == "null" else float(restart_s)}
row.update(json.loads(res))
print(json.dumps(row))
PY
  log "round $round $b failover: $(tail -1 "$fo_results" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r.get("failover_ms"), "ms to the first acknowledgement,", r.get("failed"), "records failed, in sync", r["restart_to_in_sync_s"], "s after the restart")')"
  python3 "$ADMIN" delete "$(live_addr "$b")" "$topic"
}
if [ "$FAILOVER" = 1 ]; then
  for round in $(seq "$RUNS"); do
    if [ $((round % 2)) = 1 ]; then order=(fjord kafka); else order=(kafka fjord); fi
    failover_one "$round" "${order[0]}"
    failover_one "$round" "${order[1]}"
  done
fi

# 7. Medians, ratios, goals: JSON and a table.
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
FJORD_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
LIBRDKAFKA="$("$PERF" -h 2>&1 | grep -m1 -o 'librdkafka version [0-9.]*' || true)"
CONFLUENT="$("$VENV_PY" -c 'import confluent_kafka as c; print("confluent-kafka", c.version()[0], "librdkafka", c.libversion()[0])' 2>/dev/null || echo none)"
KAFKA_HEAP="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
export RUNS COUNT PRODUCER_LINGER_MS LAT_COUNT LAT_RATE LAT_WARMUP WARMUP SIZE RF MIN_ISR FO_RATE FO_SIZE FO_STEADY_S FO_TIMEOUT_S SETTLE_S DROP \
  load_start load_end idle_rss_fjord idle_rss_kafka steady_rss_fjord steady_rss_kafka peak_rss_fjord peak_rss_kafka \
  FJORD_COMMIT LIBRDKAFKA CONFLUENT KAFKA_HEAP FAILOVER
python3 - "$results" "$fo_results" "$OUT_DIR/cluster-$stamp.json" <<'PY'
import json, os, platform, statistics, sys
E = os.environ
path, fo_path, out = sys.argv[1:]
cols = ["round", "position", "system", "scenario", "mb_s", "msg_s", "bytes", "brokers_cpu_s", "other_cluster_cpu_s", "load1",
        "latency", "rss_kib_per_node", "peak_rss_kib_per_node"]
runs = []
for line in open(path):
    row = dict(zip(cols, line.rstrip("\n").split("\t")))
    for k in ("round", "position", "bytes"):
        row[k] = int(row[k])
    for k in ("mb_s", "msg_s", "brokers_cpu_s", "other_cluster_cpu_s", "load1"):
        row[k] = float(row[k])
    for k in ("rss_kib_per_node", "peak_rss_kib_per_node"):
        row[k] = [int(x) for x in row[k].split(",")]
    lat = row.pop("latency")
    if lat != "-":
        row.update(zip(["e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "ack_p50_ms", "ack_p99_ms"], map(float, lat.split())))
    elif row["bytes"]:
        row["brokers_cpu_s_per_gb"] = row["brokers_cpu_s"] / (row["bytes"] / 1e9)
    row["max_rss_mib_per_node"] = max(row["rss_kib_per_node"]) / 1024
    runs.append(row)
failovers = [json.loads(line) for line in open(fo_path)] if os.path.exists(fo_path) else []

def spread(values):
    v = [x for x in values if x is not None and x == x]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}

metrics = {}   # (scenario, metric) -> system -> values
for r in runs:
    s = r["scenario"]
    keys = ["msg_s", "e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "ack_p50_ms", "ack_p99_ms"] if s.startswith("latency") \
        else ["mb_s", "msg_s", "brokers_cpu_s_per_gb", "max_rss_mib_per_node"]
    for k in keys:
        if k in r and (r["mb_s"] > 0 or s.startswith("latency")):
            metrics.setdefault((s, k), {}).setdefault(r["system"], []).append(r[k])
for f in failovers:
    for k in ("failover_ms", "first_ack_any_record_ms", "restart_to_in_sync_s"):
        metrics.setdefault(("failover", k), {}).setdefault(f["system"], []).append(f.get(k))
kib = lambda s: [int(x) for x in E[s].split(",")]
for label, fj, kf in (("idle_after_start", "idle_rss_fjord", "idle_rss_kafka"),
                      ("steady_after_produce", "steady_rss_fjord", "steady_rss_kafka"),
                      ("peak_vmhwm", "peak_rss_fjord", "peak_rss_kafka")):
    metrics[("rss_per_broker", label)] = {"fjord": [max(kib(fj)) / 1024], "kafka": [max(kib(kf)) / 1024]}
goals = {("produce_3p_acksall", "mb_s"): (lambda x: x >= 1.0, ">= 1"),
         ("produce_1p_acksall", "mb_s"): (lambda x: x >= 1.0, ">= 1"),
         ("failover", "failover_ms"): (lambda x: x <= 1.0, "<= 1"),
         ("rss_per_broker", "steady_after_produce"): (lambda x: x <= 0.05, "<= 1/20"),
         ("rss_per_broker", "peak_vmhwm"): (lambda x: x <= 0.05, "<= 1/20")}
units = {"mb_s": "MB/s", "msg_s": "msg/s", "brokers_cpu_s_per_gb": "CPU s/GB, 3 brokers", "max_rss_mib_per_node": "RSS MiB, max node",
         "e2e_p50_ms": "e2e p50 ms", "e2e_p99_ms": "e2e p99 ms", "e2e_p999_ms": "e2e p99.9 ms", "ack_p50_ms": "ack p50 ms",
         "ack_p99_ms": "ack p99 ms", "failover_ms": "ms to 1st ack", "first_ack_any_record_ms": "ms, any record",
         "restart_to_in_sync_s": "s restart->ISR", "idle_after_start": "MiB idle", "steady_after_produce": "MiB steady",
         "peak_vmhwm": "MiB peak"}
summary = []
for (s, k), by in metrics.items():
    f, kf = spread(by.get("fjord", [])), spread(by.get("kafka", []))
    entry = {"scenario": s, "metric": k, "fjord": f, "kafka": kf}
    if f and kf and kf["median"] > 0:
        entry["ratio_fjord_to_kafka"] = f["median"] / kf["median"]
        if (s, k) in goals:
            test, text = goals[(s, k)]
            entry["goal"], entry["goal_met"] = text, bool(test(entry["ratio_fjord_to_kafka"]))
    elif (s, k) in goals:
        entry["goal"], entry["goal_met"] = goals[(s, k)][1], False   # a side without a result
    summary.append(entry)

def fmt(sp):
    if not sp:
        return "-"
    d = 0 if sp["median"] >= 100 else (1 if sp["median"] >= 10 else 2)
    if sp["n"] == 1:
        return f"{sp['median']:.{d}f}"
    return f"{sp['median']:.{d}f} ({sp['min']:.{d}f}-{sp['max']:.{d}f})"

conditions = {
    "clusters": "3 nodes each, every node broker and controller (combined mode), loopback, both clusters running for the whole run",
    "record_bytes": int(E["SIZE"]), "records_per_produce_run": int(E["COUNT"]), "rounds": int(E["RUNS"]),
    "replication_factor": int(E["RF"]), "min_insync_replicas": int(E["MIN_ISR"]), "acks": "all",
    "partitions": {"produce_3p_acksall": 3, "produce_1p_acksall": 1, "latency": 1, "failover": 3},
    "topics": "a fresh topic per run, CreateTopics v2 with the same partitions, replication factor and min.insync.replicas on both (bench-admin.py), created when every partition has a leader and all replicas in sync; deleted after each round",
    "produce": "rdkafka_performance -P [-p 0] -s 1024 -a -1, -X linger.ms=" + E["PRODUCER_LINGER_MS"] + " (librdkafka's default; the generator's own is 1000), its defaults otherwise (3 partitions: librdkafka's sticky partitioner)",
    "latency": {"records": int(E["LAT_COUNT"]), "rate_msg_s": int(E["LAT_RATE"]), "warmup_records_dropped": int(E["LAT_WARMUP"]),
                "producer": f"rdkafka_performance -P -p 0 -a -1 -r {E['LAT_RATE']} -X linger.ms=0 -l", "consumer": "rdkafka_performance -C -l from the start of the partition"},
    "failover": {"client": E["CONFLUENT"] + " (scripts/bench-failover.py), acks=all, enable.idempotence=true, linger.ms=5",
                 "rate_msg_s": float(E["FO_RATE"]), "record_bytes": int(E["FO_SIZE"]), "steady_s_before_kill": float(E["FO_STEADY_S"]),
                 "victim": "the leader of the first partition not led by the active controller (DescribeQuorum v0), killed with SIGKILL",
                 "measured": "kill -> first acknowledgement of a record produced after the kill (ms); first_ack_any_record_ms counts any record, including responses already on their way before the kill",
                 "timeouts": "both at their defaults: broker.session.timeout.ms=9000, broker.heartbeat.interval.ms=2000"},
    "cpu": "utime+stime of the 3 broker processes (/proc/PID/stat) around each run, per 1e9 bytes of record values produced (each record is stored 3 times)",
    "rss": "VmRSS / VmHWM of each broker process; idle: 2 s after both clusters were up; steady: 5 s after the last produce round; peak: VmHWM then. Kafka's heap: " + E["KAFKA_HEAP"],
    "page_cache": f"sync + drop_caches + {E['SETTLE_S']} s wait before every produce and latency run" if E["DROP"] == "1" else "NOT dropped (not root): sync only",
    "warmup": f"not measured: {E['WARMUP']} records to a 3-partition RF-3 topic and 40k at the latency rate, on each cluster",
    "order": "alternating per round: odd rounds Fjord first, even rounds Kafka first, scenario by scenario; the failover rounds after all the others",
    "load_generator": "librdkafka examples/rdkafka_performance (" + E["LIBRDKAFKA"] + ")",
    "fjord": "release build " + E["FJORD_COMMIT"] + ", scripts/cluster.sh, config/server.properties",
    "kafka": "Apache Kafka 4.0.0, reference-kafka.sh start DIR PORT 3, default config, heap " + E["KAFKA_HEAP"],
    "load_average_start": E["load_start"], "load_average_end": E["load_end"], "kernel": platform.release(), "cores": os.cpu_count(),
}
res = {"conditions": conditions, "summary": summary, "runs": runs, "failover_runs": failovers,
       "rss_kib_per_node": {f"{k}_{s}": kib(f"{k}_rss_{s}") for k in ("idle", "steady", "peak") for s in ("fjord", "kafka")}}
print(f"\nFjord {E['FJORD_COMMIT']} 3-node cluster vs Apache Kafka 4.0.0 3-node cluster, {E['RUNS']} alternating rounds; "
      f"{E['SIZE']} B records, acks=all, replication factor {E['RF']}, min.insync.replicas {E['MIN_ISR']}; "
      f"{E['COUNT']} records per produce run (3 and 1 partitions), latency {E['LAT_COUNT']} at {E['LAT_RATE']} msg/s (1 partition); "
      f"failover at {float(E['FO_RATE']):.0f} msg/s of {E['FO_SIZE']} B (3 partitions); "
      f"{conditions['page_cache']}; load average {E['load_start']} at start, {E['load_end']} at end; {conditions['cores']} cores")
print(f"{'scenario':24} {'metric':21} {'Fjord median (min-max)':>24} {'Kafka median (min-max)':>24} {'Fjord/Kafka':>11} {'goal':>7} {'met':>4}")
for e in summary:
    ratio = f"{e['ratio_fjord_to_kafka']:.3f}" if "ratio_fjord_to_kafka" in e else "-"
    met = ("yes" if e["goal_met"] else "NO") if "goal_met" in e else ""
    print(f"{e['scenario']:24} {units[e['metric']]:21} {fmt(e['fjord']):>24} {fmt(e['kafka']):>24} {ratio:>11} {e.get('goal', ''):>7} {met:>4}")
bad = [f for f in failovers if f.get("failover_ms") is None or f.get("failed")]
for f in bad:
    print(f"FAILOVER PROBLEM: {f['system']} round {f['round']}: {json.dumps(f)}")
json.dump(res, open(out, "w"), indent=2)
print(f"results: {out}")
PY
