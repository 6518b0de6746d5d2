#!/usr/bin/env bash
# librdkafka's own integration test suite (tests/test-runner of the librdkafka 2.12.1 that ships in the
# rdkafka-sys crate, built by scripts/build-librdkafka-tests.sh) against Fjord.
#
#   compat-tests/librdkafka/run.sh              every entry of allow-list.txt; FAIL -> suite fails
#   compat-tests/librdkafka/run.sh --all        every entry of the goal file (tests that pass against
#                                               Apache Kafka 4.0), prints which pass (discovery, not CI)
#   compat-tests/librdkafka/run.sh 0001 0081    only allow-list entries with these numbers
#   compat-tests/librdkafka/run.sh --cluster    (with any of the above; or LIBRDKAFKA_CLUSTER=1) each
#                                               entry against a fresh 3-node cluster instead
#                                               (scripts/cluster.sh), not run in CI: see below
#   compat-tests/librdkafka/run.sh --sasl-ssl   (with any of the above but --cluster) every client of
#                                               the tests over SASL_SSL with SCRAM-SHA-512, against a
#                                               broker with an authorizer: see below (~25 min for the
#                                               whole allow-list; CI runs sasl-ssl-ci.txt)
#   compat-tests/librdkafka/run.sh --acl        the entries of acl-list.txt (ACL admin and authorization
#                                               failure tests) against a PLAINTEXT broker with an
#                                               authorizer; with numbers, only those
#   compat-tests/librdkafka/run.sh --list FILE  entries of FILE instead of allow-list.txt
# CI runs the plain allow-list here and compat-tests/librdkafka-sec (--acl, and --sasl-ssl over
# sasl-ssl-ci.txt). LIBRDKAFKA_WORK sets the output directory (default out/).
#
# Entries are `NUMBER NAME` lines, as in the goal file:
#   0001 multiobj                 the runner's test 0001_multiobj
#   0081 admin:CreateTopics       test 0081_admin, only its do_test_CreateTopics sub-tests (SUBTESTS)
#   0005 order[idempotent]        run with -P (enable.idempotence=true on every producer)
#   0018 cgrp_term[kip848]        run with TEST_CONSUMER_GROUP_PROTOCOL=consumer
# Each entry is one test-runner process (TESTS=NUMBER, -p1, TEST_KAFKA_VERSION=4.0.0, -L: no local
# mock-cluster tests, -E: no sockem tests, -Q quick mode except for the tests in FULL_MODE_TESTS whose
# sub-tests are all non-quick and would do nothing under -Q), bounded by LIBRDKAFKA_TEST_TIMEOUT_S
# (default 300 s), against a freshly started broker with an empty data dir.
# PASS needs the runner's summary row for NUMBER_NAME to say PASSED (and, for a sub-test entry, at
# least one PASS line of that sub-test and no failure), so a sibling test sharing the number (e.g.
# 0045_subscribe_update_topic_remove when running 0045 subscribe_update) does not decide the result.
#
# Broker: auto.create.topics.enable=true and num.partitions=4, the setting of upstream librdkafka CI
# (trivup) that the unchanged tests assume (e.g. 0044, 0048, 0114 expect auto-created topics to have
# 4 partitions).
#
# --cluster: each entry gets a fresh 3-node cluster (scripts/cluster.sh, combined broker+controller
# nodes) with the same two settings plus default.replication.factor=3, so auto-created topics have 3
# replicas (__consumer_offsets and __transaction_state have 3 anyway), and the runner's test.conf
# names one node (node 1) as bootstrap.servers; librdkafka finds the others through Metadata. Topics
# a test creates through the Admin API keep the replication factor it asks for (most ask for 1).
# Every allow-list entry passes against a single node, so a FAIL here is a test that fails on the
# cluster only. Logs: out/data/<entry>/node-<id>/fjord.log.
#
# The authorizer (--sasl-ssl, --acl): authorizer.class.name=...StandardAuthorizer with
# allow.everyone.if.no.acl.found=true and no super user, the broker the tests assume: every client
# may do what no ACL covers, and the ACLs a test makes bind it (0115 denies User:* a topic and
# expects TOPIC_AUTHORIZATION_FAILED; 0081's DescribeTopics/DescribeCluster/DescribeConsumerGroups
# under SASL SCRAM allow their own principal READ and expect exactly READ+DESCRIBE back).
#
# --sasl-ssl: the broker has a PLAINTEXT and a SASL_SSL listener (SCRAM-SHA-256 and -512; the
# certificate made at run time with the openssl CLI by lib.sh's test_pki, no key committed). Before
# each entry the SCRAM-SHA-512 user is created through the PLAINTEXT listener (AlterUserScram-
# Credentials with confluent-kafka from compat-tests/.venv); the runner's test.conf then names only
# the SASL_SSL listener with security.protocol=SASL_SSL, sasl.mechanisms=SCRAM-SHA-512, the user and
# the CA (ssl.ca.location; hostname verification on), so every client a test makes goes over
# SASL_SSL. Only the Kafka-tool stand-ins in kafka-path/ (BROKERS) use the PLAINTEXT listener, as
# Kafka's own tools would need their own security config. Entries in sasl-ssl-skip.txt are skipped
# (printed with their reason): tests that cannot pass over SASL_SSL for a reason outside the broker.
#
# Tests that shell out to Kafka's bin/kafka-topics.sh (0052 msg_timestamps creates its topics with
# message.timestamp.type that way) get KAFKA_PATH=kafka-path/, whose kafka-topics.sh stand-in does the
# same through the Admin API (confluent-kafka from compat-tests/.venv, scripts/install-deps.sh);
# those that run bin/kafka-acls.sh (0109, 0115, 0119) get Kafka's own (kafka-path/bin/kafka-acls.sh
# runs ../shared/kafka-4.0.0's, or $KAFKA_HOME's).
#
# Logs per entry in compat-tests/librdkafka/out/: NNNN_name.log (runner output), fjord.N.log
# (broker). The test-runner build lives in out/build and is kept between runs
# (scripts/build-librdkafka-tests.sh, with OpenSSL: plaintext runs use the same runner).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"

