#!/usr/bin/env bash
# PLAINTEXT against SSL against SASL_SSL (SCRAM-SHA-512), on one Fjord broker and on Apache Kafka 4.0 in
# the same run: the same load generator as scripts/bench.sh (librdkafka's rdkafka_performance, here
# linked against a librdkafka built with OpenSSL, used for every listener), the same record size. Each
# round runs every (broker, listener) pair, the order alternating between rounds. Per run: a fresh
# 1-partition topic, produce BENCH_COUNT records of 1 KiB with acks=1, then consume them from the
# beginning (from the page cache: what TLS and SASL cost, not the disk), then the topic is deleted.
# Broker CPU (utime+stime, /proc/PID/stat) is read around each run and divided by the bytes moved.
# The CA and the certificate both brokers serve are made with the openssl CLI (RSA 2048, TLS 1.3
# negotiated); the SCRAM user is made on Kafka by kafka-storage.sh format --add-scram and on Fjord by
# kafka-configs.sh through its PLAINTEXT listener. Medians go to a table on stdout and
# bench/results/tls-<stamp>.json.
#   scripts/bench-tls.sh                   BENCH_RUNS rounds (default 3) of BENCH_COUNT (default 300k)
#   scripts/bench-tls.sh --fjord-only      without Kafka (no JVM needed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KAFKA=1
[ "${1:-}" = --fjord-only ] && KAFKA=0
RUNS="${BENCH_RUNS:-3}"
COUNT="${BENCH_COUNT:-300000}"
SIZE=1024
WORK="$ROOT/bench/out/tls"
OUT_DIR="$ROOT/bench/results"
mkdir -p "$WORK" "$OUT_DIR"
log() { printf '[bench-tls] %s\n' "$*" >&2; }

# shellcheck source=scripts/bench-perf.sh
. "$ROOT/scripts/bench-perf.sh"
# Only the OpenSSL build of the load generator is used (for every listener, so the client is the same).
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

SCRAM_USER=bench
SCRAM_PW=bench-secret-pw
KAFKA_HOME="${KAFKA_HOME:-$ROOT/../shared/kafka-4.0.0}"
# The listeners both brokers have: PLAINTEXT, SSL, SASL_SSL (SCRAM-SHA-512 only).
LISTENERS=(plaintext ssl sasl_ssl)
declare -A ADDR PID
DATA="$WORK/data"
KDIR="$WORK/kafka"
fpid=""; kpid=""
cleanup() {
  [ -n "$fpid" ] && { kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null || true; }
  [ -n "$kpid" ] && { kill "$kpid" 2>/dev/null; for _ in $(seq 60); do kill -0 "$kpid" 2>/dev/null || break; sleep 1; done; kill -9 "$kpid" 2>/dev/null || true; }
  rm -rf "$DATA" "$KDIR/data"
}
trap cleanup EXIT
rm -rf "$DATA"
p1=$(free_port); p2=$(free_port); p3=$(free_port)
"$FJORD_BIN" --override fjord.http.listener=none \
  --override "listeners=PLAINTEXT://127.0.0.1:$p1,SSL://127.0.0.1:$p2,SASL_SSL://127.0.0.1:$p3" \
  --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL" \
  --override sasl.enabled.mechanisms=SCRAM-SHA-512 \
  --override ssl.keystore.type=PEM --override "ssl.keystore.location=$PKI/keystore.pem" \
  --override "log.dirs=$DATA" > "$WORK/fjord.log" 2>&1 &
fpid=$!
wait_port "$p1"; wait_port "$p2"; wait_port "$p3"
ADDR[fjord/plaintext]="127.0.0.1:$p1"; ADDR[fjord/ssl]="127.0.0.1:$p2"; ADDR[fjord/sasl_ssl]="127.0.0.1:$p3"; PID[fjord]=$fpid
LOG_DIR="$WORK/tools-logs" KAFKA_HEAP_OPTS=-Xmx256m "$KAFKA_HOME/bin/kafka-configs.sh" --bootstrap-server "127.0.0.1:$p1" \
  --alter --entity-type users --entity-name "$SCRAM_USER" --add-config "SCRAM-SHA-512=[iterations=4096,password=$SCRAM_PW]" >&2
