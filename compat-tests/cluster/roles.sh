#!/usr/bin/env bash
# Nodes with one role and the stock Kafka tools: three controller-only nodes
# (process.roles=controller) and two broker-only nodes (process.roles=broker) on loopback.
# kafka-topics.sh creates a topic of replication factor 2 through a broker (the controllers hold
# no replica), the console producer (acks=all) and consumer move 100 records, and
# kafka-metadata-quorum.sh describe --status / --replication shows 3 voters and the 2 brokers as
# observers, as Kafka's KRaft does. Under a minute.
#
#   compat-tests/cluster/roles.sh      # output in compat-tests/cluster/out/roles/
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"
BIN="$KAFKA_HOME/bin"
[ -x "$BIN/kafka-metadata-quorum.sh" ] && command -v java >/dev/null || die "no Kafka tools under $KAFKA_HOME or no java"
export LOG_DIR="${LOG_DIR:-$(mktemp -d)}" KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256m}"

SUITE=cluster-roles
WORK="$COMPAT_ROOT/cluster/out/roles"
rm -rf "$WORK"
mkdir -p "$WORK"
[ -x "$FJORD_BIN" ] || die "broker binary not found or not executable: $FJORD_BIN (run cargo build --release)"

nodes_init

base="$(free_port_block 5)"
voters="1@127.0.0.1:$base,2@127.0.0.1:$((base + 1)),3@127.0.0.1:$((base + 2))"
BOOTSTRAP="127.0.0.1:$((base + 3)),127.0.0.1:$((base + 4))"
start() {
  local id="$1" roles="$2" listeners="$3"
  mkdir -p "$WORK/node-$id"
  "$FJORD_BIN" --config "$FJORD_CONFIG" \
    --override "node.id=$id" --override "process.roles=$roles" --override "listeners=$listeners" \
    --override controller.listener.names=CONTROLLER --override "controller.quorum.voters=$voters" \
    --override "log.dirs=$WORK/node-$id/data" --override fjord.http.listener=none \
    --override broker.session.timeout.ms=3000 --override broker.heartbeat.interval.ms=500 \
    >"$WORK/node-$id/fjord.log" 2>&1 &
  PIDS[$id]=$!
}
for id in 1 2 3; do start "$id" controller "CONTROLLER://127.0.0.1:$((base + id - 1))"; done
for id in 4 5; do start "$id" broker "PLAINTEXT://127.0.0.1:$((base + id - 1))"; done
log "3 controllers, 2 brokers; bootstrap $BOOTSTRAP"

tool() { local t="$1"; shift; timeout --kill-after=5 60 "$BIN/$t" "$@"; }

# The topic, retried while the brokers register (the first start of a quorum).
created=""
for _ in $(seq 1 30); do
  if tool kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --topic roles --partitions 3 --replication-factor 2 >"$WORK/create.out" 2>&1; then
    created=1; break
  fi
  sleep 1
done
if [ -n "$created" ]; then pass "kafka-topics.sh --create, replication factor 2 on the two brokers"; else fail "kafka-topics.sh --create" "$(tail -n 3 "$WORK/create.out")"; fi
tool kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --describe --topic roles >"$WORK/describe.out" 2>&1
replicas="$(grep -o 'Replicas: [0-9,]*' "$WORK/describe.out" | tr ',' '\n' | grep -o '[0-9]*' | sort -u | tr '\n' ' ')"
assert_eq "replicas only on brokers 4 and 5" "4 5 " "$replicas"

seq 1 100 | tool kafka-console-producer.sh --bootstrap-server "$BOOTSTRAP" --topic roles --producer-property acks=all >"$WORK/produce.out" 2>&1
tool kafka-console-consumer.sh --bootstrap-server "$BOOTSTRAP" --topic roles --from-beginning --max-messages 100 --timeout-ms 30000 >"$WORK/consume.out" 2>"$WORK/consume.err"
assert_eq "console consumer reads the 100 records produced acks=all" "100" "$(sort -u "$WORK/consume.out" | grep -c '^[0-9]*$')"

tool kafka-metadata-quorum.sh --bootstrap-server "$BOOTSTRAP" describe --status >"$WORK/status.out" 2>&1
voters_seen="$(grep '^CurrentVoters:' "$WORK/status.out" | grep -o '"id": *[0-9]*' | grep -o '[0-9]*$' | sort | tr '\n' ' ')"
observers_seen="$(grep '^CurrentObservers:' "$WORK/status.out" | grep -o '"id": *[0-9]*' | grep -o '[0-9]*$' | sort | tr '\n' ' ')"
assert_eq "describe --status: CurrentVoters are the controllers" "1 2 3 " "$voters_seen"
assert_eq "describe --status: CurrentObservers are the brokers" "4 5 " "$observers_seen"
tool kafka-metadata-quorum.sh --bootstrap-server "$BOOTSTRAP" describe --replication >"$WORK/replication.out" 2>&1
assert_eq "describe --replication: one Leader, two Followers, two Observers" "1 2 2" \
  "$(grep -cw Leader "$WORK/replication.out") $(grep -cw Follower "$WORK/replication.out") $(grep -cw Observer "$WORK/replication.out")"

nodes_stop_all
for id in 1 2 3 4 5; do
  if grep -q "panicked" "$WORK/node-$id/fjord.log"; then fail "node $id log without a panic"; fi
done
suite_finish
