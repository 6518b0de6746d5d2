#!/usr/bin/env bash
# Outside check of the zero-copy fetch path: while a consumer reads ZC_MB (default 100) MB from a
# release broker, strace, attached to every broker thread, records write, writev, sendmsg and sendto
# (the syscalls that copy bytes from user space into a socket) and sendfile (file to socket inside
# the kernel). Passes when the write-family bytes stay under ZC_LIMIT_PCT (default 10) percent of the
# bytes fetched. "Fetched" is the size of the topic's segment files: the consumer reads every record
# once (its count is checked), so the fetches carried exactly those bytes. /proc/<pid>/io is no help
# here: its wchar counts sendfile too.
#
# The data is produced before strace attaches, so only the consume phase is counted. strace stops
# the broker at every syscall, so the consume is slow here; throughput is measured elsewhere
# (scripts/bench-fetch-ab.sh). Writes bench/results/zero-copy-<timestamp>.json.
#   scripts/bench-zero-copy.sh            ZC_MB=20 scripts/bench-zero-copy.sh
#   FJORD_BIN=/path/to/old/fjord scripts/bench-zero-copy.sh   # an older broker, to see the check fail
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MB="${ZC_MB:-100}"
RECORD_BYTES="${ZC_RECORD_BYTES:-1024}"
LIMIT_PCT="${ZC_LIMIT_PCT:-10}"
WORK="$ROOT/bench/out/zero-copy"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"

log() { printf '[zero-copy] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# 1. The broker, the load generator (shared with the other bench scripts) and strace.
# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
bench_build "$ROOT/bench/out"
if ! command -v strace >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing strace"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null 2>&1 \
    || { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
         && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null 2>&1; } \
    || die "strace is not installable"
fi
strace -f -qq -o /dev/null true 2>/dev/null \
  || die "strace cannot trace here (ptrace refused: container seccomp or kernel.yama.ptrace_scope)"

# 2. A broker on a free loopback port, one partition, and ~MB of records produced into it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$WORK/data"
rm -rf "$data"
"$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" \
  --override num.partitions=1 > "$WORK/fjord.log" 2>&1 &
pid=$!
spid=""
cleanup() {
  [ -z "$spid" ] || kill -INT "$spid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.001; done
B="127.0.0.1:$port"
count=$(( MB * 1000000 / RECORD_BYTES ))
log "producing $count records of $RECORD_BYTES bytes to topic zc (1 partition)"
"$PERF" -P -t zc -p 0 -s "$RECORD_BYTES" -c "$count" -a 1 -b "$B" > "$WORK/produce.txt" 2>&1 \
  || die "produce failed: $(tail -3 "$WORK/produce.txt")"
log_bytes=$(find "$data/zc-0" -name '*.log' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
log "segment bytes on disk: $log_bytes"

# 3. strace attached to every thread of the broker (-p with -f takes them all), then the consume.
trace="$WORK/strace.txt"
strace -f -qq -s 0 -e trace=write,writev,sendmsg,sendto,sendfile -e signal=none -o "$trace" -p "$pid" &
spid=$!
traced=0
for _ in $(seq 500); do
  untraced=$( (grep -L -E '^TracerPid:[[:space:]]+[1-9]' /proc/"$pid"/task/*/status 2>/dev/null || true) | wc -l)
  if [ "$untraced" -eq 0 ]; then traced=1; break; fi
  sleep 0.01
done
[ "$traced" -eq 1 ] || die "strace did not attach to every broker thread"
log "strace attached (pid $spid); consuming from the beginning"
t0=$(date +%s%N)
timeout 600 "$PERF" -C -t zc -p 0 -o beginning -c "$count" -b "$B" > "$WORK/consume.txt" 2>&1 \
  || die "consume failed: $(tail -3 "$WORK/consume.txt")"
consume_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -INT "$spid"
wait "$spid" 2>/dev/null || true
spid=""
consumed=$(sed -nE 's/.* ([0-9]+) messages .*/\1/p' "$WORK/consume.txt" | tail -1)

# 4. Sum the return values per syscall, judge, and write the result.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
python3 - "$trace" "$OUT_DIR/zero-copy-$stamp.json" "$log_bytes" "$count" "${consumed:-0}" "$RECORD_BYTES" \
  "$LIMIT_PCT" "$consume_ms" "$FJORD_BIN" "$ROOT" <<'EOF'
import json, os, platform, re, sys
trace, out, log_bytes, count, consumed, record, limit_pct, consume_ms, binary, root = sys.argv[1:]
# The broker as the repository names it (a binary from elsewhere by its file name only).
inside = os.path.abspath(binary).startswith(os.path.abspath(root) + os.sep)
binary = os.path.relpath(binary, root) if inside else os.path.basename(binary)
log_bytes, count, consumed, limit_pct = int(log_bytes), int(count), int(consumed), float(limit_pct)
# "PID name(args) = N", or for a call interrupted by another thread's line,
# "PID <... name resumed>...) = N". Failed calls (-1 EAGAIN, ...) moved no bytes.
call = re.compile(r'^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()')
ret = re.compile(r'\)\s+=\s+(-?\d+)')
sums, calls = {}, {}
for line in open(trace):
    m = call.match(line)
    r = ret.search(line)
    if not m or not r or line.rstrip().endswith('<unfinished ...>'):
        continue
    name = m.group(1) or m.group(2)
    n = int(r.group(1))
    calls[name] = calls.get(name, 0) + 1
    sums[name] = sums.get(name, 0) + max(n, 0)
write_family = sum(sums.get(k, 0) for k in ('write', 'writev', 'sendmsg', 'sendto'))
ratio = write_family / log_bytes if log_bytes else float('inf')
ok = consumed >= count and log_bytes > 0 and ratio < limit_pct / 100
res = {
    'conditions': {'records': count, 'record_bytes': int(record), 'partitions': 1, 'network': 'loopback',
                   'consumer': 'librdkafka examples/rdkafka_performance -C from the beginning',
                   'broker': binary, 'measure': 'strace -f -p <broker> -e trace=write,writev,sendmsg,sendto,sendfile',
                   'cores': os.cpu_count(), 'kernel': platform.release()},
    'fetched_bytes': log_bytes, 'records_consumed': consumed,
    'syscall_bytes': sums, 'syscall_calls': calls,
    'write_family_bytes': write_family, 'sendfile_bytes': sums.get('sendfile', 0),
    'write_family_ratio': ratio, 'limit_ratio': limit_pct / 100, 'consume_ms_under_strace': int(consume_ms),
    'pass': ok,
}
json.dump(res, open(out, 'w'), indent=2)
print(f"conditions: {count} records x {record} B, 1 partition, loopback, broker {binary}")
print(f"fetched (segment bytes): {log_bytes}; records consumed: {consumed} of {count}")
for k in sorted(sums):
    print(f"  {k:9} {calls[k]:8} calls {sums[k]:14} bytes")
print(f"write-family bytes: {write_family} = {ratio * 100:.3f}% of fetched (limit {limit_pct:g}%)"
      f" -> {'PASS' if ok else 'FAIL'}")
print(f"results: {out}")
sys.exit(0 if ok else 1)
EOF