BROKERS=(fjord)
if [ "$KAFKA" = 1 ]; then
  [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] || { log "no Apache Kafka 4.0 at $KAFKA_HOME (set KAFKA_HOME, or run with --fjord-only)"; exit 1; }
  k1=$(free_port); k2=$(free_port); k3=$(free_port); kc=$(free_port)
  rm -rf "$KDIR"; mkdir -p "$KDIR/data" "$KDIR/logs"
  cat > "$KDIR/server.properties" <<KEOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kc
listeners=PLAINTEXT://127.0.0.1:$k1,SSL://127.0.0.1:$k2,SASL_SSL://127.0.0.1:$k3,CONTROLLER://127.0.0.1:$kc
advertised.listeners=PLAINTEXT://127.0.0.1:$k1,SSL://127.0.0.1:$k2,SASL_SSL://127.0.0.1:$k3
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$PKI/keystore.pem
log.dirs=$KDIR/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
KEOF
  LOG_DIR="$KDIR/logs" "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$("$KAFKA_HOME/bin/kafka-storage.sh" random-uuid 2>/dev/null)" \
    -c "$KDIR/server.properties" --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,iterations=4096,password=$SCRAM_PW]" >/dev/null
  log "starting Kafka 4.0 (10-30 s)"
  LOG_DIR="$KDIR/logs" KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}" nohup "$KAFKA_HOME/bin/kafka-server-start.sh" "$KDIR/server.properties" \
    > "$KDIR/logs/start.out" 2>&1 < /dev/null &
  kpid=$!
  for port in "$k1" "$k2" "$k3"; do
    for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; kill -0 "$kpid" || { tail -20 "$KDIR/logs/start.out" >&2; exit 1; }; sleep 1; done
  done
  # kafka-server-start.sh execs java: the pid is the broker's.
  ADDR[kafka/plaintext]="127.0.0.1:$k1"; ADDR[kafka/ssl]="127.0.0.1:$k2"; ADDR[kafka/sasl_ssl]="127.0.0.1:$k3"; PID[kafka]=$kpid
  BROKERS+=(kafka)
fi
declare -A OPTS=([plaintext]="" [ssl]="-X security.protocol=SSL -X ssl.ca.location=$PKI/ca.pem"
  [sasl_ssl]="-X security.protocol=SASL_SSL -X ssl.ca.location=$PKI/ca.pem -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=$SCRAM_USER -X sasl.password=$SCRAM_PW")

results="$WORK/results.tsv"
: > "$results"
# run ROUND BROKER LISTENER SCENARIO ARGS...: one rdkafka_performance run, a result row.
run() {
  local round=$1 b=$2 l=$3 scenario=$4; shift 4
  local c0 c1 r pid=${PID[$b]}
  c0=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086  # OPTS is a word list by design
  timeout 600 "$PERF_TLS" "$@" -b "${ADDR[$b/$l]}" ${OPTS[$l]} > "$WORK/run.out" 2>&1 || true
  c1=$(cpu_ticks "$pid")
  r=$(parse_perf "$WORK/run.out")
  [ -n "$r" ] || { cp "$WORK/run.out" "$WORK/failed-$b-$l-$scenario-r$round.out"; log "round $round $b $l $scenario FAILED"; r="0 0 0 0"; }
  # bench-perf.sh's parse_perf: "MB/s msg/s bytes messages".
  read -r mbs _ nbytes _ <<<"$r"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$b" "$l" "$scenario" "$mbs" "$nbytes" "$(awk -v a="$c0" -v z="$c1" -v t="$CLK_TCK" 'BEGIN {printf "%.2f", (z - a) / t}')" >> "$results"
  log "round $round $b $l $scenario: $mbs MB/s"
}

pairs=()
for b in "${BROKERS[@]}"; do for l in "${LISTENERS[@]}"; do pairs+=("$b/$l"); done; done
# Warm-up, not measured: a short produce on each pair.
for pair in "${pairs[@]}"; do
  b=${pair%/*}; l=${pair#*/}
  python3 "$ADMIN" create "${ADDR[$b/plaintext]}" "warmup-$l" 1
  run 0 "$b" "$l" warmup -P -t "warmup-$l" -p 0 -s "$SIZE" -c 50000 -a 1
  python3 "$ADMIN" delete "${ADDR[$b/plaintext]}" "warmup-$l"
