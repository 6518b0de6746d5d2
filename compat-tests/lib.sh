# shellcheck shell=bash
# Helpers shared by the compat-test suites. Source it from a suite's run.sh:
#
#   . "$(dirname "$0")/../lib.sh"
#   suite_init kcat                 # WORK=compat-tests/kcat/out (wiped), trap that stops the broker
#   fjord_start "$WORK/data" --override num.partitions=3
#   check "metadata lists broker" some_command args...
#   fjord_stop
#   suite_finish                    # prints "N passed, N failed", returns non-zero on any failure
#
# Environment:
#   FJORD_BIN    broker binary (default: <repo>/target/release/fjord)
#   FJORD_PORT   if set, fjord_start uses this port instead of picking a free one (restart on same port)
#   FJORD_START_TIMEOUT_S  seconds to wait for the port to accept connections (default 10)
# Exports after fjord_start: FJORD_BOOTSTRAP=127.0.0.1:PORT, FJORD_PORT, FJORD_PID, FJORD_LOG_FILE.

COMPAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_ROOT/.." && pwd)"
FJORD_BIN="${FJORD_BIN:-$REPO_ROOT/target/release/fjord}"
FJORD_CONFIG="${FJORD_CONFIG:-$REPO_ROOT/config/server.properties}"
export VENV_PY="$COMPAT_ROOT/.venv/bin/python"  # used by the Python suites
FJORD_PID=""
FJORD_START_COUNT=0
PASS_COUNT=0
FAIL_COUNT=0
FAILED_NAMES=()

log() { printf '[%s] %s\n' "${SUITE:-compat}" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# suite_init NAME: fresh out dir compat-tests/NAME/out (gitignored), exit trap stops the broker.
suite_init() {
  SUITE="$1"
  WORK="$COMPAT_ROOT/$SUITE/out"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  export SUITE WORK
  trap '_suite_exit' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  [ -x "$FJORD_BIN" ] || die "broker binary not found or not executable: $FJORD_BIN (run cargo build --release)"
}

_suite_exit() {
  local rc=$?
  if [ -n "$FJORD_PID" ]; then fjord_stop || true; fi
  exit "$rc"
}

# free_port: a port the kernel just handed out on 127.0.0.1 (bind to :0, read it back, close).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# port_open PORT: true when 127.0.0.1:PORT accepts a TCP connection.
# free_port_block N: the first of N consecutive free loopback ports (a 3-node cluster takes 6:
# three client, three controller ports).
free_port_block() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}

