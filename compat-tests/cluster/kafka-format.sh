#!/usr/bin/env bash
# Log dirs formatted by Kafka's own tool: three combined nodes (broker and controller), each
# formatted with the stock `kafka-storage.sh format --initial-controllers` (a dynamic quorum,
# KIP-853) and a SCRAM user (`--add-scram`), started as Fjord with the same properties files.
# kafka-metadata-quorum.sh shows the three voters with the directory ids the list gave them and
# the cluster id of the format; kafka-topics.sh creates a topic of replication factor 3, and the
# console producer (acks=all) and consumer move 50 records through it; the SCRAM user of the
# format authenticates on each node's SASL_PLAINTEXT listener, a wrong password does not.
# Under a minute.
#
#   compat-tests/cluster/kafka-format.sh      # output in compat-tests/cluster/out/kafka-format/
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"
BIN="$KAFKA_HOME/bin"
[ -x "$BIN/kafka-storage.sh" ] && command -v java >/dev/null || die "no Kafka tools under $KAFKA_HOME or no java"
export LOG_DIR="${LOG_DIR:-$(mktemp -d)}" KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256m}"

SUITE=cluster-kafka-format
WORK="$COMPAT_ROOT/cluster/out/kafka-format"
rm -rf "$WORK"
mkdir -p "$WORK"
[ -x "$FJORD_BIN" ] || die "broker binary not found or not executable: $FJORD_BIN (run cargo build --release)"

nodes_init

tool() { local t="$1"; shift; timeout --kill-after=5 60 "$BIN/$t" "$@"; }

# Ports: node i has its client listener at base+3(i-1), its controller listener one above and
# its SASL_PLAINTEXT listener two above.
base="$(free_port_block 9)"
client() { echo $((base + 3 * ($1 - 1))); }
controller() { echo $((base + 3 * ($1 - 1) + 1)); }
sasl() { echo $((base + 3 * ($1 - 1) + 2)); }
cluster_id="$(tool kafka-storage.sh random-uuid 2>/dev/null | tail -n 1)"
list="" bootstrap_servers="" BOOTSTRAP=""
for id in 1 2 3; do
  dir_id="$(tool kafka-storage.sh random-uuid 2>/dev/null | tail -n 1)"
  echo "$dir_id" >"$WORK/dir-id-$id"
  list="${list:+$list,}$id@127.0.0.1:$(controller "$id"):$dir_id"
  bootstrap_servers="${bootstrap_servers:+$bootstrap_servers,}127.0.0.1:$(controller "$id")"
  BOOTSTRAP="${BOOTSTRAP:+$BOOTSTRAP,}127.0.0.1:$(client "$id")"
done
for id in 1 2 3; do
  mkdir -p "$WORK/node-$id"
  cat >"$WORK/node-$id/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.bootstrap.servers=$bootstrap_servers
listeners=PLAINTEXT://127.0.0.1:$(client "$id"),CONTROLLER://127.0.0.1:$(controller "$id"),SASL_PLAINTEXT://127.0.0.1:$(sasl "$id")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client "$id"),CONTROLLER://127.0.0.1:$(controller "$id"),SASL_PLAINTEXT://127.0.0.1:$(sasl "$id")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
log.dirs=$WORK/node-$id/meta,$WORK/node-$id/data
EOF
  if tool kafka-storage.sh format -t "$cluster_id" -c "$WORK/node-$id/server.properties" --initial-controllers "$list" \
    --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]' >"$WORK/node-$id/format.out" 2>&1; then
    pass "kafka-storage.sh format --initial-controllers --add-scram, node $id"
  else
    fail "kafka-storage.sh format --initial-controllers --add-scram, node $id" "$(tail -n 3 "$WORK/node-$id/format.out")"
  fi
done
for id in 1 2 3; do
  "$FJORD_BIN" --config "$WORK/node-$id/server.properties" --override fjord.http.listener=none \
    >"$WORK/node-$id/fjord.log" 2>&1 &
  PIDS[$id]=$!
done
log "3 nodes formatted by Kafka; bootstrap $BOOTSTRAP"

# The topic, retried while the quorum elects and the brokers register: 90 s at most in all (a
# quorum that never forms leaves the client listeners silent, and each attempt waits out its own
# timeout).
created="" deadline=$((SECONDS + 90))
while [ "$SECONDS" -lt "$deadline" ]; do
  if timeout --kill-after=5 20 "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --topic formatted --partitions 3 --replication-factor 3 >"$WORK/create.out" 2>&1; then
    created=1; break
  fi
  sleep 1
done
if [ -n "$created" ]; then pass "kafka-topics.sh --create, replication factor 3"; else fail "kafka-topics.sh --create" "$(tail -n 3 "$WORK/create.out")"; fi
seq 1 50 | tool kafka-console-producer.sh --bootstrap-server "$BOOTSTRAP" --topic formatted --producer-property acks=all >"$WORK/produce.out" 2>&1
tool kafka-console-consumer.sh --bootstrap-server "$BOOTSTRAP" --topic formatted --from-beginning --max-messages 50 --timeout-ms 30000 >"$WORK/consume.out" 2>"$WORK/consume.err"
assert_eq "console consumer reads the 50 records produced acks=all" "50" "$(sort -u "$WORK/consume.out" | grep -c '^[0-9]*$')"

tool kafka-metadata-quorum.sh --bootstrap-controller "127.0.0.1:$(controller 1)" describe --status >"$WORK/status.out" 2>&1
assert_eq "describe --status: the cluster id of the format" "$cluster_id" "$(grep '^ClusterId:' "$WORK/status.out" | awk '{print $2}')"
tool kafka-metadata-quorum.sh --bootstrap-server "$BOOTSTRAP" describe --replication >"$WORK/replication.out" 2>&1
expected="" seen=""
for id in 1 2 3; do
  expected="$expected$id $(cat "$WORK/dir-id-$id") "
  seen="$seen$(awk -v id="$id" '$1 == id && ($NF == "Leader" || $NF == "Follower") {printf "%s %s ", $1, $2}' "$WORK/replication.out")"
done
assert_eq "describe --replication: the three voters with their formatted directory ids" "$expected" "$seen"

# The SCRAM user of the format, on every node's SASL listener; a wrong password is refused.
for password in alice-secret wrong; do
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-256" \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"$password\";" >"$WORK/sasl-$password.properties"
done
listed=""
for id in 1 2 3; do
  tool kafka-topics.sh --bootstrap-server "127.0.0.1:$(sasl "$id")" --command-config "$WORK/sasl-alice-secret.properties" --list >"$WORK/sasl-list-$id.out" 2>&1
  listed="$listed$(grep -c '^formatted$' "$WORK/sasl-list-$id.out") "
done
assert_eq "the format's SCRAM user authenticates on each node's SASL_PLAINTEXT listener" "1 1 1 " "$listed"
tool kafka-topics.sh --bootstrap-server "127.0.0.1:$(sasl 2)" --command-config "$WORK/sasl-wrong.properties" --list >"$WORK/sasl-wrong.out" 2>&1
if grep -q "Authentication failed" "$WORK/sasl-wrong.out"; then pass "a wrong SCRAM password is refused"; else fail "a wrong SCRAM password is refused" "$(tail -n 3 "$WORK/sasl-wrong.out")"; fi

nodes_stop_all
for id in 1 2 3; do
  if grep -q "panicked" "$WORK/node-$id/fjord.log"; then fail "node $id log without a panic"; fi
done
suite_finish
