#!/usr/bin/env bash
# A local Fjord cluster on loopback: N combined broker+controller nodes in one metadata quorum,
# or N broker-only nodes and K controller-only nodes (CLUSTER_CONTROLLERS=K), as Kafka's KRaft
# clusters are laid out in production.
#
#   scripts/cluster.sh start DIR [N] [PORT] [-- fjord args...]
#        N nodes (default 3), client ports PORT..PORT+N-1 (default 9092), controller ports
#        PORT+N..PORT+2N-1. With CLUSTER_CONTROLLERS=K (K >= 1): nodes 1..N are brokers only
#        (process.roles=broker) on PORT..PORT+N-1, and nodes N+1..N+K the quorum's voters
#        (process.roles=controller) on controller ports PORT+N..PORT+N+K-1: node <id> always
#        listens on PORT+<id>-1. Everything under DIR: DIR/node-<id>/{data/,fjord.log,pid}. Extra args
#        after -- (e.g. --override broker.session.timeout.ms=3000) go to every node and are kept
#        for start-node. Waits until every node's Metadata lists all N brokers (the quorum has a
#        leader and every broker registered and is unfenced), then prints the bootstrap list on
#        its last line. A node's own extra args (one a line) may be put in DIR/node-<id>/node.args
#        before it starts (the fault checker's per-link proxy addresses: compat-tests/cluster/).
#   scripts/cluster.sh stop DIR              SIGTERM every node (SIGKILL after 20 s), by the pids written
#   scripts/cluster.sh start-node DIR ID     (re)start one node with its saved arguments, same data dir
#   scripts/cluster.sh stop-node DIR ID      SIGTERM one node (a clean stop: controlled shutdown)
#   scripts/cluster.sh kill DIR ID           kill -9 one node
#   scripts/cluster.sh pause|resume DIR ID   SIGSTOP / SIGCONT one node
#   scripts/cluster.sh wait DIR [SECONDS]    wait until every running node lists all running brokers
#   scripts/cluster.sh status DIR            one line per node: id, pid, state, port, role
#   scripts/cluster.sh bootstrap DIR         the bootstrap list
#
# Environment: FJORD_BIN (default target/release/fjord, built with cargo build --release if
# missing), FJORD_CONFIG (default config/server.properties), CLUSTER_WAIT_S (default 60),
# CLUSTER_CONTROLLERS (default 0: combined nodes; read by start, kept for the other commands).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FJORD_BIN="${FJORD_BIN:-$ROOT/target/release/fjord}"
FJORD_CONFIG="${FJORD_CONFIG:-$ROOT/config/server.properties}"
WAIT_S="${CLUSTER_WAIT_S:-60}"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# The saved layout: DIR/cluster.env holds N, PORT and K, DIR/cluster.args the extra fjord args (one a line).
load_env() {
  local dir="$1"
  [ -f "$dir/cluster.env" ] || die "no cluster in $dir (cluster.env missing)"
  K=0
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  EXTRA=()
  if [ -s "$dir/cluster.args" ]; then mapfile -t EXTRA <"$dir/cluster.args"; fi
}

node_pid() { cat "$1/node-$2/pid" 2>/dev/null || true; }

