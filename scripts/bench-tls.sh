#!/usr/bin/env bash
# PLAINTEXT against SSL on one Fjord broker: the same load generator as scripts/bench.sh
# (librdkafka's rdkafka_performance, here linked against a librdkafka built with OpenSSL, used for
# both listeners), the same record size, the two listeners alternating within each round. Per run: a
# fresh 1-partition topic, produce BENCH_COUNT records of 1 KiB with acks=1, then consume them from
# the beginning (from the page cache: what TLS costs, not the disk), then the topic is deleted.
# Broker CPU (utime+stime, /proc/PID/stat) is read around each run and divided by the bytes moved.
# The CA and the broker's certificate are made with the openssl CLI (RSA 2048, TLS 1.3 negotiated).
# Medians go to a table on stdout and bench/results/tls-<stamp>.json.
#   scripts/bench-tls.sh                   BENCH_RUNS rounds (default 3) of BENCH_COUNT (default 300k)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_RUNS:-3}"
COUNT="${BENCH_COUNT:-300000}"
SIZE=1024
WORK="$ROOT/bench/out/tls"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"
log() { printf '[bench-tls] %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
# Only the OpenSSL build of the load generator is used (for both listeners, so the client is the same).
cargo build --release >&2
FJORD_BIN="${FJORD_BIN:-$ROOT/target/release/fjord}"
bench_build_tls "$ROOT/bench/out"
ADMIN="$ROOT/scripts/bench-admin.py"
CLK_TCK=$(getconf CLK_TCK)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 5000); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.001; done; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

PKI="$WORK/pki"
rm -rf "$PKI"; mkdir -p "$PKI"
(
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=fjord bench CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
  cat server.key server.pem ca.pem > keystore.pem
)

plain_port=$(free_port); ssl_port=$(free_port)
DATA="$WORK/data"
rm -rf "$DATA"
"$FJORD_BIN" --override fjord.http.listener=none --override "listeners=PLAINTEXT://127.0.0.1:$plain_port,SSL://127.0.0.1:$ssl_port" \
  --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL" \
  --override ssl.keystore.type=PEM --override "ssl.keystore.location=$PKI/keystore.pem" \
  --override "log.dirs=$DATA" > "$WORK/fjord.log" 2>&1 &
fpid=$!
trap 'kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null; rm -rf "$DATA"' EXIT
wait_port "$plain_port"; wait_port "$ssl_port"
declare -A ADDR=([plaintext]="127.0.0.1:$plain_port" [ssl]="127.0.0.1:$ssl_port")
declare -A OPTS=([plaintext]="" [ssl]="-X security.protocol=SSL -X ssl.ca.location=$PKI/ca.pem")