GOAL_FILE="${LIBRDKAFKA_GOAL_FILE:-$HERE/goal.txt}"
ALLOW_LIST="$HERE/allow-list.txt"
ACL_LIST="$HERE/acl-list.txt"
SASL_SSL_SKIP="$HERE/sasl-ssl-skip.txt"
TEST_TIMEOUT_S="${LIBRDKAFKA_TEST_TIMEOUT_S:-300}"
# Tests whose sub-tests are all SUB_TEST() (not SUB_TEST_QUICK): -Q would skip every one of them.
FULL_MODE_TESTS="0018 0019 0026 0045 0050 0061 0089 0102 0122 0132 0137"
# Tests that shell out to kafka-acls.sh (kafka-path/bin/kafka-acls.sh: Kafka's own, a JVM).
ACL_CLI_TESTS="0109 0115 0119"

MODE=allow
SELECT=()
CLUSTER="${LIBRDKAFKA_CLUSTER:-}"
SEC=""          # "": PLAINTEXT, no authorizer; acl: PLAINTEXT + authorizer; sasl-ssl: SASL_SSL + authorizer
LIST_FILE=""
while [ $# -gt 0 ]; do
  a="$1"; shift
  case "$a" in
    --all) MODE=all ;;
    --cluster) CLUSTER=1 ;;
    --acl) SEC=acl ;;
    --sasl-ssl) SEC=sasl-ssl ;;
    --list) [ $# -gt 0 ] || { echo "--list needs a file" >&2; exit 2; }; LIST_FILE="$1"; shift ;;
    -h|--help) sed -n '2,/^set -uo pipefail/p' "$0" | sed '$d'; exit 0 ;;
    [0-9][0-9][0-9][0-9]) SELECT+=("$a") ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
[ -z "$CLUSTER" ] || [ -z "$SEC" ] || { echo "--cluster runs PLAINTEXT without an authorizer only" >&2; exit 2; }

# suite_init would wipe out/ including the (slow to build) test runner in out/build: same setup,
# but keep out/build.
SUITE="librdkafka${SEC:+-$SEC}"
WORK="${LIBRDKAFKA_WORK:-$HERE/out}"
mkdir -p "$WORK"
find "$WORK" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
export SUITE WORK
# --cluster: the cluster of the entry running now, stopped on any exit (by the pids cluster.sh wrote).
CLUSTER_DIR=""
_librdkafka_exit() {
  local rc=$?
  [ -n "$CLUSTER_DIR" ] && "$REPO_ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1
  (exit "$rc"); _suite_exit
}
trap _librdkafka_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ -x "$FJORD_BIN" ] || die "broker binary not found or not executable: $FJORD_BIN (run cargo build --release)"

