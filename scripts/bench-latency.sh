#!/usr/bin/env bash
# Latency of a release Fjord broker, two ways, in one table:
#  1. Fjord's own end-to-end measurement (bench/e2e, the rdkafka crate): producer -> broker ->
#     consumer in one process on one monotonic clock, paced at a fixed rate, latency taken from each
#     record's scheduled send time (no coordinated omission), plus the producer-ack latency
#     (send -> delivery report) of the same records.
#  2. librdkafka's own rdkafka_performance in latency mode, exactly as the Kafka 4.0 baseline was
#     measured (-P -t T -p 0 -s 1024 -c 200000 -a 1 -r 20000 -l -A lat.txt, first 20k samples
#     dropped): producer-ack latency only.
# Scenarios (1 KiB records, 1 partition, linger.ms=0, fetch.wait.max.ms=5):
#   e2e_20k_acks1    20k msg/s, acks=1,   LAT_DURATION_S (default 30 s), first 20k records dropped
#   e2e_20k_acksall  20k msg/s, acks=all, same
#   e2e_max_acks1    as fast as possible for LAT_MAX_DURATION_S (default 10 s), acks=1
#   e2e_20k_acks1_seg64m  as e2e_20k_acks1 on a second broker with log.segment.bytes=64 MiB: a
#                    segment roll every ~3.3 s, so the cost of a roll shows in the percentiles (with
#                    the default 1 GiB segments a 20k msg/s run meets one roll every ~52 s, none in
#                    30 s). The topic asks for segment.bytes too.
#   perf_20k_acks1   rdkafka_performance -l as the baseline (200k records at 20k msg/s)
# and two cross-checks of the tools against each other (200k records each):
#   perf_20k_acks1_linger0   the baseline's command with -X linger.ms=0 (the e2e tool's linger)
#   e2e_20k_acks1_linger1000 the e2e tool with linger.ms=1000, which rdkafka_performance sets by
#                            default (its examples/rdkafka_performance.c: linger.ms=1000)
# Each e2e run writes a fresh topic, so runs are alike (a 10 s max-rate run passes 1 GiB and rolls
# once). Each runs LAT_RUNS times (default 3), interleaved; medians are reported. Results go to
# bench/results/latency-<timestamp>.json and a table on stdout.
#   scripts/bench-latency.sh        LAT_RUNS=5 LAT_DURATION_S=10 scripts/bench-latency.sh
# The broker binary is target/release/fjord (built only when missing; FJORD_BIN to override).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${LAT_RUNS:-3}"
DURATION_S="${LAT_DURATION_S:-30}"
MAX_DURATION_S="${LAT_MAX_DURATION_S:-10}"
RATE="${LAT_RATE:-20000}"
WARMUP="${LAT_WARMUP:-20000}"
FETCH_WAIT_MS="${LAT_FETCH_WAIT_MS:-5}"
WORK="$ROOT/bench/out/latency"
OUT_DIR="$ROOT/bench/results"
TARGET_DIR="${RDKAFKA_TARGET_DIR:-$ROOT/compat-tests/rdkafka/target}"   # shared with compat-tests/rdkafka
mkdir -p "$WORK" "$OUT_DIR"

log() { printf '[bench-latency] %s\n' "$*" >&2; }

# 1. Build: the e2e tool (into compat-tests/rdkafka's target dir, so the bundled librdkafka is
#    compiled once for both), rdkafka_performance from the same librdkafka source, the broker.
compat-tests/rdkafka/deps.sh >&2
# Resolve exactly as compat-tests/rdkafka does (both lock files are local, not in git).
if [ ! -f bench/e2e/Cargo.lock ] && [ -f compat-tests/rdkafka/Cargo.lock ]; then
  cp compat-tests/rdkafka/Cargo.lock bench/e2e/Cargo.lock
fi
log "building bench/e2e (release, target dir $TARGET_DIR)"
t_build=$(date +%s)
CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -j "${CARGO_BUILD_JOBS:-2}" \
  --manifest-path bench/e2e/Cargo.toml >&2
