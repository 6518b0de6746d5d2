#!/usr/bin/env bash
# Stock clients against a 3-node Fjord cluster (scripts/cluster.sh, one cluster for every check):
#   1. kcat -L lists the 3 brokers and, for each partition of a replication-factor-3 topic, its
#      leader, 3 replicas and 3 in-sync replicas.
#   2. Kafka 4.0's kafka-topics.sh --describe follows a failover: after kill -9 of a partition's
#      leader it shows another leader and the ISR without the killed node; after the node's restart
#      (cluster.sh start-node) the ISR is back to 3 within a bound.
#   3. A producer sends continuously to an RF-3, min.insync.replicas=2 topic while the partition's
#      leader is kill -9ed: confluent-kafka with acks=all and idempotence (every acknowledged value
#      in the log exactly once, at the offset its delivery report gave), then kafka-python with
#      acks='all', idempotence off and retries on (every acknowledged value in the log; duplicates
#      counted, allowed). Every send gets a delivery report: success or a reported error.
#   4. A kafkajs group consumer (auto-commit) keeps consuming when its group coordinator's node is
#      kill -9ed (the coordinator found by describe_consumer_groups and kafka-consumer-groups.sh
#      --describe --state): it gets the records produced after the kill, and its committed offsets
#      reach the log end offsets.
#   5. kafka-reassign-partitions.sh --execute --throttle moves 4 MB to another broker no faster than
#      the throttle allows, with the rates and throttled replicas kafka-configs.sh shows as Kafka's;
#      --verify removes them.
#   6. A cluster default set with kafka-configs.sh --entity-default --alter through node 1 is shown
#      by node 2 (--describe --entity-name 2 --all) with source DYNAMIC_DEFAULT_BROKER_CONFIG, as
#      Kafka 4.0 shows it: it went through the controller into the metadata log (~6 s).
# clients.py drives 3 and 4 and prints their PASS/FAIL lines; group.js is the kafkajs consumer.
# Each killed node is restarted and every ISR is full again before the next check starts.
# The cluster's dir (node logs: out/cluster/node-<id>/fjord.log), the clients' output and the Kafka
# tools' logs stay in compat-tests/cluster-clients/out/. About 2 minutes on 2 cores (check 5: ~22 s, check 6: ~6 s).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init cluster-clients

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"
KBIN="$KAFKA_HOME/bin"
[ -x "$KBIN/kafka-topics.sh" ] || die "Kafka tools not found under KAFKA_HOME=$KAFKA_HOME"
command -v java >/dev/null || die "java not installed"
command -v kcat >/dev/null || die "kcat not installed: run scripts/install-deps.sh"
[ -x "$VENV_PY" ] || die "missing $VENV_PY: run scripts/install-deps.sh"
export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="-Xmx256m"
mkdir -p "$LOG_DIR"

# kafkajs from compat-tests/kafkajs (its package.json pins the version).
ensure_kafkajs

fault_cluster_start

PY() { "$VENV_PY" "$HERE/clients.py" --cluster-dir "$CLUSTER_DIR" "$@"; }
# live_bootstrap: the client addresses of the running nodes.
live_bootstrap() {
  "$REPO_ROOT/scripts/cluster.sh" status "$CLUSTER_DIR" | awk '$5 == "running" { printf "%s%s", sep, $6; sep = "," }'
}
# kill_node ID: kill -9 by the pid cluster.sh wrote, and wait until the process is gone.
kill_node() {
  local pid; pid="$(cat "$CLUSTER_DIR/node-$1/pid")"
  "$REPO_ROOT/scripts/cluster.sh" kill "$CLUSTER_DIR" "$1" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
}
# run_counted NAME CMD...: runs CMD, echoes its PASS/FAIL/INFO lines and counts them; output in out/NAME.*
run_counted() {
  local name="$1" rc=0 line n; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) PASS_COUNT=$((PASS_COUNT + 1)); printf '%s\n' "$line" ;;
      "FAIL "*) FAIL_COUNT=$((FAIL_COUNT + 1)); n="${line#FAIL }"; FAILED_NAMES+=("${n%%: *}"); printf '%s\n' "$line" ;;
      "INFO "*) printf '%s\n' "$line" ;;
    esac
  done <"$WORK/$name.out"
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$WORK/$name.out"; then
    fail "$name runs to the end" "rc=$rc; $(tail -n 3 "$WORK/$name.err" | tr '\n' ' ')"
  fi
}

