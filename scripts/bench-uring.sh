#!/usr/bin/env bash
# io_uring vs std storage backend, and durable mode (fjord.log.flush.on.acks.all) vs the default,
# side by side in one run: librdkafka's rdkafka_performance producing 1 KiB records to 1 partition
# with acks=1, acks=all, acks=all in durable mode, and acks=all in durable mode from 4 producers
# at once (the case group commit serves: one fsync for several connections' appends). Each cell
# runs BENCH_RUNS times (default 3) on a fresh broker; medians go to
# bench/results/uring-<timestamp>.json with the conditions, and the ratios (uring/std,
# durable/non-durable) to stdout. The broker's io_uring counters (fsyncs requested, issued,
# coalesced) are read from its shutdown log line.
# BENCH_OVERRIDES adds broker properties to every cell (space-separated key=value, recorded in
# the conditions), so two runs that differ in one setting can be compared as ratios.
#   scripts/bench-uring.sh      BENCH_RUNS=5 BENCH_COUNT=500000 scripts/bench-uring.sh
#   BENCH_OVERRIDES="fjord.log.preallocate.step.bytes=0" scripts/bench-uring.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_RUNS:-3}"
COUNT="${BENCH_COUNT:-300000}"
PRODUCERS=4
OVERRIDES="${BENCH_OVERRIDES:-}"
extra_args=()
for kv in $OVERRIDES; do extra_args+=(--override "$kv"); done
WORK="$ROOT/bench/out"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"
log() { printf '[bench-uring] %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$WORK"

disk_mb_s=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=512 conv=fdatasync 2>&1 | python3 -c '
import re, sys
m = re.search(r"(\d+) bytes.* copied, ([0-9.]+) s", sys.stdin.read())
print(f"{int(m.group(1)) / float(m.group(2)) / 1e6:.0f}" if m else 0)')
rm -f "$WORK/dd.bin"
log "conditions: $COUNT x 1 KiB records per cell, 1 partition, $RUNS runs, $(nproc) cores, kernel $(uname -r), data dir $WORK (disk fdatasync write ${disk_mb_s} MB/s), overrides: ${OVERRIDES:-none}"

pid=""
stop_broker() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi
}
trap stop_broker EXIT
start_broker() { # backend durable logfile
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$WORK/udata"
  "$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$WORK/udata" \
    --override "io.backend=$1" --override "fjord.log.flush.on.acks.all=$2" "${extra_args[@]}" > "$3" 2>&1 &
  pid=$!
  for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.001; done
  B="127.0.0.1:$port"
}
# One rdkafka_performance producer with librdkafka's default linger.ms (5; the generator's own
# 1000 ends every run with its last partial batch waiting, see scripts/bench.sh); prints "MB/s msgs/s".
perf_once() { # topic acks count
  local line
  line=$(timeout 600 "$PERF" -P -t "$1" -p 0 -s 1024 -c "$3" -a "$2" -X linger.ms=5 -b "$B" 2>&1 | grep -E 'messages produced.*MB/s' | tail -1 || true)
  printf '%s %s\n' "$(sed -nE 's/.* ([0-9.]+) MB\/s.*/\1/p' <<<"$line" | head -1)" "$(sed -nE 's/.*: ([0-9]+) msgs\/s.*/\1/p' <<<"$line" | head -1)"
}

