#!/usr/bin/env bash
# The Java client's producer and consumer with their defaults, Fjord against Apache Kafka 4.0 in
# the same run.
# Produce: the stock kafka-producer-perf-test.sh (batch.size 16384, idempotent, acks=all, the Java
# defaults; linger.ms=5), plain (scenario 0) and with a transactional id committing every N
# milliseconds (scenario N; BENCH_TXN_MS lists them, default "0 10 100"), BENCH_TXN_COUNT records
# of BENCH_TXN_SIZE bytes (default 300000 x 1024) to a fresh 1-partition topic per run. Both
# brokers run their defaults, so both finalize transaction.version 2 and the client speaks KIP-890
# part 2 to both (no AddPartitionsToTxn, an epoch per transaction).
# Consume (BENCH_JAVA_CONSUME=0 skips it): the stock kafka-consumer-perf-test.sh (a new group,
# the consumer's defaults) reads BENCH_JAVA_CONSUME_COUNT records of BENCH_TXN_SIZE bytes (default
# 1000000) written once per broker before the rounds, from disk (page cache dropped; "cold") and
# right after from the page cache ("warm"). Its rate is the perf test's fetch.MB.sec, which leaves
# out the group's join (group.initial.rebalance.delay.ms, 3 s on both).
# BENCH_RUNS alternating rounds (default 3; Fjord first in odd rounds). Per run: records/s, MB/s,
# the client's average and p99 latency (produce), and the broker's CPU (utime+stime,
# /proc/PID/stat) per GB of record values. Medians go to bench/results/java-<time>.json and a
# table on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_RUNS:-3}"
COUNT="${BENCH_TXN_COUNT:-300000}"
SIZE="${BENCH_TXN_SIZE:-1024}"
DURATIONS="${BENCH_TXN_MS:-0 10 100}"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/../shared/kafka-4.0.0}"
CONSUME="${BENCH_JAVA_CONSUME:-1}"
CONSUME_COUNT="${BENCH_JAVA_CONSUME_COUNT:-1000000}"
WORK="${BENCH_WORK:-$ROOT/bench/out/java}"
FJORD_BIN="${FJORD_BIN:-$ROOT/target/release/fjord}"
log() { printf '[bench-java] %s\n' "$*" >&2; }
[ -x "$KAFKA_HOME/bin/kafka-producer-perf-test.sh" ] || { log "no Apache Kafka 4.0 at $KAFKA_HOME (set KAFKA_HOME)"; exit 1; }
[ -x "$FJORD_BIN" ] || cargo build --release >&2
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
ADMIN="$ROOT/scripts/bench-admin.py"
CLK_TCK=$(getconf CLK_TCK)
DROP=0; [ -w /proc/sys/vm/drop_caches ] && DROP=1
SETTLE_S="${BENCH_SETTLE_S:-5}"
rm -rf "$WORK"; mkdir -p "$WORK" bench/results

FJORD_PID=""; kstarted=0
cleanup() {
  [ -n "$FJORD_PID" ] && { kill "$FJORD_PID" 2>/dev/null; wait "$FJORD_PID" 2>/dev/null || true; }
  [ "$kstarted" = 1 ] && "$KAFKA_HOME/reference-kafka.sh" stop "$WORK/kafka" >/dev/null 2>&1
  rm -rf "$WORK/fjord-data" "$WORK/kafka"
}
trap cleanup EXIT
port=$(free_port)
fjord_start "$FJORD_BIN" "$port" "$WORK/fjord-data" "$WORK/fjord.log"
kport=$(free_port_pair)
log "starting Kafka 4.0 (10-30 s)"
kstarted=1
"$KAFKA_HOME/reference-kafka.sh" start "$WORK/kafka" "$kport" 1 >/dev/null
kpid=$(cat "$WORK/kafka/node-1/pid")
declare -A ADDR=([fjord]="127.0.0.1:$port" [kafka]="127.0.0.1:$kport")
declare -A PID=([fjord]="$FJORD_PID" [kafka]="$kpid")
export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="${KAFKA_CLIENT_HEAP:--Xmx512m}"