# fault_cluster_start: a 3-node cluster (scripts/cluster.sh) in $WORK/cluster ($CLUSTER_DIR) on six
# consecutive free loopback ports, tuned for fault tests: a dead node's leaderships move within
# seconds (broker.session.timeout.ms 3000; Kafka's default is 9 s) and a follower 5 s behind
# leaves the ISR. Stopped on any exit with the script's own status kept for _suite_exit (after
# the stop, $? would be cluster.sh's). Records the start as a check; ends the suite if it fails.
# Arguments are more fjord args for every node (--override key=value ...).
# With CLUSTER_NETPROXY=1, every node reaches the others through compat-tests/cluster/netproxy.py
# (a proxy per directed link, cut and healed over $CLUSTER_DIR/netproxy.sock; its log is
# $CLUSTER_DIR/netproxy.log), started first and stopped with the cluster.
fault_cluster_start() {
  CLUSTER_DIR="$WORK/cluster"
  export FJORD_BIN
  trap _cluster_exit EXIT
  local base
  if [ "${CLUSTER_NETPROXY:-0}" = 1 ]; then
    base="$(free_port_block 18)"   # the cluster's 6, then the proxies' 12
    _netproxy_start "$base" "$((base + 6))" || { fail "per-link network proxy starts"; suite_finish; exit 1; }
  else
    base="$(free_port_block 6)"
  fi
  if ! "$REPO_ROOT/scripts/cluster.sh" start "$CLUSTER_DIR" 3 "$base" -- \
      --override broker.session.timeout.ms=3000 \
      --override broker.heartbeat.interval.ms=500 \
      --override replica.lag.time.max.ms=5000 \
      --override group.initial.rebalance.delay.ms=0 "$@" >"$WORK/cluster-start.out" 2>&1; then
    fail "3-node cluster starts"; tail -n 20 "$WORK/cluster-start.out" | sed 's/^/    /'
    suite_finish; exit 1
  fi
  pass "3-node cluster starts (bootstrap $(tail -n 1 "$WORK/cluster-start.out"))"
}
# _netproxy_start BASE PROXY: netproxy.py for a 3-node cluster on ports BASE.. listening on
# PROXY..PROXY+11, each node's fjord.peer.address.overrides in its node.args; waits for the
# control socket.
_netproxy_start() {
  local base="$1" proxy="$2" i
  mkdir -p "$CLUSTER_DIR"
  for i in 1 2 3; do
    mkdir -p "$CLUSTER_DIR/node-$i"
    printf -- '--override\nfjord.peer.address.overrides=%s\n' \
      "$(python3 "$COMPAT_ROOT/cluster/netproxy.py" plan --nodes 3 --cluster-port "$base" --proxy-port "$proxy" --node "$i")" \
      >"$CLUSTER_DIR/node-$i/node.args"
  done
  rm -f "$CLUSTER_DIR/netproxy.sock"
  python3 "$COMPAT_ROOT/cluster/netproxy.py" serve --nodes 3 --cluster-port "$base" --proxy-port "$proxy" \
    --control "$CLUSTER_DIR/netproxy.sock" >>"$CLUSTER_DIR/netproxy.log" 2>&1 </dev/null &
  echo $! >"$CLUSTER_DIR/netproxy.pid"
  for i in $(seq 50); do [ -S "$CLUSTER_DIR/netproxy.sock" ] && return 0; sleep 0.1; done
  tail -n 5 "$CLUSTER_DIR/netproxy.log" >&2
  return 1
}
_netproxy_stop() {
  local pid
  pid="$(cat "$CLUSTER_DIR/netproxy.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -f "$CLUSTER_DIR/netproxy.pid"
}
_cluster_exit() {
  local rc=$?
  [ -f "$CLUSTER_DIR/cluster.env" ] && "$REPO_ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1
  [ -f "$CLUSTER_DIR/netproxy.pid" ] && _netproxy_stop
  (exit "$rc"); _suite_exit
}

# ensure_kafkajs: node and npm (Debian's, installed when missing) and compat-tests/kafkajs's
# node_modules at the kafkajs version its package.json pins (no lock file), for the suites that
# drive kafkajs (kafkajs, cluster-clients). Needs $WORK for npm's log.
ensure_kafkajs() {
  local kjs="$COMPAT_ROOT/kafkajs" want have sudo=""
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node/npm missing: installing Debian's nodejs and npm"
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }; then
      die "could not install nodejs/npm (scripts/install-deps.sh)"
    fi
  fi
  want="$(node -p 'require(process.argv[1]).dependencies.kafkajs' "$kjs/package.json")"
  have="$(node -p 'try { require(process.argv[1]).version } catch (e) { "" }' "$kjs/node_modules/kafkajs/package.json" 2>/dev/null)"
  if [ "$have" != "$want" ]; then
    log "npm install kafkajs@$want into $kjs/node_modules"
    (cd "$kjs" && npm install --no-package-lock --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
      { tail -n 20 "$WORK/npm.log" >&2; die "npm install failed"; }
  fi
}

# ref_kafka_start: starts the reference Apache Kafka 4.0 broker (KAFKA_HOME/reference-kafka.sh,
# default ../shared/kafka-4.0.0; one KRaft node, heap 512 MiB) in $WORK/refk on two consecutive free
# loopback ports (the broker's and its controller's), and sets KB to its bootstrap address. The
# suite's exit trap stops it (ref_kafka_stop), keeping the suite's status.
ref_kafka_start() {
  KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"
  [ -x "$KAFKA_HOME/reference-kafka.sh" ] || die "reference-kafka.sh not found under KAFKA_HOME=$KAFKA_HOME"
  command -v java >/dev/null || die "java not installed"
  REF="$WORK/refk"
  local port
  for _ in $(seq 1 20); do
    port="$(free_port)"
    python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', $port + 1)); s.close()" 2>/dev/null && break
  done
  trap '_rc=$?; ref_kafka_stop; (exit "$_rc"); _suite_exit' EXIT
  log "starting the reference Kafka broker on 127.0.0.1:$port"
  REF_KAFKA_STARTED=1
  KB="$(KAFKA_HEAP_OPTS=-Xmx512m "$KAFKA_HOME/reference-kafka.sh" start "$REF" "$port" 1)"
}

