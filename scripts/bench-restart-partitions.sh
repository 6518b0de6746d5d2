#!/usr/bin/env bash
# Restart time with many small partitions (issue 14): creates BENCH_PARTITIONS partitions (default
# 5000) in one topic, produces BENCH_MB MiB (default 12) of 1 KiB records round-robin over all of
# them with the stock Java producer (acks=1), waits past one recovery-point checkpoint, then times:
#   - a restart after kill -9 (launch until the first Metadata answer naming every partition, and
#     until the first successful Produce),
#   - a clean stop (SIGTERM until the process is gone),
#   - a restart after that clean stop.
# Usage: scripts/bench-restart-partitions.sh [path/to/fjord]   (default target/release/fjord)
# BENCH_OVERRIDES="key=value ..." adds broker properties to every start; BENCH_KEEP=DIR keeps a
# copy of the data dir as kill -9 left it (for strace or perf on the unclean start).
# Needs Java 17 and ../shared/kafka-4.0.0 (or KAFKA_HOME). Prints one line per measurement.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/fjord}"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/../shared/kafka-4.0.0}"
[ -d "$KAFKA_HOME" ] || { echo "Kafka tools not found at $KAFKA_HOME (set KAFKA_HOME)" >&2; exit 2; }
PARTS="${BENCH_PARTITIONS:-5000}"
MB="${BENCH_MB:-12}"
WORK="$(mktemp -d)"
export LOG_DIR="$WORK/kafka-tool-logs" KAFKA_HEAP_OPTS=-Xmx512m
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$WORK/data"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$WORK"' EXIT
log() { printf '[bench-restart-partitions] %s\n' "$*" >&2; }

# start: launches the broker; prints "pid ms_to_metadata ms_to_produce" (from launch).
start() {
  python3 - "$BIN" "$port" "$data" "$WORK/fjord.log" "$PARTS" <<'EOF_PY'
import os, socket, struct, subprocess, sys, time
binary, port, data, logf, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def crc32c(b):
    crc = 0xFFFFFFFF
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def s16(s): b = s.encode(); return struct.pack(">h", len(b)) + b
def request(sock, key, ver, body, cid=[0]):
    cid[0] += 1
    hdr = struct.pack(">hhi", key, ver, cid[0]) + s16("bench")
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    n = struct.unpack(">i", recvn(sock, 4))[0]
    return recvn(sock, n)[4:]
def recvn(sock, n):
    b = b""
    while len(b) < n:
        c = sock.recv(n - len(b))
        if not c: raise OSError("closed")
        b += c
    return b
def metadata_ok(sock):
    # Metadata v1 for topic "many": count partitions with error 0.
    r = request(sock, 3, 1, struct.pack(">i", 1) + s16("many"))
    i = 0
    nb = struct.unpack_from(">i", r, i)[0]; i += 4
    for _ in range(nb):
        i += 4; l = struct.unpack_from(">h", r, i)[0]; i += 2 + l
        i += 4  # port
        l = struct.unpack_from(">h", r, i)[0]; i += 2 + max(l, 0)  # rack
    i += 4  # controller
    nt = struct.unpack_from(">i", r, i)[0]; i += 4
    err = struct.unpack_from(">h", r, i)[0]; i += 2
    l = struct.unpack_from(">h", r, i)[0]; i += 2 + l
    i += 1
    np_ = struct.unpack_from(">i", r, i)[0]
    return err == 0 and np_ == parts
def produce_ok(sock):
    rec_body = bytes([0]) + bytes([0]) + bytes([0]) + bytes([1]) + bytes([2]) + b"x" + bytes([0])  # attrs, tsdelta, offdelta, key null(-1 zigzag=1), value len 1 (zigzag 2), "x", headers 0
    rec = bytes([len(rec_body) * 2]) + rec_body
    after_crc = struct.pack(">hiqqqhii", 0, 0, 0, 0, -1, -1, -1, 1) + rec
    batch_tail = struct.pack(">i", 0) + bytes([2]) + struct.pack(">I", crc32c(after_crc)) + after_crc
    batch = struct.pack(">q", 0) + struct.pack(">i", len(batch_tail)) + batch_tail
    body = s16("") [:0] + struct.pack(">h", -1) + struct.pack(">hi", 1, 5000) + struct.pack(">i", 1) + s16("many") + struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(batch)) + batch
    r = request(sock, 0, 3, body)
    i = 4; l = struct.unpack_from(">h", r, i)[0]; i += 2 + l; i += 4
    i += 4
    return struct.unpack_from(">h", r, i)[0] == 0
t0 = time.monotonic()
extra = [a for kv in os.environ.get("BENCH_OVERRIDES", "").split() for a in ("--override", kv)]
p = subprocess.Popen([binary, "--override", "fjord.http.listener=none", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}",
                      "--override", "log.flush.offset.checkpoint.interval.ms=2000"] + extra,
                     stdout=open(logf, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
meta_ms = prod_ms = None
if os.environ.get("BENCH_FIRST"):  # no topic yet: wait until the port accepts
    while p.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
        except OSError:
            time.sleep(0.01)
    print(p.pid, 0, 0); sys.exit(0)
deadline = t0 + 300
while p.poll() is None and time.monotonic() < deadline and prod_ms is None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            if meta_ms is None and metadata_ok(s):
                meta_ms = (time.monotonic() - t0) * 1000
            if meta_ms is not None and produce_ok(s):
                prod_ms = (time.monotonic() - t0) * 1000
    except (OSError, struct.error):
        time.sleep(0.002)
print(p.pid, round(meta_ms or -1), round(prod_ms or -1))
EOF_PY
}
stop() { # SIGNAL: prints ms until the process is gone
  local t0; t0=$(date +%s%N)
  kill "-$1" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

log "binary $BIN, $PARTS partitions, $MB MiB, data in $data"
read -r pid _ _ < <(BENCH_FIRST=1 start || true)
"$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "127.0.0.1:$port" --create --topic many --partitions "$PARTS" >/dev/null
"$KAFKA_HOME/bin/kafka-producer-perf-test.sh" --topic many --num-records $(( MB * 1024 )) --record-size 1024 --throughput -1 \
  --producer-props "bootstrap.servers=127.0.0.1:$port" acks=1 linger.ms=5 \
  partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner 2>&1 | tail -1 >&2
sleep 3 # past one recovery-point checkpoint (2 s here)
log "fds open before kill -9: $(ls /proc/$pid/fd | wc -l)"
stop 9 >/dev/null
[ -n "${BENCH_KEEP:-}" ] && rm -rf "$BENCH_KEEP" && cp -a "$data" "$BENCH_KEEP"
read -r pid meta prod < <(start)
echo "after kill -9: first full Metadata ${meta} ms, first Produce ${prod} ms"
log "fds open after restart: $(ls /proc/$pid/fd | wc -l)"
echo "clean stop (SIGTERM): $(stop TERM) ms"
read -r pid meta prod < <(start)
echo "after clean stop: first full Metadata ${meta} ms, first Produce ${prod} ms"
echo "clean stop (SIGTERM): $(stop TERM) ms"
pid=""