# perf B TOPIC TXN_ID DURATION_MS COUNT: the perf test's summary line on stdout (no transactions
# when DURATION_MS is 0).
perf() {
  local txn=(--transactional-id "$3" --transaction-duration-ms "$4")
  [ "$4" = 0 ] && txn=()
  "$KAFKA_HOME/bin/kafka-producer-perf-test.sh" --topic "$2" --num-records "$5" --record-size "$SIZE" --throughput -1 \
    --producer-props "bootstrap.servers=${ADDR[$1]}" acks=all linger.ms=5 "${txn[@]}" 2>"$WORK/perf.err" | tail -1
}

# Warm-up, unmeasured: Kafka's JIT and both brokers' first transactional ids.
for b in fjord kafka; do
  "$ADMIN" create "${ADDR[$b]}" warm 1 >/dev/null
  perf "$b" warm "warm-$b" 100 "$COUNT" >/dev/null
done

# consume B TOPIC GROUP COUNT: the consumer perf test's data line on stdout.
consume() {
  "$KAFKA_HOME/bin/kafka-consumer-perf-test.sh" --bootstrap-server "${ADDR[$1]}" --topic "$2" --group "$3" \
    --messages "$4" --timeout 60000 2>"$WORK/perf.err" | tail -1
}

if [ "$CONSUME" = 1 ]; then
  for b in fjord kafka; do
    "$ADMIN" create "${ADDR[$b]}" consume 1 >/dev/null
    "$KAFKA_HOME/bin/kafka-producer-perf-test.sh" --topic consume --num-records "$CONSUME_COUNT" --record-size "$SIZE" --throughput -1 \
      --producer-props "bootstrap.servers=${ADDR[$b]}" acks=1 linger.ms=5 batch.size=262144 >/dev/null 2>"$WORK/perf.err"
    # Warm-up, unmeasured: Kafka's JIT for the fetch path.
    consume "$b" consume warm-up "$CONSUME_COUNT" >/dev/null
  done
fi

results="$WORK/results.tsv"; : > "$results"
for round in $(seq 1 "$RUNS"); do
  order="fjord kafka"; [ $((round % 2)) = 0 ] && order="kafka fjord"
  if [ "$CONSUME" = 1 ]; then
    for b in $order; do
      drop_cache
      for cache in cold warm; do
        c0=$(cpu_ticks "${PID[$b]}")
        line=$(consume "$b" consume "$cache-$round" "$CONSUME_COUNT")
        c1=$(cpu_ticks "${PID[$b]}")
        # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
        # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
        IFS=', ' read -r -a f <<< "$(printf '%s\n' "$line" | sed -E 's/^[0-9:. -]+, [0-9:. -]+, //')"
        [ "${#f[@]}" -ge 8 ] && [ "${f[2]}" = "$CONSUME_COUNT" ] || { log "the consumer perf test against $b read short: $line"; cat "$WORK/perf.err" >&2; exit 1; }
        mbs=${f[6]}; rps=${f[7]}
        printf '%s\t%s\t%s\t%s\t%s\t\t\t%s\n' "$round" "consume-$cache" "$b" "$rps" "$mbs" "$((c1 - c0))" >> "$results"
        log "round $round, consume $cache, $b: $rps records/s, $mbs MB/s (fetching), broker CPU $((c1 - c0)) ticks"
      done
    done
  fi
  for ms in $DURATIONS; do
    for b in $order; do
      topic="txn-$round-$ms"
      "$ADMIN" create "${ADDR[$b]}" "$topic" 1 >/dev/null
      drop_cache
      c0=$(cpu_ticks "${PID[$b]}")
      line=$(perf "$b" "$topic" "txn-$round-$ms" "$ms" "$COUNT")
      c1=$(cpu_ticks "${PID[$b]}")
      # "300000 records sent, 123.4 records/sec (0.12 MB/sec), 4.5 ms avg latency, 300.0 ms max latency, 1 ms 50th, 2 ms 95th, 3 ms 99th, 4 ms 99.9th."
      read -r rps mbs avg p99 < <(printf '%s\n' "$line" | sed -E 's/.* ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency.* ([0-9]+) ms 99th.*/\1 \2 \3 \4/')
      [ -n "$p99" ] || { log "no summary from the perf test against $b: $line"; cat "$WORK/perf.err" >&2; exit 1; }
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$ms" "$b" "$rps" "$mbs" "$avg" "$p99" "$((c1 - c0))" >> "$results"
      log "round $round, scenario $ms, $b: $rps records/s, $mbs MB/s, avg $avg ms, p99 $p99 ms, broker CPU $((c1 - c0)) ticks"
      "$ADMIN" delete "${ADDR[$b]}" "$topic" >/dev/null
    done
  done