T_RF3=cc-rf3 T_CONFLUENT=cc-confluent T_KPY=cc-kafka-python T_GROUP=cc-group
if ! PY create "$T_RF3:3" "$T_CONFLUENT:1" "$T_KPY:1" "$T_GROUP:3" 2>"$WORK/create.err"; then
  fail "RF-3 topics created with every ISR full" "$(tail -n 3 "$WORK/create.err" | tr '\n' ' ')"
  suite_finish; exit 1
fi
pass "RF-3 topics created with every ISR full ($T_RF3, $T_CONFLUENT, $T_KPY, $T_GROUP; min.insync.replicas=2)"

# --- 1. kcat -L ------------------------------------------------------------------------------------
if kcat -L -J -b "$(live_bootstrap)" -t "$T_RF3" -m 10 >"$WORK/kcat-L.json" 2>"$WORK/kcat-L.err"; then
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) pass "${line#PASS }" ;;
      "FAIL "*) n="${line#FAIL }"; fail "${n%%: *}" "${n#*: }" ;;
    esac
  done < <(python3 - "$WORK/kcat-L.json" "$T_RF3" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); topic = sys.argv[2]
ids = sorted(b["id"] for b in d["brokers"])
print("%s kcat -L lists 3 brokers%s" % (("PASS", "") if ids == [1, 2, 3] else ("FAIL", ": %s" % d["brokers"])))
ts = [t for t in d["topics"] if t["topic"] == topic]
parts = ts[0]["partitions"] if ts else []
print("%s kcat -L lists %s with 3 partitions%s" % (("PASS", topic, "") if len(parts) == 3 else ("FAIL", topic, ": %s" % ts)))
for p in sorted(parts, key=lambda p: p["partition"]):
    reps = [r["id"] for r in p["replicas"]]; isr = [r["id"] for r in p.get("isrs", [])]
    ok = sorted(reps) == [1, 2, 3] and sorted(isr) == [1, 2, 3] and p["leader"] in reps
    print("%s kcat -L %s-%d: leader %d, replicas %s, isr %s%s" % (
        "PASS" if ok else "FAIL", topic, p["partition"], p["leader"], reps, isr,
        "" if ok else ": want 3 replicas (1,2,3), 3 in sync, the leader among them"))
EOF
)
else
  fail "kcat -L" "$(tail -n 3 "$WORK/kcat-L.err" | tr '\n' ' ')"
fi

# --- 2. kafka-topics.sh --describe through a failover ----------------------------------------------
# describe_p0: "LEADER REPLICAS ISR" of partition 0 of $T_RF3 from kafka-topics.sh --describe.
describe_p0() {
  local n="$1"
  timeout 60 "$KBIN/kafka-topics.sh" --bootstrap-server "$(live_bootstrap)" --describe --topic "$T_RF3" \
    >"$WORK/describe-$n.out" 2>&1 || true
  awk -F'\t' '/Partition: 0\t/ { l=""; r=""; i="";
      for (k = 1; k <= NF; k++) { if ($k ~ /^Leader: /) l=substr($k, 9); if ($k ~ /^Replicas: /) r=substr($k, 11); if ($k ~ /^Isr: /) i=substr($k, 6) }
      print l, r, i }' "$WORK/describe-$n.out"
}
# same members (order aside) of two comma lists
same_set() { [ "$(tr ',' '\n' <<<"$1" | sort -n | paste -sd,)" = "$(tr ',' '\n' <<<"$2" | sort -n | paste -sd,)" ]; }

