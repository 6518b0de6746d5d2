#!/usr/bin/env bash
# A/B of the fetch path between two broker binaries on the same data: consume throughput
# (rdkafka_performance -C from the beginning, one partition, loopback) and broker CPU time
# (utime + stime from /proc/<pid>/stat, from just before the consume to its end) per GB consumed,
# and the whole machine's busy time per GB (client and kernel included).
# The data (AB_RECORDS records of AB_RECORD_BYTES, default 2M x 1 KiB) is produced once, with B,
# and stays in the page cache; each run starts a fresh broker on it. Runs alternate A and B, the
# order swapped every round (ABBA...), AB_RUNS rounds (default 5); medians and ratios B/A are
# reported. Writes bench/results/fetch-ab-<timestamp>.json.
#   scripts/bench-fetch-ab.sh OLD_FJORD NEW_FJORD
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
A_BIN="${1:?usage: bench-fetch-ab.sh A_BINARY B_BINARY}"
B_BIN="${2:?usage: bench-fetch-ab.sh A_BINARY B_BINARY}"
RUNS="${AB_RUNS:-5}"
COUNT="${AB_RECORDS:-2000000}"
RECORD_BYTES="${AB_RECORD_BYTES:-1024}"
WORK="$ROOT/bench/out/fetch-ab"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"
log() { printf '[fetch-ab] %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
FJORD_BIN="$B_BIN" bench_build "$ROOT/bench/out"

port=$(free_port)
data="$WORK/data"
FJORD_PID=""
trap '[ -z "$FJORD_PID" ] || fjord_stop' EXIT
start() { fjord_start "$1" "$port" "$data" "$WORK/fjord.log" --override num.partitions=1; }

rm -rf "$data"
: > "$WORK/fjord.log"
start "$B_BIN"
log "producing $COUNT records of $RECORD_BYTES bytes (one partition)"
"$PERF" -P -t ab -p 0 -s "$RECORD_BYTES" -c "$COUNT" -a 1 -b "127.0.0.1:$port" > "$WORK/produce.txt" 2>&1
fjord_stop
log_bytes=$(find "$data/ab-0" -name '*.log' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
# Warm the page cache so neither side pays for the disk.
cat "$data"/ab-0/*.log > /dev/null

results="$WORK/results.tsv"
: > "$results"
for run in $(seq "$RUNS"); do
  if [ $((run % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do
    bin="$A_BIN"; [ "$side" = B ] && bin="$B_BIN"
    start "$bin"
    c0=$(cpu_ticks "$FJORD_PID"); m0=$(machine_ticks)
    line=$(timeout 300 "$PERF" -C -t ab -p 0 -o beginning -c "$COUNT" -b "127.0.0.1:$port" 2>&1 \
      | grep -E 'messages .*consumed in' | tail -1 || true)
    c1=$(cpu_ticks "$FJORD_PID"); m1=$(machine_ticks)
    fjord_stop
    mbs=$(sed -nE 's/.*[( ]([0-9.]+) MB\/s.*/\1/p' <<<"$line" | head -1)
    msgs=$(sed -nE 's/^% ([0-9]+) messages.*/\1/p' <<<"$line" | head -1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$side" "${mbs:-0}" "$((c1 - c0))" "${msgs:-0}" "$((m1 - m0))" >> "$results"
    log "run $run $side: ${mbs:-?} MB/s, broker CPU $((c1 - c0)) ticks, machine $((m1 - m0)) ticks, ${msgs:-?} records"
  done
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$results" "$OUT_DIR/fetch-ab-$stamp.json" "$A_BIN" "$B_BIN" "$COUNT" "$RECORD_BYTES" "$log_bytes" \
  "$(getconf CLK_TCK)" "$ROOT" <<'EOF'
import json, os, platform, statistics, sys
path, out, a_bin, b_bin, count, record, log_bytes, hz, root = sys.argv[1:]
# The binaries as the repository names them (one from elsewhere by its file name only).
def label(b):
    inside = os.path.abspath(b).startswith(os.path.abspath(root) + os.sep)
    return os.path.relpath(b, root) if inside else os.path.basename(b)
a_bin, b_bin = label(a_bin), label(b_bin)
count, log_bytes, hz = int(count), int(log_bytes), int(hz)
by = {s: {'mb_s': [], 'cpu_s_per_gb': [], 'machine_cpu_s_per_gb': [], 'records': []} for s in 'AB'}
for run, side, mbs, ticks, msgs, machine in (l.rstrip('\n').split('\t') for l in open(path)):
    by[side]['mb_s'].append(float(mbs))
    by[side]['cpu_s_per_gb'].append(int(ticks) / hz / (log_bytes / 1e9))
    by[side]['machine_cpu_s_per_gb'].append(int(machine) / hz / (log_bytes / 1e9))
    by[side]['records'].append(int(msgs))
med = {s: {k: statistics.median(v) for k, v in d.items() if k != 'records'} for s, d in by.items()}
ratio = {k: med['B'][k] / med['A'][k] if med['A'][k] else None for k in med['A']}
complete = all(r == count for d in by.values() for r in d['records'])
res = {'conditions': {'records': count, 'record_bytes': int(record), 'partitions': 1, 'network': 'loopback',
                      'bytes_per_consume': log_bytes, 'runs_per_side': len(by['A']['mb_s']), 'order': 'ABBA alternating',
                      'consumer': 'librdkafka examples/rdkafka_performance -C -o beginning',
                      'cpu': 'broker utime+stime during the consume (/proc/<pid>/stat); machine: busy time of all cores (/proc/stat), the client and the kernel included',
                      'cores': os.cpu_count(), 'kernel': platform.release(), 'load_avg_at_end': os.getloadavg()},
       'A': a_bin, 'B': b_bin, 'runs': by, 'medians': med, 'ratio_b_over_a': ratio, 'every_run_complete': complete}
json.dump(res, open(out, 'w'), indent=2)
print(f"conditions: {count} x {record} B records ({log_bytes} B on disk), 1 partition, loopback, page cache warm")
print(f"A = {a_bin}\nB = {b_bin}")
for k, unit in (('mb_s', 'MB/s'), ('cpu_s_per_gb', 'broker CPU s per GB'), ('machine_cpu_s_per_gb', 'machine CPU s per GB')):
    print(f"  {unit:22} A {med['A'][k]:8.3f}  B {med['B'][k]:8.3f}  B/A {ratio[k] or 0:.3f}   A runs {by['A'][k]}  B runs {by['B'][k]}")
print(f"every run consumed all records: {complete}; results: {out}")
EOF