# ref_kafka_stop: stops the reference broker ref_kafka_start started, if it runs.
ref_kafka_stop() {
  [ -n "${REF_KAFKA_STARTED:-}" ] || return 0
  KAFKA_HEAP_OPTS= "$KAFKA_HOME/reference-kafka.sh" stop "$REF"
  REF_KAFKA_STARTED=""
}

# count_results OUT ERR RC WHAT: adds a test program's "PASS name" and "FAIL name: why" lines
# (in OUT) to the suite's counts; a non-zero exit RC without a FAIL line fails "WHAT exits 0",
# with the end of its stderr (ERR).
count_results() {
  local out="$1" err="$2" rc="$3" what="$4" line name
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) PASS_COUNT=$((PASS_COUNT + 1)) ;;
      "FAIL "*) FAIL_COUNT=$((FAIL_COUNT + 1)); name="${line#FAIL }"; FAILED_NAMES+=("${name%%:*}") ;;
    esac
  done <"$out"
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
    fail "$what exits 0" "rc=$rc; stderr: $(tail -n 5 "$err")"
  fi
}

# ensure_sarama: Debian's Go and sarama sources (golang-go, golang-github-shopify-sarama-dev and the
# Go packages it depends on), installed when missing, for compat-tests/sarama.
ensure_sarama() {
  local sudo=""
  if command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/github.com/Shopify/sarama ]; then
    return 0
  fi
  log "go or sarama missing: installing Debian's golang-go and golang-github-shopify-sarama-dev"
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-shopify-sarama-dev >/dev/null; } ||
    die "could not install golang-go/golang-github-shopify-sarama-dev (scripts/install-deps.sh)"
}

# test_pki DIR: a throwaway CA (ca.pem, ca.key) and a server certificate for localhost and
# 127.0.0.1 signed by it (server.key, server.pem), made with the openssl CLI in DIR. Nothing is
# committed; each suite makes its own at run time.
test_pki() {
  mkdir -p "$1"
  (
    cd "$1" || exit 1
    set -e
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=fjord compat CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
  )
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# fjord_start DATA_DIR [extra args...]: starts the broker in the background on loopback.
# Extra args are passed through verbatim, e.g. --override num.partitions=3.
fjord_start() {
  local data_dir="$1"; shift
  [ -z "$FJORD_PID" ] || die "fjord_start: broker already running (pid $FJORD_PID)"
  mkdir -p "$data_dir"
  FJORD_PORT="${FJORD_PORT:-$(free_port)}"
  FJORD_START_COUNT=$((FJORD_START_COUNT + 1))
  FJORD_LOG_FILE="$WORK/fjord.$FJORD_START_COUNT.log"
  local args=()
  if [ -f "$FJORD_CONFIG" ]; then args+=(--config "$FJORD_CONFIG"); fi
  # The HTTP listener (/metrics) on a port the kernel picks: suites may run beside other brokers.
  args+=(--override "listeners=PLAINTEXT://127.0.0.1:$FJORD_PORT"
         --override "log.dirs=$data_dir"
         --override "fjord.http.listener=${FJORD_HTTP_LISTENER:-127.0.0.1:0}"
         "$@")
  log "starting $FJORD_BIN ${args[*]} (log $FJORD_LOG_FILE)"
  "$FJORD_BIN" "${args[@]}" >"$FJORD_LOG_FILE" 2>&1 &
  FJORD_PID=$!
  export FJORD_PID FJORD_PORT FJORD_LOG_FILE
  export FJORD_BOOTSTRAP="127.0.0.1:$FJORD_PORT"
  local deadline=$(( $(date +%s) + ${FJORD_START_TIMEOUT_S:-10} ))
  until port_open "$FJORD_PORT"; do
    if ! kill -0 "$FJORD_PID" 2>/dev/null; then
      wait "$FJORD_PID" 2>/dev/null; local rc=$?
      FJORD_PID=""
      log "broker exited during startup (rc=$rc); log tail:"; tail -n 40 "$FJORD_LOG_FILE" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "broker did not accept connections on $FJORD_BOOTSTRAP within ${FJORD_START_TIMEOUT_S:-10}s; log tail:"
      tail -n 40 "$FJORD_LOG_FILE" >&2
      fjord_kill9
      return 1
    fi
    sleep 0.1
  done
  log "broker pid $FJORD_PID up on $FJORD_BOOTSTRAP"
}

# fjord_stop: SIGTERM by recorded pid, wait bounded ($FJORD_STOP_TIMEOUT_S, default 15 s), then SIGKILL.
# Returns the broker's exit status (non-zero if it had to be killed).
fjord_stop() {
  [ -n "$FJORD_PID" ] || return 0
  local pid="$FJORD_PID" timeout="${FJORD_STOP_TIMEOUT_S:-15}" rc=0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s) + timeout ))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "broker pid $pid ignored SIGTERM for ${timeout}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      FJORD_PID=""
      return 124
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || rc=$?
  FJORD_PID=""
  log "broker pid $pid stopped (rc=$rc)"
  return "$rc"
}

