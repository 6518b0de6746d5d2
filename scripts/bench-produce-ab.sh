#!/usr/bin/env bash
# A/B of the produce path between two broker binaries: produce throughput (rdkafka_performance
# -P, linger.ms=5 as the client's default, loopback) and broker CPU time (utime + stime from
# /proc/<pid>/stat over the run) per GB produced, and the whole machine's busy time per GB (client
# and kernel included: what loopback charges to one side or the other). Each run starts a fresh broker on an empty log
# dir, creates the topic and, when run as root, syncs and drops the page cache first (then waits
# AB_SETTLE_S, default 5 s as bench.sh: after 2 s some of the pages just freed were still the
# guest's, and appends into them are cheap; write-behind and drop-behind off measured 1.05-1.12x
# the rate with 2 s and 0.95-1.10x with 5 s). Scenarios are AB_SCENARIOS, "partitions:acks[:codec]" (default
# "1:1 8:1 1:-1"; e.g. "1:1:lz4" has the producer compress with lz4), AB_RECORDS records of
# AB_RECORD_BYTES each (default 1M x 1 KiB). Runs alternate A and B, the order swapped every round (ABBA...), AB_RUNS rounds (default 6: on this kind of
# machine one binary's rate spreads by a third within minutes, so a 10% difference needs several
# rounds). Medians and ratios B/A per scenario; writes bench/results/produce-ab-<timestamp>.json.
#   scripts/bench-produce-ab.sh OLD_FJORD NEW_FJORD
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
A_BIN="${1:?usage: bench-produce-ab.sh A_BINARY B_BINARY}"
B_BIN="${2:?usage: bench-produce-ab.sh A_BINARY B_BINARY}"
RUNS="${AB_RUNS:-6}"
COUNT="${AB_RECORDS:-1000000}"
RECORD_BYTES="${AB_RECORD_BYTES:-1024}"
SCENARIOS="${AB_SCENARIOS:-1:1 8:1 1:-1}"
SETTLE_S="${AB_SETTLE_S:-5}"
WORK="$ROOT/bench/out/produce-ab"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"
log() { printf '[produce-ab] %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
FJORD_BIN="$B_BIN" bench_build "$ROOT/bench/out"

port=$(free_port)
addr="127.0.0.1:$port"
data="$WORK/data"
FJORD_PID=""
trap '[ -z "$FJORD_PID" ] || fjord_stop; rm -rf "$data"' EXIT
# As root the page cache is dropped before every run (drop_cache).
DROP=0; [ -w /proc/sys/vm/drop_caches ] && DROP=1

results="$WORK/results.tsv"
: > "$results"
: > "$WORK/fjord.log"
for run in $(seq "$RUNS"); do
  if [ $((run % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do
    bin="$A_BIN"; [ "$side" = B ] && bin="$B_BIN"
    rm -rf "$data"
    fjord_start "$bin" "$port" "$data" "$WORK/fjord.log"
    for s in $SCENARIOS; do
      IFS=: read -r parts acks codec <<<"$s"
      codec="${codec:-none}"
      topic="ab-${parts}p-acks${acks/-1/all}-$codec"
      python3 "$ROOT/scripts/bench-admin.py" create "$addr" "$topic" "$parts"
      drop_cache
      partition=(); [ "$parts" = 1 ] && partition=(-p 0)
      c0=$(cpu_ticks "$FJORD_PID"); m0=$(machine_ticks)
      timeout 300 "$PERF" -P -t "$topic" "${partition[@]}" -s "$RECORD_BYTES" -c "$COUNT" -a "$acks" -z "$codec" -X linger.ms=5 -b "$addr" \
        > "$WORK/run.out" 2>&1 || true
      c1=$(cpu_ticks "$FJORD_PID"); m1=$(machine_ticks)
      # "MB/s msg/s bytes delivered", nothing when a record failed.
      read -r mbs _ _ delivered <<<"$(parse_perf "$WORK/run.out")" || true
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$side" "$s" "${mbs:-0}" "$((c1 - c0))" "${delivered:-0}" "$((m1 - m0))" >> "$results"
      log "run $run $side ${parts}p acks=$acks $codec: ${mbs:-?} MB/s, broker CPU $((c1 - c0)) ticks, machine $((m1 - m0)) ticks, ${delivered:-?} delivered"
    done
    fjord_stop
  done
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$results" "$OUT_DIR/produce-ab-$stamp.json" "$A_BIN" "$B_BIN" "$COUNT" "$RECORD_BYTES" "$(getconf CLK_TCK)" "$ROOT" <<'EOF'
import collections, json, os, platform, statistics, sys
path, out, a_bin, b_bin, count, record, hz, root = sys.argv[1:]
# The binaries as the repository names them (one from elsewhere by its file name only).
def label(b):
    inside = os.path.abspath(b).startswith(os.path.abspath(root) + os.sep)
    return os.path.relpath(b, root) if inside else os.path.basename(b)
count, record, hz = int(count), int(record), int(hz)
gb = count * record / 1e9
by = collections.defaultdict(lambda: {s: {'mb_s': [], 'cpu_s_per_gb': [], 'machine_cpu_s_per_gb': []} for s in 'AB'})
complete = True
for run, side, scenario, mbs, ticks, delivered, machine in (l.rstrip('\n').split('\t') for l in open(path)):
    by[scenario][side]['mb_s'].append(float(mbs))
    by[scenario][side]['cpu_s_per_gb'].append(int(ticks) / hz / gb)
    by[scenario][side]['machine_cpu_s_per_gb'].append(int(machine) / hz / gb)
    complete &= int(delivered) == count
summary = {}
print(f"A = {label(a_bin)}\nB = {label(b_bin)}")
print(f"conditions: {count} x {record} B records per run, linger.ms=5, loopback, fresh broker and topic per run")
for scenario, sides in by.items():
    parts, acks, codec = (scenario.split(':') + ['none'])[:3]
    med = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in sides.items()}
    ratio = {k: med['B'][k] / med['A'][k] if med['A'][k] else None for k in med['A']}
    summary[scenario] = {'partitions': int(parts), 'acks': int(acks), 'compression': codec, 'runs': sides, 'medians': med, 'ratio_b_over_a': ratio}
    for k, unit in (('mb_s', 'MB/s'), ('cpu_s_per_gb', 'broker CPU s/GB'), ('machine_cpu_s_per_gb', 'machine CPU s/GB')):
        print(f"  {parts}p acks={acks:>2} {codec:6} {unit:16} A {med['A'][k]:8.2f}  B {med['B'][k]:8.2f}  B/A {ratio[k] or 0:.3f}"
              f"   A {[round(x, 2) for x in sides['A'][k]]}  B {[round(x, 2) for x in sides['B'][k]]}")
res = {'conditions': {'records': count, 'record_bytes': record, 'linger_ms': 5, 'network': 'loopback', 'order': 'ABBA alternating',
                      'producer': 'librdkafka examples/rdkafka_performance -P', 'page_cache': 'synced and dropped before every run when root',
                      'cpu': 'broker utime+stime during the produce (/proc/<pid>/stat); machine: busy time of all cores (/proc/stat: user, nice, system, irq, softirq), the client and the kernel included',
                      'cores': os.cpu_count(), 'kernel': platform.release(), 'load_avg_at_end': os.getloadavg()},
       'A': label(a_bin), 'B': label(b_bin), 'scenarios': summary, 'every_run_delivered_all': complete}
json.dump(res, open(out, 'w'), indent=2)
print(f"every run delivered all records: {complete}; results: {out}")
EOF