log "building librdkafka test-runner (scripts/build-librdkafka-tests.sh; skipped when up to date)"
RUNNER="$("$REPO_ROOT/scripts/build-librdkafka-tests.sh" 2>"$WORK/build.log" | tail -n 1)"
if [ -z "$RUNNER" ] || [ ! -x "$RUNNER" ]; then
  tail -n 30 "$WORK/build.log" >&2
  die "building the librdkafka test-runner failed (see $WORK/build.log)"
fi
RUNNER_DIR="$(dirname "$RUNNER")"
# The runner writes stats_*.json and *.offset files into its working directory: start clean.
rm -f "$RUNNER_DIR"/stats_*.json "$RUNNER_DIR"/*.offset

if [ -n "$LIST_FILE" ]; then LIST="$LIST_FILE"
elif [ "$MODE" = all ]; then LIST="$GOAL_FILE"
elif [ "$SEC" = acl ]; then LIST="$ACL_LIST"
else LIST="$ALLOW_LIST"; fi
[ -f "$LIST" ] || die "no entry list: $LIST"
mapfile -t ENTRIES < <(grep -E '^[0-9]{4} ' "$LIST" | sed 's/[[:space:]]*$//')
if [ "${#SELECT[@]}" -gt 0 ]; then
  filtered=()
  for e in "${ENTRIES[@]}"; do
    for n in "${SELECT[@]}"; do [ "${e%% *}" = "$n" ] && filtered+=("$e"); done
  done
  ENTRIES=("${filtered[@]}")
fi
[ "${#ENTRIES[@]}" -gt 0 ] || die "no entries selected from $LIST"
log "${#ENTRIES[@]} entries from $LIST, runner $RUNNER${SEC:+, $SEC}"

# The broker settings the authorizer-enabled modes share (see the header).
AUTHZ_ARGS=(--override authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
            --override allow.everyone.if.no.acl.found=true)
SCRAM_USER=rdkafka-test
SCRAM_PASSWORD=rdkafka-test-scram-pw
# sasl_ssl_skip_reason "NUMBER NAME": prints the reason sasl-ssl-skip.txt gives for skipping the
# entry (lines "NUMBER NAME  # reason"); non-zero when it is not listed.
sasl_ssl_skip_reason() {
  [ -f "$SASL_SSL_SKIP" ] || return 1
  awk -v e="$1" '/^#/ || !/[^ ]/ { next }
    { i = index($0, "  # "); k = (i ? substr($0, 1, i - 1) : $0); sub(/[ \t]+$/, "", k) }
    k == e { print (i ? substr($0, i + 4) : "no reason given"); found = 1; exit }
    END { exit !found }' "$SASL_SSL_SKIP"
}
if [ "$SEC" = sasl-ssl ]; then
  command -v openssl >/dev/null || die "openssl not installed (scripts/install-deps.sh)"
  [ -x "$VENV_PY" ] || die "no $VENV_PY (scripts/install-deps.sh): it creates the SCRAM user"
  grep -q '^#define WITH_SASL_SCRAM 1' "$RUNNER_DIR/../config.h" ||
    die "the test-runner's librdkafka has no SCRAM (rebuild: LIBRDKAFKA_TESTS_REBUILD=1 scripts/build-librdkafka-tests.sh)"
  test_pki "$WORK/pki" || die "making the test certificates failed"
  cat "$WORK/pki/server.key" "$WORK/pki/server.pem" "$WORK/pki/ca.pem" >"$WORK/pki/keystore.pem"
fi

# create_scram_user BOOTSTRAP: the SCRAM-SHA-512 credential of $SCRAM_USER, through a PLAINTEXT listener.
create_scram_user() {
  "$VENV_PY" - "$1" "$SCRAM_USER" "$SCRAM_PASSWORD" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
bootstrap, user, password = sys.argv[1:4]
a = AdminClient({"bootstrap.servers": bootstrap})
up = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode())
for f in a.alter_user_scram_credentials([up]).values():
    f.result(30)
PY
}

strip_ansi() { sed -e 's/\x1b\[[0-9;]*m//g'; }

# run_entry "NUMBER NAME": one runner process against a fresh broker. Returns 0 on PASS; sets DETAIL.
run_entry() {
  local entry="$1" num name base sub="" flags=() envs=() tag logf rc=0 row state
  num="${entry%% *}"; name="${entry#* }"
  tag=""
  case "$name" in *"["*"]") tag="${name##*[}"; tag="${tag%]}"; name="${name%[*}" ;; esac
  base="$name"
  case "$name" in *:*) base="${name%%:*}"; sub="${name#*:}" ;; esac
  case "$tag" in
    "") ;;
    idempotent) flags+=(-P) ;;
    kip848) envs+=(TEST_CONSUMER_GROUP_PROTOCOL=consumer) ;;
    *) DETAIL="unknown tag [$tag]"; return 1 ;;
  esac
  case " $FULL_MODE_TESTS " in *" $num "*) ;; *) flags+=(-Q) ;; esac
  [ -n "$sub" ] && envs+=("SUBTESTS=do_test_$sub:")

  local safe="${entry//[^A-Za-z0-9_.-]/_}" skip_reason
  if [ "$SEC" = sasl-ssl ] && skip_reason="$(sasl_ssl_skip_reason "$entry")"; then
    DETAIL="$skip_reason"; return 2
  fi
  # Entries that differ only in the test name (0045 subscribe_update / resubscribe_with_regex / ...)
  # are one runner process (TESTS selects by number): run it once, judge each name from its summary.
  local key="$num|$tag|$sub" stop_rc=0
  if [ -n "${RAN_LOG[$key]:-}" ]; then
    logf="${RAN_LOG[$key]}"; rc="${RAN_RC[$key]}"; stop_rc="${RAN_STOP[$key]}"
  else
  logf="$WORK/$safe.log"
  unset FJORD_PORT
  local brokerlog
  if [ -n "$CLUSTER" ]; then
    cluster_start "$WORK/data/$safe" || { DETAIL="cluster did not start (see $WORK/broker-starts.log)"; return 1; }
    brokerlog="$CLUSTER_DIR/node-*/fjord.log"
  else
  local sec_args=() ssl_port=""
  case "$SEC" in
    acl) sec_args=("${AUTHZ_ARGS[@]}") ;;
    sasl-ssl)
      FJORD_PORT="$(free_port)"; ssl_port="$(free_port)"
      while [ "$ssl_port" = "$FJORD_PORT" ]; do ssl_port="$(free_port)"; done
      sec_args=("${AUTHZ_ARGS[@]}"
        --override "listeners=PLAINTEXT://127.0.0.1:$FJORD_PORT,SASL_SSL://127.0.0.1:$ssl_port"
        --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
        --override "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"
        --override ssl.keystore.type=PEM --override "ssl.keystore.location=$WORK/pki/keystore.pem") ;;
  esac
  fjord_start "$WORK/data/$safe" --override num.partitions=4 \
    --override auto.create.topics.enable=true "${sec_args[@]}" 2>>"$WORK/broker-starts.log" ||
    { DETAIL="broker did not start (see $WORK/broker-starts.log)"; return 1; }
  brokerlog="$FJORD_LOG_FILE"
  fi
  local tools_bootstrap="$FJORD_BOOTSTRAP"
  if [ "$SEC" = sasl-ssl ]; then
    if ! create_scram_user "$FJORD_BOOTSTRAP" >"$WORK/$safe.scram-user.log" 2>&1; then
      fjord_stop >/dev/null 2>&1
      DETAIL="creating the SCRAM user failed (see $WORK/$safe.scram-user.log)"; return 1
    fi
    cat >"$WORK/test.conf" <<EOF