read -r L0 R0 I0 <<<"$(describe_p0 before)"
if [ -n "${L0:-}" ] && same_set "$R0" 1,2,3 && same_set "$I0" 1,2,3; then
  pass "kafka-topics.sh --describe $T_RF3-0: leader $L0, replicas $R0, isr $I0"
  kill_node "$L0"
  t_kill=$(date +%s.%N)
  # Metadata (cheap) until the move is visible, then the stock tool must show it (a few tries: each
  # node's metadata image follows the controller's by a moment).
  moved="$(PY wait-partition "$T_RF3" 0 --not-leader "$L0" --timeout 30)"
  secs_moved="$(awk -v a="$t_kill" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  L1="" I1=""
  for try in 1 2 3; do
    read -r L1 R1 I1 <<<"$(describe_p0 "after-kill-$try")"
    if [ -n "$L1" ] && [ "$L1" != "$L0" ] && [ "$L1" != none ] && ! [[ ",$I1," == *",$L0,"* ]] && same_set "$R1" "$R0"; then break; fi
    sleep 1
  done
  if [ -n "$L1" ] && [ "$L1" != "$L0" ] && [ "$L1" != none ] && ! [[ ",$I1," == *",$L0,"* ]] && same_set "$R1" "$R0" \
     && [ "$(tr ',' '\n' <<<"$I1" | grep -c .)" -eq 2 ]; then
    pass "after kill -9 of leader $L0, kafka-topics.sh --describe: leader $L1, replicas $R1, isr $I1 (metadata moved ${secs_moved}s after the kill)"
  else
    fail "after kill -9 of leader $L0, kafka-topics.sh --describe shows a new leader and the ISR without $L0" \
      "leader '$L1' replicas '$R1' isr '$I1'; metadata: '$moved' (${secs_moved}s); see $WORK/describe-after-kill-*.out"
  fi
  # Restart it, asking it for Metadata from the moment it accepts: nothing stale may come back.
  t_start=$(date +%s.%N)
  run_counted restart-probe PY restart-probe "$L0" "$T_RF3" 0 --seconds 3
  back="$(PY wait-partition "$T_RF3" 0 --isr 3 --timeout 30)"; back_rc=$?
  secs_back="$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  read -r L2 R2 I2 <<<"$(describe_p0 after-restart)"
  if [ "$back_rc" -eq 0 ] && same_set "${I2:-}" 1,2,3; then
    pass "after node $L0's restart the ISR is back to 3 within 30 s (${secs_back}s): kafka-topics.sh --describe: leader $L2, replicas $R2, isr $I2"
  else
    fail "after node $L0's restart the ISR is back to 3 within 30 s" \
      "metadata: '$back' (${secs_back}s); kafka-topics.sh: leader '${L2:-}' replicas '${R2:-}' isr '${I2:-}'"
  fi
else
  fail "kafka-topics.sh --describe $T_RF3-0 before the kill: 3 replicas, 3 in sync" \
    "leader '${L0:-}' replicas '${R0:-}' isr '${I0:-}'; $(head -c 300 "$WORK/describe-before.out")"
fi
healed="$(PY wait-healed --timeout 45)" || fail "every ISR full before the producer checks" "$healed"

# --- 3. producers through a leader's kill -9 ------------------------------------------------------
run_counted produce-confluent PY produce-kill --client confluent --topic "$T_CONFLUENT"
run_counted produce-kafka-python PY produce-kill --client kafka-python --topic "$T_KPY"

# --- 4. kafkajs group consumer through its coordinator's kill -9 ----------------------------------
run_counted group-kafkajs PY group-kill --topic "$T_GROUP" --group cc-kafkajs --partitions 3 \
  --before 300 --after 300 --kafka-bin "$KBIN" --work "$WORK"

# --- 5. kafka-reassign-partitions.sh --throttle ----------------------------------------------------
# 4 MB on one replica move to another under a 1 MB/s throttle: --execute --throttle sets the rates
# on both brokers and the throttled replicas on the topic (as Kafka 4.0 shows them: kafka-configs.sh
# --describe), the copy takes at least what the rate implies (60% of it: one fetch passes before the
# rate is over it), and --verify removes every throttle once done.
T_THR=cc-throttle
"$KBIN/kafka-topics.sh" --bootstrap-server "$(live_bootstrap)" --create --topic "$T_THR" --replica-assignment 1 >"$WORK/throttle-create.out" 2>&1
python3 -c 'import sys; [sys.stdout.write("%04d" % i + "x" * 9995 + "\n") for i in range(400)]' >"$WORK/throttle-values.txt"
kcat -P -b "$(live_bootstrap)" -t "$T_THR" -p 0 -X acks=1 -l "$WORK/throttle-values.txt" 2>"$WORK/throttle-kcat.err"
echo '{"version":1,"partitions":[{"topic":"cc-throttle","partition":0,"replicas":[2]}]}' >"$WORK/throttle-plan.json"
reassign() { timeout 60 "$KBIN/kafka-reassign-partitions.sh" --bootstrap-server "$(live_bootstrap)" --reassignment-json-file "$WORK/throttle-plan.json" "$@" 2>&1; }
describe_throttles() {
  { timeout 60 "$KBIN/kafka-configs.sh" --bootstrap-server "$(live_bootstrap)" --describe --entity-type brokers
    timeout 60 "$KBIN/kafka-configs.sh" --bootstrap-server "$(live_bootstrap)" --describe --entity-type topics --entity-name "$T_THR"; } 2>&1 \
    | grep -E 'configs for|replication.throttled' | sed -E 's/ sensitive=.*//'
}
t_exec=$(date +%s.%N)
reassign --execute --throttle 1000000 >"$WORK/throttle-execute.out"
describe_throttles >"$WORK/throttle-during.out"
done_in=""
for _ in $(seq 60); do
  if reassign --verify --preserve-throttles | grep -q "is completed"; then done_in="$(awk -v a="$t_exec" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"; break; fi
  sleep 0.5
