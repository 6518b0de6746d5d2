#!/usr/bin/env bash
# Throughput, latency and memory of a release Fjord broker, measured with librdkafka's own load
# generator (examples/rdkafka_performance.c from the librdkafka source that the rdkafka-sys crate
# ships; the same program Apache Kafka's baseline figures were taken with). Scenarios follow the
# baseline: 1 KiB records, 1 and 8 partitions, acks=1 and acks=all, lz4, consume from the start,
# produce latency at 20k msg/s. Each scenario runs BENCH_RUNS times (default 3); the median is
# reported. Results go to bench/results/<timestamp>.json and a table on stdout.
#   scripts/bench.sh                 BENCH_RUNS=5 scripts/bench.sh      BENCH_COUNT=200000 scripts/bench.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_RUNS:-3}"
COUNT="${BENCH_COUNT:-1000000}"
WORK="$ROOT/bench/out"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"

log() { printf '[bench] %s\n' "$*" >&2; }

# 1. The broker and the load generator.
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$WORK"

# 2. The machine's own limits, so every figure is also a ratio to what the hardware allows:
#    sequential write of the data disk with fdatasync (dd, 1 GiB), sustained writes into the page
#    cache without any sync (4 GiB: what a broker that leaves flushing to the OS can append at
#    most), memory copy (512 MiB between two warmed buffers), loopback TCP (iperf3 for 5 s, as the
#    Kafka baseline was measured; Debian's package is installed if missing).
disk_mb_s=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024 conv=fdatasync 2>&1 | python3 -c '
import re, sys
m = re.search(r"(\d+) bytes.* copied, ([0-9.]+) s", sys.stdin.read())
print(f"{int(m.group(1)) / float(m.group(2)) / 1e6:.0f}" if m else 0)')
rm -f "$WORK/dd.bin"
# New page-cache pages are the cost here: on a VM whose balloon takes freed guest pages back,
# each new page faults on the host. The first GiB can reuse pages just freed (the dd file above)
# and run several times faster, so 4 GiB are written and the median GiB after the first is kept.
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
if ! command -v iperf3 >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null 2>&1 || log "iperf3 not installable; loopback limit not measured"
fi
loopback_mb_s=0
if command -v iperf3 >/dev/null 2>&1; then
  iport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  iperf3 -s -1 -B 127.0.0.1 -p "$iport" >/dev/null 2>&1 &
  ipid=$!
  sleep 0.5
  loopback_mb_s=$(iperf3 -c 127.0.0.1 -p "$iport" -t 5 -J 2>/dev/null | python3 -c '
import json, sys
bps = json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]
print(round(bps / 8e6))' || echo 0)
  wait "$ipid" 2>/dev/null || true
fi
log "machine limits: disk write (fdatasync) ${disk_mb_s} MB/s, page-cache write ${pagecache_mb_s} MB/s, memcpy ${memcpy_mb_s} MB/s, loopback TCP ${loopback_mb_s} MB/s"

# 3. A broker on a free loopback port with a data dir on the out disk.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Startup: from launch until the port accepts a connection (polled every millisecond), median of
# 5 launches on an empty data dir (one launch is at the mercy of whatever else the machine does).
wait_port() { for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.001; done; }
starts=()
for _ in 1 2 3 4 5; do
  rm -rf "$WORK/data-startup"
  t0=$(date +%s%N)
  "$FJORD_BIN" --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$WORK/data-startup" > "$WORK/fjord-startup.log" 2>&1 &
  spid=$!
  wait_port "$port"
  starts+=($(( ($(date +%s%N) - t0) / 1000000 )))
  kill "$spid"; wait "$spid" 2>/dev/null || true
done
rm -rf "$WORK/data-startup"
startup_ms=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n 3p)
log "startup (launch to port accepting), 5 launches: ${starts[*]} ms; median ${startup_ms} ms"
data="$WORK/data"
rm -rf "$data"
"$FJORD_BIN" --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" \
  --override num.partitions=8 > "$WORK/fjord.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
wait_port "$port"
B="127.0.0.1:$port"
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
idle_rss=$(rss_kib)