node_running() {
  local pid; pid="$(node_pid "$1" "$2")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

bootstrap_list() {
  local i out=""
  for ((i = 0; i < N; i++)); do out+="${out:+,}127.0.0.1:$((PORT + i))"; done
  printf '%s\n' "$out"
}

start_node() {
  local dir="$1" id="$2"
  if [ "$id" -lt 1 ] || [ "$id" -gt "$((N + K))" ]; then die "node id $id not in 1..$((N + K))"; fi
  if node_running "$dir" "$id"; then die "node $id already running (pid $(node_pid "$dir" "$id"))"; fi
  local i voters="" ndir="$dir/node-$id" roles listeners where
  if [ "$K" -eq 0 ]; then
    for ((i = 1; i <= N; i++)); do voters+="${voters:+,}$i@127.0.0.1:$((PORT + N + i - 1))"; done
    roles=broker,controller
    listeners="PLAINTEXT://127.0.0.1:$((PORT + id - 1)),CONTROLLER://127.0.0.1:$((PORT + N + id - 1))"
    where="client 127.0.0.1:$((PORT + id - 1)) controller 127.0.0.1:$((PORT + N + id - 1))"
  else
    for ((i = N + 1; i <= N + K; i++)); do voters+="${voters:+,}$i@127.0.0.1:$((PORT + i - 1))"; done
    if [ "$id" -le "$N" ]; then
      roles=broker; listeners="PLAINTEXT://127.0.0.1:$((PORT + id - 1))"; where="broker, client 127.0.0.1:$((PORT + id - 1))"
    else
      roles=controller; listeners="CONTROLLER://127.0.0.1:$((PORT + id - 1))"; where="controller 127.0.0.1:$((PORT + id - 1))"
    fi
  fi
  mkdir -p "$ndir/data"
  local args=()
  if [ -f "$FJORD_CONFIG" ]; then args+=(--config "$FJORD_CONFIG"); fi
  args+=(--override "node.id=$id"
         --override "listeners=$listeners"
         --override "controller.listener.names=CONTROLLER"
         --override "controller.quorum.voters=$voters"
         --override "process.roles=$roles"
         --override "log.dirs=$ndir/data"
         --override "fjord.http.listener=${FJORD_HTTP_LISTENER:-127.0.0.1:0}"
         "${EXTRA[@]}")
  if [ -s "$ndir/node.args" ]; then local own; mapfile -t own <"$ndir/node.args"; args+=("${own[@]}"); fi
  printf '== start %s\n' "$(date -u +%FT%TZ)" >>"$ndir/fjord.log"
  # setsid: the node is not in the caller's process group, so a Ctrl-C there does not reach it.
  setsid "$FJORD_BIN" "${args[@]}" >>"$ndir/fjord.log" 2>&1 </dev/null &
  echo $! >"$ndir/pid"
  log "node $id pid $! $where"
}

signal_node() {
  local dir="$1" id="$2" sig="$3" pid
  pid="$(node_pid "$dir" "$id")"
  [ -n "$pid" ] || die "node $id has no pid file"
  kill "-$sig" "$pid" 2>/dev/null || log "node $id (pid $pid) not running"
}

stop_node() {
  local dir="$1" id="$2" pid deadline
  pid="$(node_pid "$dir" "$id")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true   # a paused node cannot handle SIGTERM
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + 20 ))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "node $id (pid $pid) ignored SIGTERM for 20 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  log "node $id stopped"
}

# wait_ready DIR SECONDS: every running node answers Metadata listing every running node as a broker.
wait_ready() {
  local dir="$1" secs="$2" i ports=()
  for ((i = 1; i <= N; i++)); do
    if node_running "$dir" "$i"; then ports+=("$((PORT + i - 1))"); fi
  done
  [ "${#ports[@]}" -gt 0 ] || die "no node is running"
  python3 - "$secs" "${ports[@]}" <<'EOF'
import socket, struct, sys, time

def metadata_brokers(port):
    """Metadata v1 with an empty topic list: the broker ids the node lists."""
    body = struct.pack(">hhih", 3, 1, 1, 7) + b"cluster" + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
    pos = 8  # length, correlation id
    (n,) = struct.unpack_from(">i", buf, pos); pos += 4
    ids = []
    for _ in range(n):
        (node,) = struct.unpack_from(">i", buf, pos); pos += 4
        (hl,) = struct.unpack_from(">h", buf, pos); pos += 2 + hl + 4
        (rl,) = struct.unpack_from(">h", buf, pos); pos += 2 + max(rl, 0)
        ids.append(node)
    return sorted(ids)

secs, ports = float(sys.argv[1]), [int(p) for p in sys.argv[2:]]
deadline = time.monotonic() + secs
last = {}
while True:
    ok = True
    for p in ports:
        try:
            last[p] = metadata_brokers(p)
        except (OSError, struct.error) as e:
            last[p] = str(e)
        if not isinstance(last[p], list) or len(last[p]) < len(ports):
            ok = False
    if ok:
        sys.exit(0)
    if time.monotonic() > deadline:
        print("[cluster] not ready after %.0f s: %s" % (secs, last), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.2)
EOF
}