bootstrap.servers=127.0.0.1:$ssl_port
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=$SCRAM_USER
sasl.password=$SCRAM_PASSWORD
ssl.ca.location=$WORK/pki/ca.pem
EOF
  else
    cat >"$WORK/test.conf" <<EOF
bootstrap.servers=$FJORD_BOOTSTRAP
EOF
  fi
  # Tests that run Kafka's kafka-acls.sh (a JVM, ~2.5 s a call) get upstream CI's timeout
  # multiplier (its runner adds 2 on CI): 0119 calls it four times within its 20 s.
  case " $ACL_CLI_TESTS " in *" $num "*) echo "test.timeout.multiplier=3" >>"$WORK/test.conf" ;; esac
  (
    cd "$RUNNER_DIR" || exit 1
    exec env RDKAFKA_TEST_CONF="$WORK/test.conf" TEST_KAFKA_VERSION=4.0.0 TESTS="$num" \
      KAFKA_PATH="$HERE/kafka-path" BROKERS="$tools_bootstrap" "${envs[@]}" \
      timeout -k 10 "$TEST_TIMEOUT_S" ./test-runner -p1 -L -E "${flags[@]}"
  ) >"$logf" 2>&1 || rc=$?
  if [ -n "$CLUSTER" ]; then cluster_stop || stop_rc=$?; else fjord_stop >/dev/null 2>&1 || stop_rc=$?; fi
  printf '# broker log: %s\n' "$brokerlog" >>"$logf"
  RAN_LOG[$key]="$logf"; RAN_RC[$key]="$rc"; RAN_STOP[$key]="$stop_rc"
  fi

  row="$(strip_ansi <"$logf" | grep -E "^\| +${num}_${base} +\|" | tail -n 1)"
  state="$(printf '%s' "$row" | awk -F'|' '{gsub(/ /,"",$3); print $3}')"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    DETAIL="timed out after ${TEST_TIMEOUT_S}s: $(strip_ansi <"$logf" | grep -m1 -A1 -E '^### Test ' | tail -n 1 | cut -c1-300) (log $logf)"; return 1
  fi
  if [ "$state" != PASSED ]; then
    local why
    why="$(strip_ansi <"$logf" | grep -m1 -A1 -E '^### Test ' | tail -n 1 | cut -c1-300)"
    DETAIL="${num}_${base} ${state:-no summary row} (rc=$rc) ${why:+: $why} (log $logf)"; return 1
  fi
  if [ -n "$sub" ]; then
    # grep without -q reads all its input: with -q, sed could die of SIGPIPE and pipefail would
    # turn a match into a failure.
    if ! strip_ansi <"$logf" | grep -E "\[ do_test_${sub}:[0-9]+.*: PASS" >/dev/null; then
      DETAIL="sub-test do_test_$sub did not run/pass (log $logf)"; return 1
    fi
  fi
  if [ "$stop_rc" -ne 0 ]; then DETAIL="test passed but broker exited rc=$stop_rc on SIGTERM"; return 1; fi
  return 0
}
declare -A RAN_LOG=() RAN_RC=() RAN_STOP=()