results="$WORK/results.tsv"
: > "$results"
# run ROUND LISTENER SCENARIO ARGS...: one rdkafka_performance run against LISTENER, a result row.
run() {
  local round=$1 l=$2 scenario=$3; shift 3
  local c0 c1 r
  c0=$(cpu_ticks "$fpid")
  # shellcheck disable=SC2086  # OPTS is a word list by design
  timeout 600 "$PERF_TLS" "$@" -b "${ADDR[$l]}" ${OPTS[$l]} > "$WORK/run.out" 2>&1 || true
  c1=$(cpu_ticks "$fpid")
  r=$(parse_perf "$WORK/run.out")
  [ -n "$r" ] || { cp "$WORK/run.out" "$WORK/failed-$l-$scenario-r$round.out"; log "round $round $l $scenario FAILED"; r="0 0"; }
  # bench-perf.sh's parse_perf: "MB/s msg/s bytes messages".
  read -r mbs _ nbytes _ <<<"$r"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$l" "$scenario" "$mbs" "$nbytes" "$(awk -v a="$c0" -v z="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" >> "$results"
  log "round $round $l $scenario: $mbs MB/s"
}

# Warm-up, not measured: a short produce and consume on each listener.
for l in plaintext ssl; do
  python3 "$ADMIN" create "${ADDR[plaintext]}" "warmup-$l" 1
  run 0 "$l" warmup -P -t "warmup-$l" -p 0 -s "$SIZE" -c 50000 -a 1
  python3 "$ADMIN" delete "${ADDR[plaintext]}" "warmup-$l"
done
for round in $(seq "$RUNS"); do
  if [ $((round % 2)) = 1 ]; then order=(plaintext ssl); else order=(ssl plaintext); fi
  for l in "${order[@]}"; do
    topic="t-$l-r$round"
    python3 "$ADMIN" create "${ADDR[plaintext]}" "$topic" 1
    run "$round" "$l" produce_1p_acks1 -P -t "$topic" -p 0 -s "$SIZE" -c "$COUNT" -a 1
    run "$round" "$l" consume_1p_warm -C -t "$topic" -p 0 -o beginning -c "$COUNT"
    python3 "$ADMIN" delete "${ADDR[plaintext]}" "$topic"
  done
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
FJORD_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
LIBRDKAFKA="$("$PERF_TLS" -h 2>&1 | grep -m1 -o 'librdkafka version [0-9.]*' || true)"
export FJORD_COMMIT LIBRDKAFKA COUNT SIZE RUNS
python3 - "$results" "$OUT_DIR/tls-$stamp.json" <<'PY'
import json, os, platform, statistics, sys
path, out = sys.argv[1:]
runs = []
for line in open(path):
    rnd, l, s, mbs, nbytes, cpu = line.rstrip("\n").split("\t")
    if s == "warmup":
        continue
    r = {"round": int(rnd), "listener": l, "scenario": s, "mb_s": float(mbs), "bytes": int(nbytes), "broker_cpu_s": float(cpu)}
    if r["bytes"]:
        r["broker_cpu_s_per_gb"] = r["broker_cpu_s"] / (r["bytes"] / 1e9)
    runs.append(r)
med = lambda v: statistics.median(v) if v else float("nan")
table = {}
for s in ("produce_1p_acks1", "consume_1p_warm"):
    for l in ("plaintext", "ssl"):
        rs = [r for r in runs if r["scenario"] == s and r["listener"] == l and r["mb_s"] > 0]
        table[f"{s}/{l}"] = {"mb_s": med([r["mb_s"] for r in rs]), "mb_s_min": min((r["mb_s"] for r in rs), default=None), "mb_s_max": max((r["mb_s"] for r in rs), default=None), "broker_cpu_s_per_gb": med([r["broker_cpu_s_per_gb"] for r in rs]), "n": len(rs)}
E = os.environ
doc = {"conditions": {"fjord_commit": E.get("FJORD_COMMIT"), "client": E.get("LIBRDKAFKA") + " rdkafka_performance (OpenSSL build)", "records_per_run": int(E["COUNT"]), "record_bytes": int(E["SIZE"]), "rounds": int(E["RUNS"]), "cpus": os.cpu_count(), "kernel": platform.release(), "tls": "rustls (ring), RSA 2048 certificate, TLS 1.3 as negotiated"}, "medians": table, "runs": runs}
json.dump(doc, open(out, "w"), indent=1)
print(f"{'scenario':<22}{'PLAINTEXT MB/s':>16}{'SSL MB/s':>12}{'SSL/PLAIN':>11}{'CPU s/GB plain':>16}{'CPU s/GB SSL':>14}")
for s in ("produce_1p_acks1", "consume_1p_warm"):
    p, t = table[f"{s}/plaintext"], table[f"{s}/ssl"]
    print(f"{s:<22}{p['mb_s']:>16.1f}{t['mb_s']:>12.1f}{t['mb_s'] / p['mb_s'] if p['mb_s'] else float('nan'):>11.2f}{p['broker_cpu_s_per_gb']:>16.2f}{t['broker_cpu_s_per_gb']:>14.2f}")
print(f"results: {out}")
PY