# 4. Scenarios: name | rdkafka_performance arguments.
scenarios=(
  "produce_1p_acks1|-P -t T -p 0 -s 1024 -c $COUNT -a 1"
  "produce_1p_acksall|-P -t T -p 0 -s 1024 -c $COUNT -a -1"
  "produce_8p_acks1|-P -t T8 -s 1024 -c $COUNT -a 1"
  "produce_1p_acks1_lz4|-P -t TZ -p 0 -s 1024 -c $COUNT -a 1 -z lz4"
  "consume_1p_from_start|-C -t T -p 0 -o beginning -c $((COUNT * 2))"
  "latency_20k_acks1|-P -t TL -p 0 -s 1024 -c 200000 -a 1 -r 20000 -l -A $WORK/lat.txt"
)
results="$WORK/results.tsv"
: > "$results"
# One run of the load generator against ADDR with ARGS (a word list): sets mbs and msgs.
perf_run() {
  local line
  # shellcheck disable=SC2086  # args are a word list by design
  line=$(timeout 300 "$PERF" $2 -b "$1" 2>&1 | grep -E 'messages (produced|\().*(MB/s)' | tail -1 || true)
  mbs=$(sed -nE 's/.* ([0-9.]+) MB\/s.*/\1/p; s/.*\(([0-9.]+) MB\/s\).*/\1/p' <<<"$line" | head -1)
  msgs=$(sed -nE 's/.*: ([0-9]+) msgs\/s.*/\1/p' <<<"$line" | head -1)
}
for run in $(seq "$RUNS"); do
  for s in "${scenarios[@]}"; do
    name="${s%%|*}"; args="${s#*|}"
    perf_run "$B" "$args"
    extra=""
    if [ "$name" = latency_20k_acks1 ]; then
      extra=$(python3 - "$WORK/lat.txt" <<'EOF'
import sys
v = [int(x) for x in open(sys.argv[1]) if x.strip()][20000:]   # drop warm-up, as the baseline did
v.sort()
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1000.0
print(f"p50_ms={q(0.5):.2f} p99_ms={q(0.99):.2f} p999_ms={q(0.999):.2f}")
EOF
)
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "${mbs:-0}" "${msgs:-0}" "$extra" >> "$results"
    log "run $run $name: ${mbs:-?} MB/s ${msgs:-?} msg/s $extra"
  done
done
loaded_rss=$(rss_kib)

# 4a. Consume with nothing cached: the page cache is dropped (sync, then drop_caches; root only,
#     skipped otherwise) before each run of the consume command, as the VM's proactive reclaim
#     does to data idle for a minute. Shows what fetch read-ahead (fjord.fetch.readahead.bytes)
#     does for a consumer reading from the disk.
if [ -w /proc/sys/vm/drop_caches ]; then
  for run in $(seq "$RUNS"); do
    sync; echo 3 > /proc/sys/vm/drop_caches
    perf_run "$B" "-C -t T -p 0 -o beginning -c $((COUNT * 2))"
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" consume_1p_cold "${mbs:-0}" "${msgs:-0}" "" >> "$results"
    log "run $run consume_1p_cold: ${mbs:-?} MB/s ${msgs:-?} msg/s"
  done
else
  log "not root: the cold consume runs (drop_caches) are skipped"
fi

# 4b. Idle RSS of a broker holding 100 partitions (the issue's memory goal: well under 50 MiB): a
#     second broker whose auto-created topics get 100 partitions, 10k records written across them
#     (random partitioner), then 2 s idle before reading VmRSS.
port100=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$WORK/data100"
"$FJORD_BIN" --override "listeners=PLAINTEXT://127.0.0.1:$port100" --override "log.dirs=$WORK/data100" \
  --override num.partitions=100 > "$WORK/fjord100.log" 2>&1 &
pid100=$!
wait_port "$port100"
timeout 120 "$PERF" -P -t P100 -s 1024 -c 10000 -a 1 -X partitioner=random -b "127.0.0.1:$port100" >/dev/null 2>&1 || true
parts100=$(find "$WORK/data100" -maxdepth 1 -type d -name 'P100-*' | wc -l)
sleep 2
idle_rss_100p=$(awk '/VmRSS/ {print $2}' "/proc/$pid100/status")
kill "$pid100"; wait "$pid100" 2>/dev/null || true
rm -rf "$WORK/data100"
log "idle RSS with $parts100 partitions: $((idle_rss_100p / 1024)) MiB"

# 4c. Drop-behind (fjord.log.writeback.step.bytes + fjord.log.drop.behind.bytes, off by default):
#     a third broker on a fresh data dir whose active segments queue writeback every 2 MiB and drop
#     written pages 32 MiB behind their end, so appends reuse freed memory instead of new page-cache
#     pages. The same produce command RUNS times, then the consume command RUNS times (reading
#     from the disk what the page cache no longer holds).
#     The first broker's dirty pages are synced first: the kernel's flusher writing them back
#     would otherwise share the disk with this broker's write-behind (the first scenarios, too,
#     start with nothing dirty).
DROP_OVERRIDES=(--override fjord.log.writeback.step.bytes=2097152 --override fjord.log.drop.behind.bytes=33554432)
sync
portdb=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$WORK/data-db"
"$FJORD_BIN" --override "listeners=PLAINTEXT://127.0.0.1:$portdb" --override "log.dirs=$WORK/data-db" \
  "${DROP_OVERRIDES[@]}" > "$WORK/fjord-db.log" 2>&1 &
