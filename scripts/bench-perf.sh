#!/usr/bin/env bash
# Sourced by the bench scripts: builds the release broker and librdkafka's load generator
# (examples/rdkafka_performance.c from the librdkafka source in the rdkafka-sys crate, the
# program Apache Kafka's baseline was measured with). Sets FJORD_BIN and PERF.
#   . scripts/bench-perf.sh; bench_build "$WORK"
# Also the helpers scripts/bench.sh and scripts/bench-cluster.sh share: ports, /proc readings,
# the page cache, and reading rdkafka_performance's output.
bench_build() {
  local work="$1" out
  cargo build --release >&2
  FJORD_BIN="${FJORD_BIN:-$ROOT/target/release/fjord}"
  PERF="$work/rdkafka_performance"
  if [ ! -x "$PERF" ]; then
    printf '[bench] %s\n' "building rdkafka_performance from the librdkafka source in rdkafka-sys" >&2
    compat-tests/rdkafka/deps.sh >&2
    cargo build --release -j 2 --manifest-path compat-tests/rdkafka/Cargo.toml \
      --target-dir compat-tests/rdkafka/target >&2
    out=$(dirname "$(find compat-tests/rdkafka/target/release/build -name librdkafka.a -path '*rdkafka-sys*' | head -1)")
    out=$(dirname "$out")   # .../out (holds config.h, src/, examples/)
    gcc -O2 -o "$PERF" "$out/examples/rdkafka_performance.c" -I"$out/src" "$out/src/librdkafka.a" \
      -lz -lpthread -lm -ldl -lrt
  fi
  export FJORD_BIN PERF
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Two consecutive free ports (Kafka's listener and its controller).
free_port_pair() { free_port_range 2; }
# free_port_range N: the first of N consecutive free loopback ports.
free_port_range() {
  python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
while True:
    held = [socket.socket()]
    held[0].bind(("127.0.0.1", 0))
    base = held[0].getsockname()[1]
    try:
        for p in range(base + 1, base + n):
            s = socket.socket(); held.append(s); s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
    print(base)
    break
PY
}
wait_port() { for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.001; done; }
# fjord_start BIN PORT DATA LOG [--override K=V ...]: a Fjord broker on 127.0.0.1:PORT with its log
# dir DATA and no HTTP listener, its output appended to LOG. Sets FJORD_PID once the port accepts;
# exits 2 when it never does. fjord_stop ends it.
fjord_start() {
  local bin="$1" port="$2" data="$3" out="$4"
  shift 4
  "$bin" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" "$@" >> "$out" 2>&1 &
  FJORD_PID=$!
  wait_port "$port"
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { printf 'broker %s did not start (see %s)\n' "$bin" "$out" >&2; exit 2; }
}
fjord_stop() { kill "$FJORD_PID"; wait "$FJORD_PID" 2>/dev/null || true; FJORD_PID=""; }
# utime + stime of a process, in clock ticks (getconf CLK_TCK a second).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Busy time of the whole machine, all cores (user, nice, system, irq, softirq from /proc/stat), in
# clock ticks: the broker, the client and the kernel's work for both, wherever it was charged.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Peak RSS since the process started.
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# sync; as root also drop the page cache and wait SETTLE_S (the caller sets DROP=1 when it may).
drop_cache() { sync; if [ "${DROP:-0}" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; sleep "${SETTLE_S:-5}"; fi; }
# Last summary line of rdkafka_performance's output: "MB/s msg/s bytes messages", or nothing.
parse_perf() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
p = re.findall(r"(\d+) messages produced \((\d+) bytes\), (\d+) delivered .*? (\d+) failed\) in \d+ms: (\d+) msgs/s and ([0-9.]+) MB/s", text)
c = re.findall(r"(\d+) messages \((\d+) bytes\) consumed in \d+ms: (\d+) msgs/s \(([0-9.]+) MB/s\)", text)
if p:
    msgs, nbytes, delivered, failed, msg_s, mb_s = p[-1]
    if int(failed) == 0 and int(delivered) > 0:
        print(mb_s, msg_s, int(nbytes) * int(delivered) // int(msgs), delivered)
elif c:
    msgs, nbytes, msg_s, mb_s = c[-1]
    print(mb_s, msg_s, nbytes, msgs)
PY
}
# percentiles FILE [SKIP]: p50 p99 p99.9 in ms of an rdkafka_performance -A file (microseconds, one
# a line), its first SKIP samples dropped (default LAT_WARMUP).
percentiles() {
  python3 - "$1" "${2:-${LAT_WARMUP:-0}}" <<'PY'
import sys
try:
    v = sorted(int(x) for x in open(sys.argv[1]).read().split()[int(sys.argv[2]):])
except OSError:
    v = []
q = lambda p: f"{v[min(len(v) - 1, int(p * len(v)))] / 1000.0:.2f}" if v else "nan"
print(q(0.5), q(0.99), q(0.999))
PY
}

# bench_build_tls WORK: also PERF_TLS, the same load generator linked against a librdkafka built
# with OpenSSL (the rdkafka crate's bundled build has no TLS): librdkafka's own ./configure
# --enable-ssl on a copy of the source in rdkafka-sys, static, built once into WORK. Needs the
# OpenSSL headers (Debian libssl-dev, installed when missing).
bench_build_tls() {
  local work="$1" src dir
  PERF_TLS="$work/rdkafka_performance_tls"
  if [ ! -x "$PERF_TLS" ]; then
    dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q "install ok installed" \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev >/dev/null; }
    cargo fetch --manifest-path compat-tests/rdkafka/Cargo.toml >&2
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka | sort | tail -1)
    dir="$work/librdkafka-tls"
    rm -rf "$dir"; cp -r "$src" "$dir"
    printf '[bench] %s\n' "building librdkafka with OpenSSL from $src (a few minutes)" >&2
    (cd "$dir" && ./configure --enable-ssl --disable-zstd --disable-lz4-ext --disable-sasl --disable-curl --disable-gssapi >&2 \
      && make -j 2 -C src librdkafka.a >&2)
    gcc -O2 -o "$PERF_TLS" "$dir/examples/rdkafka_performance.c" -I"$dir/src" "$dir/src/librdkafka.a" \
      -lssl -lcrypto -lz -lpthread -lm -ldl -lrt
  fi
  export PERF_TLS
}