done
reassign --verify >"$WORK/throttle-verify.out"
describe_throttles >"$WORK/throttle-after.out"
want_during="$(printf '%s\n' 'Dynamic configs for broker 1 are:' \
  '  follower.replication.throttled.rate=1000000' '  leader.replication.throttled.rate=1000000' \
  'Dynamic configs for broker 2 are:' \
  '  follower.replication.throttled.rate=1000000' '  leader.replication.throttled.rate=1000000' \
  'Dynamic configs for broker 3 are:' 'Default configs for brokers in the cluster are:' \
  'Dynamic configs for topic cc-throttle are:' \
  '  follower.replication.throttled.replicas=0:2' '  leader.replication.throttled.replicas=0:1')"
if [ "$(cat "$WORK/throttle-during.out")" = "$want_during" ]; then
  pass "kafka-reassign-partitions.sh --execute --throttle 1000000: both brokers' rates and the topic's throttled replicas (0:1 leader, 0:2 follower) as Kafka 4.0 shows them"
else
  fail "kafka-reassign-partitions.sh --execute --throttle sets the rates and the throttled replicas" "$(tr '\n' '|' <"$WORK/throttle-during.out")"
fi
if [ -n "$done_in" ] && awk -v t="$done_in" 'BEGIN { exit !(t >= 1.8) }'; then
  pass "4 MB moved under a 1 MB/s throttle in ${done_in}s (at least 1.8 s)"
else
  fail "4 MB moved under a 1 MB/s throttle, in at least 1.8 s" "done after '${done_in:-never}' s; $(tail -n 3 "$WORK/throttle-execute.out" | tr '\n' ' ')"
fi
if grep -q "Clearing broker-level throttles" "$WORK/throttle-verify.out" && ! grep -q "replication.throttled" "$WORK/throttle-after.out"; then
  pass "kafka-reassign-partitions.sh --verify removes the broker and topic throttles once done"
else
  fail "kafka-reassign-partitions.sh --verify removes the throttles" "$(tr '\n' '|' <"$WORK/throttle-after.out")"
fi

# --- 6. a dynamic cluster default through one node, seen on another --------------------------------
# The value is log.retention.ms' effective default (7 days): nothing else in the cluster changes.
# Kafka 4.0 adds a DEFAULT_CONFIG:log.retention.hours=168 synonym after the one compared here.
node_addr() { "$REPO_ROOT/scripts/cluster.sh" status "$CLUSTER_DIR" | awk -v id="$1" '$2 == id && $5 == "running" { print $6 }'; }
timeout 60 "$KBIN/kafka-configs.sh" --bootstrap-server "$(node_addr 1)" --entity-type brokers --entity-default \
  --alter --add-config log.retention.ms=604800000 >"$WORK/dyn-default-alter.out" 2>&1
timeout 60 "$KBIN/kafka-configs.sh" --bootstrap-server "$(node_addr 2)" --entity-type brokers --entity-name 2 \
  --describe --all >"$WORK/dyn-default-describe.out" 2>&1
want_dyn='  log.retention.ms=604800000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=604800000'
if grep -q "Completed updating default config for brokers in the cluster" "$WORK/dyn-default-alter.out" \
   && grep -qF "$want_dyn" "$WORK/dyn-default-describe.out"; then
  pass "kafka-configs.sh --entity-default --alter through node 1: node 2 describes log.retention.ms as DYNAMIC_DEFAULT_BROKER_CONFIG"
else
  fail "a dynamic cluster default set through node 1 is described by node 2" \
    "$(tail -n 2 "$WORK/dyn-default-alter.out" | tr '\n' ' ')| $(grep 'log.retention.ms' "$WORK/dyn-default-describe.out" | tr '\n' ' ')"
fi

# --- the cluster stops cleanly; no node panicked ---------------------------------------------------
"$REPO_ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1
panics="$(grep -l -E 'panicked at' "$CLUSTER_DIR"/node-*/fjord.log 2>/dev/null | tr '\n' ' ')"
if [ -z "$panics" ]; then pass "no node panicked"; else fail "no node panicked" "$panics"; fi
suite_finish