results="$WORK/uring.tsv"
: > "$results"
: > "$WORK/uring-counters.tsv"
for run in $(seq "$RUNS"); do
  for backend in std uring; do
    for durable in false true; do
      lf="$WORK/fjord-uring.$run.$backend.$durable.log"
      start_broker "$backend" "$durable" "$lf"
      if [ "$durable" = false ]; then
        cells=("acks1|1|1" "acksall|-1|1")
      else
        cells=("acksall_durable|-1|1" "acksall_durable_${PRODUCERS}producers|-1|$PRODUCERS")
      fi
      for c in "${cells[@]}"; do
        IFS='|' read -r name acks n <<<"$c"
        topic="t_$name"
        perf_once "$topic" "$acks" 1000 >/dev/null   # creates the topic and warms the connection
        if [ "$n" = 1 ]; then
          read -r mbs msgs < <(perf_once "$topic" "$acks" "$COUNT")
        else
          # n producers at once; the figure is the aggregate: all bytes over the wall time.
          t0=$(date +%s%N)
          for _ in $(seq "$n"); do perf_once "$topic" "$acks" $((COUNT / n)) > /dev/null & done
          wait $(jobs -p | grep -vx "$pid") 2>/dev/null || true
          secs=$(python3 -c "print(($(date +%s%N) - $t0) / 1e9)")
          mbs=$(python3 -c "print(round($COUNT * 1024 / $secs / 1e6, 2))")
          msgs=$(python3 -c "print(round($COUNT / $secs))")
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$backend" "$name" "${mbs:-0}" "${msgs:-0}" >> "$results"
        log "run $run $backend $name: ${mbs:-?} MB/s ${msgs:-?} msg/s"
      done
      stop_broker
      counters=$(sed 's/\x1b\[[0-9;]*m//g' "$lf" | grep -o 'io_uring counters.*' | tail -1 || true)
      [ -z "$counters" ] || { printf '%s\t%s\tcounters_%s\t%s\n' "$run" "$backend" "$durable" "$counters" >> "$WORK/uring-counters.tsv"; log "run $run $backend durable=$durable: $counters"; }
    done
  done
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$results" "$OUT_DIR/uring-$stamp.json" "$RUNS" "$COUNT" "$disk_mb_s" "$WORK/uring-counters.tsv" "$OVERRIDES" <<'PY'
import json, os, platform, re, statistics, sys
path, out, runs, count, disk, counters_path, overrides = sys.argv[1:]
by = {}
for line in open(path):
    run, backend, name, mbs, msgs = line.rstrip('\n').split('\t')
    d = by.setdefault((backend, name), {'mb_s': [], 'msg_s': []})
    d['mb_s'].append(float(mbs)); d['msg_s'].append(float(msgs))
med = {k: statistics.median(v['mb_s']) for k, v in by.items()}
counters = {}
if os.path.exists(counters_path):
    for line in open(counters_path):
        run, backend, which, text = line.rstrip('\n').split('\t', 3)
        kv = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', text))
        counters.setdefault(f'{backend}_{which}', []).append(kv)
res = {'conditions': {'record_bytes': 1024, 'records_per_cell': int(count), 'runs': int(runs), 'partitions': 1,
                      'load_generator': 'librdkafka examples/rdkafka_performance (rdkafka-sys source)',
                      'broker': 'fjord release, single node, loopback, fresh data dir per backend x durable setting',
                      'cores': os.cpu_count(), 'kernel': platform.release(), 'disk_write_fdatasync_mb_s': float(disk),
                      'broker_overrides': overrides.split()},
       'cells': {f'{b}/{n}': {'median_mb_s': med[(b, n)], 'median_msg_s': statistics.median(by[(b, n)]['msg_s']),
                              'all_mb_s': by[(b, n)]['mb_s']} for (b, n) in by},
       'io_uring_counters': counters, 'ratios': {}}
names = []
for (b, n) in by:
    if n not in names: names.append(n)
print(f"{'scenario':34} {'std MB/s':>9} {'uring MB/s':>10} {'uring/std':>9}")
for n in names:
    s, u = med.get(('std', n)), med.get(('uring', n))
    r = u / s if s and u is not None else None
    res['ratios'][f'uring/std {n}'] = r
    print(f"{n:34} {s or 0:9.1f} {u or 0:10.1f} {r if r is not None else float('nan'):9.2f}")
for b in ('std', 'uring'):
    base = med.get((b, 'acksall'))
    for n in names:
        if 'durable' in n and base:
            r = med[(b, n)] / base
            res['ratios'][f'{b} {n}/acksall'] = r
            print(f"{b}: {n} / acksall = {r:.2f}")
for k, v in counters.items():
    print(f"io_uring counters {k}: {v}")
json.dump(res, open(out, 'w'), indent=2)
print(f"results: {out}")
PY