log "bench/e2e built in $(( $(date +%s) - t_build )) s"
E2E="$TARGET_DIR/release/fjord-bench-e2e"

PERF="${PERF:-$ROOT/bench/out/rdkafka_performance}"   # the same binary scripts/bench.sh builds
if [ ! -x "$PERF" ]; then
  log "building rdkafka_performance from the librdkafka source in rdkafka-sys"
  lib=$(find "$TARGET_DIR/release/build" -name librdkafka.a -path '*rdkafka-sys*' | head -1)
  [ -n "$lib" ] || { log "librdkafka.a not found under $TARGET_DIR"; exit 1; }
  out=$(dirname "$(dirname "$lib")")   # .../out (holds config.h, src/, examples/)
  gcc -O2 -o "$PERF" "$out/examples/rdkafka_performance.c" -I"$out/src" "$out/src/librdkafka.a" \
    -lz -lpthread -lm -ldl -lrt
fi

FJORD_BIN="${FJORD_BIN:-$ROOT/target/release/fjord}"
if [ ! -x "$FJORD_BIN" ]; then
  log "no $FJORD_BIN: cargo build --release"
  cargo build --release >&2
fi

# 2. A broker on a free loopback port, data in a fresh directory on the work disk. The roll
#    scenario gets its own broker with small segments (log.segment.bytes), started for its run only.
pid=""; data=""; roll_pid=""; roll_data=""
cleanup() {
  for p in "$pid" "$roll_pid"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$data" "$roll_data"
}
trap cleanup EXIT
# start_broker LOGFILE [--override k=v]...: sets STARTED_PID, STARTED_DATA, STARTED_ADDR.
start_broker() {
  local logf="$1" port; shift
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  STARTED_DATA=$(mktemp -d "$WORK/data.XXXXXX")
  "$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$STARTED_DATA" \
    --override num.partitions=1 "$@" > "$logf" 2>&1 &
  STARTED_PID=$!
  for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.001; done
  kill -0 "$STARTED_PID" 2>/dev/null || { log "broker did not start (see $logf)"; exit 1; }
  STARTED_ADDR="127.0.0.1:$port"
}
start_broker "$WORK/fjord.log"
pid=$STARTED_PID; data=$STARTED_DATA; B=$STARTED_ADDR
log "fjord $FJORD_BIN pid $pid on $B, data $data"
ROLL_SEGMENT_BYTES=67108864
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# 3. Scenarios, interleaved run by run so slow phases of the shared machine spread over all.
e2e_common=(--partitions 1 --size 1024 --warmup "$WARMUP" --linger-ms 0
            --fetch-wait-ms "$FETCH_WAIT_MS")