done

out="bench/results/java-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$results" "$out" "$COUNT" "$SIZE" "$CLK_TCK" "$RUNS" "$DROP" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$CONSUME_COUNT" <<'PY'
import json, statistics, sys
path, out, count, size, tck, runs, drop, rev, consume_count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8], int(sys.argv[9])
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
res = {"conditions": {"client": "kafka-producer-perf-test.sh (Java client 4.0), acks=all, linger.ms=5, idempotent, transactional; "
                                "kafka-consumer-perf-test.sh (Java client 4.0), consumer defaults, a new group per run",
                      "records": count, "consume_records": consume_count, "record_size": size, "partitions": 1, "rounds": runs, "fjord": rev,
                      "kafka": "Apache Kafka 4.0.0, reference-kafka.sh single KRaft node, default config",
                      "page_cache": "dropped before every run" if drop == "1" else "not dropped (not root)"},
       "runs": [dict(zip(["round", "scenario", "broker", "records_s", "mb_s", "avg_ms", "p99_ms", "cpu_ticks"], r)) for r in rows], "medians": {}}
print("| scenario | Fjord MB/s (min-max) | Kafka MB/s (min-max) | Fjord/Kafka | produce avg / p99 latency ms, Fjord vs Kafka | broker CPU s/GB, Fjord vs Kafka | ratio |")
print("|---|---|---|---|---|---|---|")
def order(scenario):
    return (0, int(scenario)) if scenario.isdigit() else (1, scenario != "consume-cold")
for sc in sorted({r[1] for r in rows}, key=order):
    gb = (count if sc.isdigit() else consume_count) * size / 1e9
    m = {}
    for b in ("fjord", "kafka"):
        rs = [r for r in rows if r[1] == sc and r[2] == b]
        mb = [float(r[4]) for r in rs]
        m[b] = {"mb_s": statistics.median(mb), "min": min(mb), "max": max(mb), "cpu_s_per_gb": statistics.median(int(r[7]) / tck / gb for r in rs)}
        if sc.isdigit():
            m[b].update(avg_ms=statistics.median(float(r[5]) for r in rs), p99_ms=statistics.median(float(r[6]) for r in rs))
    res["medians"][sc] = m
    f, k = m["fjord"], m["kafka"]
    name = {"0": "produce, no transactions", "consume-cold": "consume from disk", "consume-warm": "consume from the page cache"}.get(sc, f"produce, transactions of {sc} ms")
    lat = f"{f['avg_ms']:.1f} / {f['p99_ms']:.0f} vs {k['avg_ms']:.1f} / {k['p99_ms']:.0f}" if sc.isdigit() else "-"
    print(f"| {name} | {f['mb_s']:.0f} ({f['min']:.0f}-{f['max']:.0f}) | {k['mb_s']:.0f} ({k['min']:.0f}-{k['max']:.0f}) | {f['mb_s'] / k['mb_s']:.2f} "
          f"| {lat} | {f['cpu_s_per_gb']:.2f} vs {k['cpu_s_per_gb']:.2f} | {f['cpu_s_per_gb'] / k['cpu_s_per_gb']:.2f} |")
json.dump(res, open(out, "w"), indent=1)
print(f"results: {out}")
PY
