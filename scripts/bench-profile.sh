#!/usr/bin/env bash
# Where Fjord's produce path spends CPU when the cores are contended: a release broker (built with
# debug info), one produce run per scenario (1 partition and 8 partitions, acks=1, 1 KiB records,
# fresh topic, page cache dropped first when root), sampled machine-wide with `perf record -a -g`
# so that the broker's threads, the client and everything else on the machine show in one profile.
# Prints per scenario: the CPU split by process and thread (perf samples), the broker's thread CPU
# from /proc/PID/task/*/stat around the run, and the top symbols of the broker and of the client.
#   scripts/bench-profile.sh          BENCH_COUNT=500000 scripts/bench-profile.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COUNT="${BENCH_COUNT:-1000000}"
WORK="$ROOT/bench/out"
mkdir -p "$WORK"
log() { printf '[profile] %s\n' "$*" >&2; }
command -v perf >/dev/null 2>&1 || { log "perf not installed (Debian package linux-perf)"; exit 1; }
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$WORK"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$WORK/profile-data"
rm -rf "$data"
"$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" > "$WORK/profile-fjord.log" 2>&1 &
fpid=$!
trap 'kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.001; done
addr="127.0.0.1:$port"
python3 scripts/bench-admin.py create "$addr" warmup 1
"$PERF" -P -t warmup -p 0 -s 1024 -c 200000 -a 1 -b "$addr" >/dev/null 2>&1 || true

# utime+stime ticks of every thread of PID: "tid comm ticks" per line
thread_ticks() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(tr ' ' _ < "$t/comm")" "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done 2>/dev/null
}
for s in "produce_1p_acks1|-p 0|1" "produce_8p_acks1||8"; do
  IFS='|' read -r name part parts <<<"$s"
  topic="$name-profile"
  python3 scripts/bench-admin.py create "$addr" "$topic" "$parts"
  sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches
  thread_ticks "$fpid" > "$WORK/threads-before"
  total0=$(sed 's/.*) //' "/proc/$fpid/stat" | awk '{print $12 + $13}')
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  perf record -a -g -F 999 -o "$WORK/$name.perf.data" -- sleep 600 > /dev/null 2>&1 &
  rpid=$!
  sleep 0.5
  # shellcheck disable=SC2086  # part is empty or "-p 0"
  "$PERF" -P -t "$topic" $part -s 1024 -c "$COUNT" -a 1 -X linger.ms=5 -b "$addr" > "$WORK/profile-client.out" 2>&1 &
  cpid=$!
  wait "$cpid" || true
  kill -INT "$rpid"; wait "$rpid" 2>/dev/null || true
  thread_ticks "$fpid" > "$WORK/threads-after"
  total1=$(sed 's/.*) //' "/proc/$fpid/stat" | awk '{print $12 + $13}')
  grep -E 'messages produced' "$WORK/profile-client.out" | tail -1 || true
  echo "== $name ($COUNT x 1 KiB), load average at start $load"
  echo "-- broker thread CPU (s) from /proc/$fpid/task, summed by thread name (threads that exited"
  echo "   during the run, io_uring's idle io-wq workers, are counted from the process total):"
  python3 - "$WORK/threads-before" "$WORK/threads-after" "$(getconf CLK_TCK)" "$((total1 - total0))" <<'PY'
import sys, re, collections
before = {l.split()[0]: int(l.split()[2]) for l in open(sys.argv[1]) if l.strip()}
by = collections.Counter()
for l in open(sys.argv[2]):
    tid, comm, ticks = l.split()
    by[re.sub(r"[-_]?\d+$", "", comm)] += int(ticks) - before.get(tid, 0)
by["(exited threads)"] = max(0, int(sys.argv[4]) - sum(by.values()))
total = sum(by.values()) or 1
print(f"   {'process total':28} {int(sys.argv[4]) / int(sys.argv[3]):6.2f} s")
for comm, t in by.most_common():
    if t:
        print(f"   {comm:28} {t / int(sys.argv[3]):6.2f} s  {100 * t / total:5.1f}%")
PY
  echo "-- samples by process/thread (whole machine):"
  perf report -i "$WORK/$name.perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -15 || true
  echo "-- top symbols in the broker (pid $fpid), % of the broker's samples, by thread name:"
  perf report -i "$WORK/$name.perf.data" --no-children --pid "$fpid" --percentage relative --sort comm,sym --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -30 || true
  echo "-- top symbols in the client (pid $cpid), % of the client's samples:"
  perf report -i "$WORK/$name.perf.data" --no-children --pid "$cpid" --percentage relative --sort comm,sym --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -12 || true
done