# cluster_start DIR: a fresh 3-node cluster in DIR on free loopback ports (--cluster); sets
# CLUSTER_DIR and FJORD_BOOTSTRAP (node 1 only).
cluster_start() {
  local base
  base="$(free_port_block 6)"
  CLUSTER_DIR="$1"
  FJORD_BIN="$FJORD_BIN" "$REPO_ROOT/scripts/cluster.sh" start "$CLUSTER_DIR" 3 "$base" -- \
    --override num.partitions=4 --override auto.create.topics.enable=true \
    --override default.replication.factor=3 >>"$WORK/broker-starts.log" 2>&1 || return 1
  export FJORD_BOOTSTRAP="127.0.0.1:$base"
}

# cluster_stop: SIGTERM every node; non-zero if a node needed SIGKILL or logged a panic.
cluster_stop() {
  local out rc=0
  out="$("$REPO_ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR" 2>&1)" || rc=$?
  if [[ "$out" == *SIGKILL* ]] || grep -q 'panicked at' "$CLUSTER_DIR"/node-*/fjord.log 2>/dev/null; then rc=1; fi
  CLUSTER_DIR=""
  return "$rc"
}

PASSED=()
SKIPPED=0
mkdir -p "$WORK/data"
for entry in "${ENTRIES[@]}"; do
  DETAIL=""
  t0=$(date +%s)
  rc=0
  run_entry "$entry" || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "$entry ($(( $(date +%s) - t0 ))s)"
    PASSED+=("$entry")
  elif [ "$rc" -eq 2 ]; then
    printf 'SKIP %s: %s (sasl-ssl-skip.txt)\n' "$entry" "$DETAIL"; SKIPPED=$((SKIPPED + 1))
  else
    fail "$entry" "$DETAIL"
  fi
done
[ "$SKIPPED" -eq 0 ] || log "$SKIPPED entries skipped over SASL_SSL (sasl-ssl-skip.txt)"

[ -z "$CLUSTER" ] || log "--cluster: every entry ran against a 3-node cluster (default.replication.factor=3, bootstrap node 1); each FAIL above passes against a single node in CI"
if [ "$MODE" = all ]; then
  printf '\n%d of %d goal-file entries pass:\n' "${#PASSED[@]}" "${#ENTRIES[@]}"
  printf '%s\n' "${PASSED[@]}"
  # Discovery mode reports; it does not fail on goal-file tests that are not expected to pass yet.
  printf '%s (--all): %d passed, %d failed\n' "$SUITE" "$PASS_COUNT" "$FAIL_COUNT"
  exit 0
fi
suite_finish