done
for round in $(seq "$RUNS"); do
  order=("${pairs[@]}")
  if [ $((round % 2)) = 0 ]; then order=(); for ((i = ${#pairs[@]} - 1; i >= 0; i--)); do order+=("${pairs[$i]}"); done; fi
  for pair in "${order[@]}"; do
    b=${pair%/*}; l=${pair#*/}
    topic="t-$l-r$round"
    python3 "$ADMIN" create "${ADDR[$b/plaintext]}" "$topic" 1
    # linger.ms=5, librdkafka's default: the generator's own 1000 ends every run with its last
    # partial batch waiting (scripts/bench.sh).
    run "$round" "$b" "$l" produce_1p_acks1 -P -t "$topic" -p 0 -s "$SIZE" -c "$COUNT" -a 1 -X linger.ms=5
    run "$round" "$b" "$l" consume_1p_warm -C -t "$topic" -p 0 -o beginning -c "$COUNT"
    python3 "$ADMIN" delete "${ADDR[$b/plaintext]}" "$topic"
  done
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
FJORD_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
LIBRDKAFKA="$("$PERF_TLS" -h 2>&1 | grep -m1 -o 'librdkafka version [0-9.]*' || true)"
export FJORD_COMMIT LIBRDKAFKA COUNT SIZE RUNS
export KAFKA
python3 - "$results" "$OUT_DIR/tls-$stamp.json" <<'PY'
import json, os, platform, statistics, sys
path, out = sys.argv[1:]
runs = []
for line in open(path):
    rnd, b, l, s, mbs, nbytes, cpu = line.rstrip("\n").split("\t")
    if s == "warmup":
        continue
    r = {"round": int(rnd), "broker": b, "listener": l, "scenario": s, "mb_s": float(mbs), "bytes": int(nbytes), "broker_cpu_s": float(cpu)}
    if r["bytes"]:
        r["broker_cpu_s_per_gb"] = r["broker_cpu_s"] / (r["bytes"] / 1e9)
    runs.append(r)
med = lambda v: statistics.median(v) if v else float("nan")
E = os.environ
brokers = ["fjord", "kafka"] if E.get("KAFKA") == "1" else ["fjord"]
listeners = ["plaintext", "ssl", "sasl_ssl"]
scenarios = ["produce_1p_acks1", "consume_1p_warm"]
table = {}
for s in scenarios:
    for b in brokers:
        for l in listeners:
            rs = [r for r in runs if r["scenario"] == s and r["broker"] == b and r["listener"] == l and r["mb_s"] > 0]
            table[f"{s}/{b}/{l}"] = {"mb_s": med([r["mb_s"] for r in rs]), "mb_s_min": min((r["mb_s"] for r in rs), default=None), "mb_s_max": max((r["mb_s"] for r in rs), default=None), "broker_cpu_s_per_gb": med([r["broker_cpu_s_per_gb"] for r in rs if "broker_cpu_s_per_gb" in r]), "n": len(rs)}
doc = {"conditions": {"fjord_commit": E.get("FJORD_COMMIT"), "kafka": "Apache Kafka 4.0.0, one KRaft node, default config but the listeners" if len(brokers) > 1 else None, "client": E.get("LIBRDKAFKA") + " rdkafka_performance (OpenSSL build)", "records_per_run": int(E["COUNT"]), "record_bytes": int(E["SIZE"]), "acks": 1, "partitions": 1, "rounds": int(E["RUNS"]), "cpus": os.cpu_count(), "kernel": platform.release(), "tls": "RSA 2048 certificate, TLS 1.3 as negotiated; Fjord rustls (ring), Kafka JSSE", "sasl": "SCRAM-SHA-512, 4096 iterations"}, "medians": table, "runs": runs}
json.dump(doc, open(out, "w"), indent=1)
print(f"{'scenario':<18}{'broker':<7}{'listener':<10}{'MB/s':>8}{'vs PLAIN':>10}{'CPU s/GB':>10}{'Fjord/Kafka':>13}")
for s in scenarios:
    for b in brokers:
        for l in listeners:
            t, p = table[f"{s}/{b}/{l}"], table[f"{s}/{b}/plaintext"]
            ratio = ""
            if b == "fjord" and len(brokers) > 1:
                k = table[f"{s}/kafka/{l}"]["mb_s"]
                ratio = f"{t['mb_s'] / k:.2f}" if k else "nan"
            print(f"{s:<18}{b:<7}{l:<10}{t['mb_s']:>8.1f}{(t['mb_s'] / p['mb_s'] if p['mb_s'] else float('nan')):>10.2f}{t['broker_cpu_s_per_gb']:>10.2f}{ratio:>13}")
print(f"results: {out}")
PY