# fjord_kill9: SIGKILL by recorded pid (crash simulation), reap it.
fjord_kill9() {
  [ -n "$FJORD_PID" ] || return 0
  kill -KILL "$FJORD_PID" 2>/dev/null || true
  wait "$FJORD_PID" 2>/dev/null || true
  log "broker pid $FJORD_PID killed with SIGKILL"
  FJORD_PID=""
}

# pass NAME / fail NAME [DETAIL]: record and print one result line.
# Nodes a suite starts itself, by id in the associative array PIDS (declared by nodes_init).
# nodes_init: PIDS empty, and every node stopped on any exit of the script (SIGTERM, then SIGKILL
# after 20 s each).
nodes_init() {
  declare -gA PIDS=()
  trap 'rc=$?; nodes_stop_all; exit $rc' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
nodes_stop_all() {
  local id
  for id in "${!PIDS[@]}"; do kill -TERM "${PIDS[$id]}" 2>/dev/null || true; done
  for id in "${!PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "${PIDS[$id]}" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "${PIDS[$id]}" 2>/dev/null || true
    wait "${PIDS[$id]}" 2>/dev/null
    unset "PIDS[$id]"
  done
}

pass() { PASS_COUNT=$((PASS_COUNT + 1)); printf 'PASS %s\n' "$1"; }
fail() {
  FAIL_COUNT=$((FAIL_COUNT + 1)); FAILED_NAMES+=("$1")
  printf 'FAIL %s%s\n' "$1" "${2:+: $2}"
}

# check NAME CMD [ARGS...]: runs CMD; PASS if it exits 0, FAIL (with its output tail) otherwise.
check() {
  local name="$1"; shift
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "$name"
  else
    fail "$name" "exit $rc"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
  fi
  return 0
}

# assert_eq NAME EXPECTED ACTUAL
assert_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}

# suite_finish: summary line in the form CI reads ("N passed, N failed"), non-zero on any failure.
suite_finish() {
  if [ -n "$FJORD_PID" ]; then
    local rc=0
    fjord_stop || rc=$?
    if [ "$rc" -eq 0 ]; then pass "broker exits cleanly on SIGTERM"; else fail "broker exits cleanly on SIGTERM" "rc=$rc"; fi
  fi
  if [ "$FAIL_COUNT" -gt 0 ]; then
    printf '%s failures: %s\n' "$SUITE" "${FAILED_NAMES[*]}"
  fi
  printf '%s: %d passed, %d failed\n' "$SUITE" "$PASS_COUNT" "$FAIL_COUNT"
  [ "$FAIL_COUNT" -eq 0 ]
}