piddb=$!
wait_port "$portdb"
for s in "produce_1p_acks1_dropbehind|-P -t T -p 0 -s 1024 -c $COUNT -a 1" \
         "consume_1p_from_start_dropbehind|-C -t T -p 0 -o beginning -c $((COUNT * 2))"; do
  name="${s%%|*}"; args="${s#*|}"
  for run in $(seq "$RUNS"); do
    perf_run "127.0.0.1:$portdb" "$args"
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "${mbs:-0}" "${msgs:-0}" "" >> "$results"
    log "run $run $name: ${mbs:-?} MB/s ${msgs:-?} msg/s"
  done
done
kill "$piddb"; wait "$piddb" 2>/dev/null || true
rm -rf "$WORK/data-db"

# 5. Medians, conditions and machine facts as JSON, plus a table.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$results" "$OUT_DIR/$stamp.json" "$RUNS" "$COUNT" "$idle_rss" "$loaded_rss" "$startup_ms" \
  "$disk_mb_s" "$pagecache_mb_s" "$memcpy_mb_s" "$loopback_mb_s" "$idle_rss_100p" "$parts100" <<'EOF'
import json, os, platform, statistics, sys
path, out, runs, count, idle, loaded, startup, disk, pagecache, memcpy, loopback, idle100, parts100 = sys.argv[1:]
limits = {'disk_write_fdatasync_mb_s': float(disk), 'page_cache_write_mb_s': float(pagecache),
          'memcpy_mb_s': float(memcpy), 'loopback_tcp_mb_s': float(loopback)}
rows = [l.rstrip('\n').split('\t') for l in open(path)]
by = {}
for run, name, mbs, msgs, extra in rows:
    d = by.setdefault(name, {'mb_s': [], 'msg_s': [], 'extra': []})
    d['mb_s'].append(float(mbs)); d['msg_s'].append(float(msgs)); d['extra'].append(extra)
baseline = {'produce_1p_acks1': 206, 'produce_1p_acksall': 203, 'produce_8p_acks1': 202,
            'produce_1p_acks1_lz4': 717, 'consume_1p_from_start': 1866,
            # Kafka's defaults against Fjord with drop-behind on.
            'produce_1p_acks1_dropbehind': 206, 'consume_1p_from_start_dropbehind': 1866}
res = {'conditions': {'record_bytes': 1024, 'records': int(count), 'runs': int(runs),
                      'load_generator': 'librdkafka examples/rdkafka_performance (rdkafka-sys source)',
                      'broker': 'fjord release, single node, loopback, default config, num.partitions=8',
                      'dropbehind_broker': 'a separate fjord with fjord.log.writeback.step.bytes=2097152 fjord.log.drop.behind.bytes=33554432, fresh data dir',
                      'cores': os.cpu_count(), 'kernel': platform.release()},
       'machine_limits': limits,
       'idle_rss_kib': int(idle), 'rss_after_runs_kib': int(loaded), 'startup_ms': float(startup),
       'idle_rss_100_partitions_kib': int(idle100), 'partitions_in_rss_check': int(parts100),
       'scenarios': {}}
print(f"machine limits: {limits}")
print(f"{'scenario':28} {'median MB/s':>12} {'median msg/s':>13} {'Kafka 4.0 MB/s':>15} {'ratio':>6} {'of limit':>8}  runs")
for name, d in by.items():
    m = statistics.median(d['mb_s'])
    entry = {'median_mb_s': m, 'median_msg_s': statistics.median(d['msg_s']), 'all_mb_s': d['mb_s']}
    if any(d['extra']):
        lat = {}
        for e in d['extra']:
            for kv in e.split():
                k, v = kv.split('='); lat.setdefault(k, []).append(float(v))
        entry['latency'] = {k: statistics.median(v) for k, v in lat.items()}
        entry['latency_all_runs'] = lat
    k = baseline.get(name)
    ratio = f"{m / k:.2f}" if k else ""
    # Produce is bounded by writes into the page cache (acks do not wait for fsync by default),
    # consume by loopback TCP.
    limit = float(loopback) if name.startswith('consume') else float(pagecache)
    entry['ratio_to_machine_limit'] = m / limit if limit > 0 else None
    of_limit = f"{m / limit:.2f}" if limit > 0 and not name.startswith('latency') else ""
    res['scenarios'][name] = entry
    print(f"{name:28} {m:12.1f} {entry['median_msg_s']:13.0f} {k or '':>15} {ratio:>6} {of_limit:>8}  {d['mb_s']}")
    if 'latency' in entry:
        print(f"{'':28} latency medians over runs: {entry['latency']}")
print(f"idle RSS {int(idle)/1024:.1f} MiB, RSS after runs {int(loaded)/1024:.1f} MiB, startup {startup} ms")
print(f"idle RSS holding {parts100} partitions: {int(idle100)/1024:.1f} MiB")
json.dump(res, open(out, 'w'), indent=2)
print(f"results: {out}")
EOF