cmd="${1:-}"; [ -n "$cmd" ] || usage; shift
DIR="${1:-}"; [ -n "$DIR" ] || usage; shift
case "$cmd" in
  start)
    N="${1:-3}"; PORT="${2:-9092}"
    shift $(( $# < 2 ? $# : 2 ))
    if [ "${1:-}" = "--" ]; then shift; fi
    EXTRA=("$@")
    if [ ! -x "$FJORD_BIN" ]; then
      log "no $FJORD_BIN: cargo build --release"
      (cd "$ROOT" && cargo build --release) || die "release build failed"
    fi
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    for ((i = 1; i <= N + ${CLUSTER_CONTROLLERS:-0}; i++)); do
      if node_running "$DIR" "$i"; then die "node $i of $DIR is running (pid $(node_pid "$DIR" "$i")): stop it first"; fi
    done
    K="${CLUSTER_CONTROLLERS:-0}"
    [[ "$K" =~ ^[0-9]+$ ]] || die "CLUSTER_CONTROLLERS must be a number of controller-only nodes"
    printf 'N=%s\nPORT=%s\nK=%s\n' "$N" "$PORT" "$K" >"$DIR/cluster.env"
    : >"$DIR/cluster.args"
    if [ "${#EXTRA[@]}" -gt 0 ]; then printf '%s\n' "${EXTRA[@]}" >"$DIR/cluster.args"; fi
    for ((i = N + K; i >= 1; i--)); do start_node "$DIR" "$i"; done
    if ! wait_ready "$DIR" "$WAIT_S"; then
      for ((i = 1; i <= N + K; i++)); do log "node $i log tail:"; tail -n 5 "$DIR/node-$i/fjord.log" >&2; done
      exit 1
    fi
    if [ "$K" -eq 0 ]; then log "$N nodes up, every broker registered"; else log "$K controllers and $N brokers up, every broker registered"; fi
    bootstrap_list
    ;;
  stop)
    load_env "$DIR"
    # Brokers first, then the controllers: a broker's controlled shutdown needs an active controller.
    for ((i = 1; i <= N; i++)); do
      pid="$(node_pid "$DIR" "$i")"
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for ((i = 1; i <= N; i++)); do stop_node "$DIR" "$i"; done
    for ((i = N + 1; i <= N + K; i++)); do stop_node "$DIR" "$i"; done
    ;;
  start-node) load_env "$DIR"; start_node "$DIR" "${1:?node id}" ;;
  stop-node) load_env "$DIR"; stop_node "$DIR" "${1:?node id}" ;;
  kill) load_env "$DIR"; signal_node "$DIR" "${1:?node id}" KILL ;;
  pause) load_env "$DIR"; signal_node "$DIR" "${1:?node id}" STOP ;;
  resume) load_env "$DIR"; signal_node "$DIR" "${1:?node id}" CONT ;;
  wait) load_env "$DIR"; wait_ready "$DIR" "${1:-$WAIT_S}" ;;
  status)
    load_env "$DIR"
    for ((i = 1; i <= N + K; i++)); do
      pid="$(node_pid "$DIR" "$i")"; state=down
      if node_running "$DIR" "$i"; then
        state=running
        if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = "T" ]; then state=paused; fi
      fi
      role=broker,controller
      if [ "$K" -gt 0 ]; then if [ "$i" -le "$N" ]; then role=broker; else role=controller; fi; fi
      printf 'node %s pid %s %s 127.0.0.1:%s %s\n' "$i" "${pid:--}" "$state" "$((PORT + i - 1))" "$role"
    done
    ;;
  bootstrap) load_env "$DIR"; bootstrap_list ;;
  *) usage ;;
esac