runs_tsv="$WORK/runs.tsv"
: > "$runs_tsv"
for run in $(seq "$RUNS"); do
  for name in e2e_20k_acks1 e2e_20k_acksall e2e_max_acks1 e2e_20k_acks1_seg64m e2e_20k_acks1_linger1000; do
    case "$name" in
      e2e_20k_acks1)   args=(--rate "$RATE" --acks 1 --duration-s "$DURATION_S") ;;
      e2e_20k_acksall) args=(--rate "$RATE" --acks all --duration-s "$DURATION_S") ;;
      e2e_max_acks1)   args=(--rate 0 --acks 1 --duration-s "$MAX_DURATION_S") ;;
      e2e_20k_acks1_seg64m)
        args=(--rate "$RATE" --acks 1 --duration-s "$DURATION_S" --topic-config segment.bytes=67108864) ;;
      e2e_20k_acks1_linger1000)
        args=(--rate "$RATE" --acks 1 --count 200000 --linger-ms 1000) ;;
    esac
    args+=(--topic "lat-$name-r$run")
    addr=$B
    if [ "$name" = e2e_20k_acks1_seg64m ]; then
      start_broker "$WORK/fjord-roll.log" --override "log.segment.bytes=$ROLL_SEGMENT_BYTES"
      roll_pid=$STARTED_PID; roll_data=$STARTED_DATA; addr=$STARTED_ADDR
    fi
    j="$WORK/$name-$run.json"
    rm -f "$j"
    log "run $run $name"
    if timeout 600 "$E2E" --brokers "$addr" "${e2e_common[@]}" "${args[@]}" --label "$name run $run" --json "$j" \
         > "$WORK/$name-$run.txt" 2>&1; then :; else log "  $name exited non-zero (see $WORK/$name-$run.txt)"; fi
    sed 's/^/    /' "$WORK/$name-$run.txt" >&2
    if [ -n "$roll_pid" ]; then
      log "  segments of lat-$name-r$run: $(find "$roll_data" -path "*lat-$name-r$run-0/*" -name '*.log' | wc -l)"
      kill "$roll_pid" 2>/dev/null || true; wait "$roll_pid" 2>/dev/null || true
      rm -rf "$roll_data"; roll_pid=""; roll_data=""
    fi
    [ -f "$j" ] && printf '%s\t%s\t%s\n' "$run" "$name" "$j" >> "$runs_tsv"
  done
  # The baseline's command, unchanged but for the broker address and file names; then the same
  # with linger.ms=0.
  for name in perf_20k_acks1 perf_20k_acks1_linger0; do
    extra=()
    topic=TL
    if [ "$name" = perf_20k_acks1_linger0 ]; then extra=(-X linger.ms=0); topic=TL0; fi
    lat="$WORK/$name-$run.lat.txt"
    rm -f "$lat"
    log "run $run $name: rdkafka_performance -P -t $topic -p 0 -s 1024 -c 200000 -a 1 -r $RATE -l -A ${extra[*]}"
    timeout 300 "$PERF" -P -t "$topic" -p 0 -s 1024 -c 200000 -a 1 -r "$RATE" -l -A "$lat" "${extra[@]}" -b "$B" \
      > "$WORK/$name-$run.txt" 2>&1 || log "  rdkafka_performance exited non-zero"
    grep -E 'messages (produced|\()' "$WORK/$name-$run.txt" | tail -1 | sed 's/^/    /' >&2 || true
    j="$WORK/$name-$run.json"
    python3 - "$lat" "$WORK/$name-$run.txt" "$j" <<'EOF'
import json, math, re, sys
lat, txt, out = sys.argv[1:]
v = [int(x) for x in open(lat) if x.strip()][20000:]   # drop warm-up (send order), as the baseline did
v.sort()
n = len(v)
q = lambda p: v[min(n, max(1, math.ceil(p * n))) - 1] / 1000.0   # nearest rank; the file holds microseconds
line = [l for l in open(txt, errors='replace') if re.search(r'messages (produced|\()', l)]
m = re.search(r': ([0-9]+) msgs/s', line[-1]) if line else None
res = {'tool': 'rdkafka_performance -l', 'achieved_msg_s': float(m.group(1)) if m else None, 'latency': {}}
if n:
    res['latency']['ack_from_send_call'] = {
        'count': n, 'min_ms': v[0] / 1000.0, 'mean_ms': sum(v) / n / 1000.0, 'p50_ms': q(0.5),
        'p90_ms': q(0.9), 'p99_ms': q(0.99), 'p99_9_ms': q(0.999), 'max_ms': v[-1] / 1000.0}
    l = res['latency']['ack_from_send_call']
    print(f"    ack latency p50 {l['p50_ms']:.3f} p99 {l['p99_ms']:.3f} p99.9 {l['p99_9_ms']:.3f} "
          f"max {l['max_ms']:.3f} ms", file=sys.stderr)
json.dump(res, open(out, 'w'), indent=2)
EOF
    printf '%s\t%s\t%s\n' "$run" "$name" "$j" >> "$runs_tsv"
  done
done
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# 4. Medians over runs, conditions and machine facts as JSON, and the table.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$runs_tsv" "$OUT_DIR/latency-$stamp.json" "$RUNS" "$DURATION_S" "$MAX_DURATION_S" "$RATE" \
  "$WARMUP" "$FETCH_WAIT_MS" "$rss_kib" "$load_before" "$load_after" "$("$FJORD_BIN" --version 2>/dev/null || echo fjord)" <<'EOF'
import json, os, platform, statistics, sys
(tsv, out, runs, dur, maxdur, rate, warmup, fetch_wait, rss, load_before, load_after, version) = sys.argv[1:]
by = {}
for line in open(tsv):
    run, name, path = line.rstrip('\n').split('\t')
    by.setdefault(name, []).append(json.load(open(path)))
measures = [('e2e_from_scheduled', 'end-to-end, from scheduled send'),
            ('e2e_from_send_call', 'end-to-end, from send call'),
            ('ack_from_scheduled', 'producer ack, from scheduled send'),
            ('ack_from_send_call', 'producer ack, from send call')]
keys = ['p50_ms', 'p90_ms', 'p99_ms', 'p99_9_ms', 'max_ms']
med = lambda xs: statistics.median(xs) if xs else None
scen = {}
for name, rs in by.items():
    e = {'runs': len(rs), 'median_achieved_msg_s': med([r['achieved_msg_s'] for r in rs if r.get('achieved_msg_s')]),
         'all_achieved_msg_s': [r.get('achieved_msg_s') for r in rs], 'median': {}, 'all_runs': {}}
    if rs[0].get('conditions'):
        e['conditions'] = rs[0]['conditions']
        e['missing_records'] = [r.get('missing') for r in rs]
        e['delivery_errors'] = [r.get('delivery_errors') for r in rs]
    for m, _ in measures:
        vals = [r['latency'][m] for r in rs if r.get('latency', {}).get(m)]
        if vals:
            e['median'][m] = {k: med([v[k] for v in vals]) for k in keys + ['count']}
            e['all_runs'][m] = {k: [v[k] for v in vals] for k in keys}
    scen[name] = e
res = {'broker': version.strip(), 'runs': int(runs),
       'conditions': {'record_bytes': 1024, 'partitions': 1, 'linger_ms': 0, 'rate_msg_s': float(rate),
                      'e2e_duration_s': float(dur), 'e2e_max_duration_s': float(maxdur),
                      'warmup_records_dropped': int(warmup), 'fetch_wait_max_ms': int(fetch_wait),
                      'fetch_min_bytes': 1, 'broker_config': 'defaults, num.partitions=1, loopback',
                      'clients': 'bench/e2e (rdkafka crate) and rdkafka_performance, same librdkafka source',
                      'cores': os.cpu_count(), 'kernel': platform.release(),
                      'loadavg_before': load_before, 'loadavg_after': load_after},
       'broker_rss_after_kib': int(rss),
       'kafka_4_0_baseline': {'perf_20k_acks1': {'p50_ms': '27-29', 'p99_ms': '59-154', 'p99_9_ms': '~990'}},
       'scenarios': scen}
json.dump(res, open(out, 'w'), indent=2)
print(f"Fjord latency, median of {runs} runs; 1 KiB records, 1 partition, linger.ms=0, fetch.wait.max.ms={fetch_wait}, "
      f"first {warmup} records dropped; load avg before {load_before}, after {load_after}")
print(f"{'scenario':26} {'measure':34} {'msg/s':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8}  (ms)")
for name, e in scen.items():
    first = True
    for m, label in measures:
        if m not in e['median']:
            continue
        d = e['median'][m]
        rate_s = f"{e['median_achieved_msg_s']:.0f}" if first and e['median_achieved_msg_s'] else ''
        print(f"{name if first else '':26} {label:34} {rate_s:>8} " + ' '.join(f"{d[k]:8.2f}" for k in keys))
        first = False
print(f"{'Kafka 4.0':26} {'perf -l (baseline)':34} {'':>8} {'27-29':>8} {'':>8} {'59-154':>8} {'~990':>8}")
print("e2e: bench/e2e, one process, monotonic clock; 'from scheduled send' counts sender stalls (no coordinated omission).")
print("perf: rdkafka_performance -l, send call -> delivery report, as the baseline; compare with 'producer ack, from send call'.")
print(f"broker RSS after the runs {int(rss) / 1024:.1f} MiB; results: {out}")
EOF
