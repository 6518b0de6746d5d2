#!/usr/bin/env bash
# Recovery time after kill -9: fills a broker with BENCH_RECOVERY_GIB GiB (default 5) of 1 KiB
# records over 8 partitions (rdkafka_performance, acks=1), kills it with SIGKILL while idle, and
# times the restart from launch until the port accepts connections. Also times a restart after a
# clean SIGTERM stop. Each restart runs BENCH_RUNS times (default 3, a kill -9 before each unclean
# one); medians go to bench/results/recovery-<timestamp>.json.
#
# What it shows: only the tail after the checkpointed recovery point is scanned after a crash
# (log.flush.offset.checkpoint.interval.ms, default 60 s, bounds that tail), so the time should
# not grow with the amount of data kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_RUNS:-3}"
GIB="${BENCH_RECOVERY_GIB:-5}"
WORK="$ROOT/bench/out"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"
log() { printf '[bench-recovery] %s\n' "$*" >&2; }
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$WORK"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$WORK/recovery-data"
rm -rf "$data"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true' EXIT
# start: launches the broker and waits until the port accepts, both from Python so the timing
# holds no shell overhead (forks, seq); sets pid and ms (launch to accepting). The broker is not
# this shell's child: stop() polls for its exit.
start() {
  read -r pid ms < <(python3 - "$FJORD_BIN" "$port" "$data" "$WORK/recovery-fjord.log" <<'EOF_PY'
import socket, subprocess, sys, time
binary, port, data, logf = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
t0 = time.monotonic()
p = subprocess.Popen([binary, "--override", "fjord.http.listener=none", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}",
                      "--override", "num.partitions=8"], stdout=open(logf, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
while p.poll() is None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        break
    except OSError:
        time.sleep(0.0005)
print(p.pid, round((time.monotonic() - t0) * 1000))
EOF_PY
)
}
# stop SIGNAL: signals the broker and waits until it is gone.
stop() {
  kill "-$1" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
}

start
count=$(( GIB * 1024 * 1024 ))
log "producing $GIB GiB ($count records of 1 KiB) into 8 partitions"
"$PERF" -P -t R8 -s 1024 -c "$count" -a 1 -b "127.0.0.1:$port" 2>&1 | grep -E 'MB/s' | tail -1 >&2
bytes=$(du -sb "$data" | cut -f1)
results="$WORK/recovery.tsv"
: > "$results"
for run in $(seq "$RUNS"); do
  stop KILL
  start
  log "run $run: restart after kill -9 accepting after $ms ms"
  printf 'unclean\t%s\n' "$ms" >> "$results"
  stop TERM
  start
  log "run $run: restart after SIGTERM accepting after $ms ms"
  printf 'clean\t%s\n' "$ms" >> "$results"
done
stop TERM
pid=""
stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$results" "$OUT_DIR/recovery-$stamp.json" "$bytes" "$RUNS" <<'EOF_PY'
import json, os, statistics, sys
path, out, data_bytes, runs = sys.argv[1:]
by = {}
for line in open(path):
    kind, ms = line.split()
    by.setdefault(kind, []).append(int(ms))
res = {'conditions': {'data_bytes': int(data_bytes), 'partitions': 8, 'record_bytes': 1024, 'runs': int(runs),
                      'cores': os.cpu_count(), 'measure': 'launch until the port accepts a connection'},
       'restart_ms': {k: {'median': statistics.median(v), 'all': v} for k, v in by.items()}}
for k, v in res['restart_ms'].items():
    print(f"restart after {'kill -9' if k == 'unclean' else 'SIGTERM'}: median {v['median']} ms {v['all']} "
          f"with {int(data_bytes) / 2**30:.1f} GiB on disk")
json.dump(res, open(out, 'w'), indent=2)
print(f"results: {out}")
EOF_PY
