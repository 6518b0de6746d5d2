#!/usr/bin/env bash
# SASL listeners with real clients. One broker with three listeners: PLAINTEXT (to create the SCRAM
# users with Kafka's kafka-configs.sh), SASL_PLAINTEXT and SASL_SSL (the TLS certificates made here
# with the openssl CLI; no key is committed), each offering PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
# PLAIN's users come from Kafka's listener.name.<listener>.plain.sasl.jaas.config.
#   1. kafka-configs.sh --alter --add-config 'SCRAM-SHA-256=[...]' (and SCRAM-SHA-512) creates the
#      SCRAM user through the PLAINTEXT listener.
#   2. kcat: on both SASL listeners, with each mechanism, 100 keyed records produced and read back
#      (SCRAM skipped, with the reason printed, when kcat's librdkafka is older than 2.6.1: its
#      client-final-message repeats the client nonce, which Kafka 4 refuses too).
#   3. confluent-kafka (Python), kafka-python and kafkajs produce and consume over SASL_PLAINTEXT
#      and SASL_SSL with PLAIN and SCRAM.
#   4. The stock Java console producer and consumer (a group) over SASL_SSL with SCRAM-SHA-512 and
#      over SASL_PLAINTEXT with PLAIN.
#   5. A wrong password (PLAIN with kcat, SCRAM with confluent-kafka) fails cleanly: the client reports an authentication
#      error, the broker logs the peer and the mechanism and never the password, and a client
#      connected before keeps working, as do new ones.
#   6. OAUTHBEARER with unsecured tokens: kcat (librdkafka's unsecure JWT) and the Java console
#      tools (OAuthBearerLoginModule) round-trip records; an expired Java token is refused with
#      RFC 7628's {"status":"invalid_token"}.
#   7. Client quotas: kafka-configs.sh sets and describes a client id's producer_byte_rate, and the
#      Java perf producer under that client id is held near the quota.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init sasl

command -v kcat >/dev/null || die "kcat not installed (scripts/install-deps.sh)"
command -v openssl >/dev/null || die "openssl not installed (scripts/install-deps.sh)"
KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"

# --- certificates --------------------------------------------------------------------------------
PKI="$WORK/pki"
test_pki "$PKI" || die "making the test certificates failed"
cat "$PKI/server.key" "$PKI/server.pem" "$PKI/ca.pem" > "$PKI/keystore.pem"

SASL_PORT="$(free_port)"
SSL_PORT="$(free_port)"
while [ "$SSL_PORT" = "$SASL_PORT" ]; do SSL_PORT="$(free_port)"; done
FJORD_PORT="$(free_port)"
while [ "$FJORD_PORT" = "$SASL_PORT" ] || [ "$FJORD_PORT" = "$SSL_PORT" ]; do FJORD_PORT="$(free_port)"; done
PLAIN_JAAS='org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";'
SCRAM_PW="carol-scram-pw"
WRONG_PW="not-the-password-123"
fjord_start "$WORK/data" \
  --override "listeners=PLAINTEXT://127.0.0.1:$FJORD_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,SASL_SSL://127.0.0.1:$SSL_PORT" \
  --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL" \
  --override "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER" \
  --override "listener.name.sasl_plaintext.plain.sasl.jaas.config=$PLAIN_JAAS" \
  --override "listener.name.sasl_ssl.plain.sasl.jaas.config=$PLAIN_JAAS" \
  --override ssl.keystore.type=PEM \
  --override "ssl.keystore.location=$PKI/keystore.pem" \
  --override group.initial.rebalance.delay.ms=0 \
  --override num.partitions=1 || { fail "broker starts with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners"; suite_finish; exit 1; }
PLAIN="127.0.0.1:$FJORD_PORT"
SASL="127.0.0.1:$SASL_PORT"
SASL_SSL="127.0.0.1:$SSL_PORT"

HAVE_JAVA=0
if [ -x "$KAFKA_HOME/bin/kafka-configs.sh" ] && command -v java >/dev/null; then
  HAVE_JAVA=1
  export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="-Xmx256m"
  mkdir -p "$LOG_DIR"
fi

# --- 1. SCRAM users --------------------------------------------------------------------------------
if [ "$HAVE_JAVA" = 1 ]; then
  # One mechanism per call: Kafka's KRaft controller refuses a user altered twice in one request.
  for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
    timeout 60 "$KAFKA_HOME/bin/kafka-configs.sh" --bootstrap-server "$PLAIN" --alter \
      --add-config "$mech=[iterations=4096,password=$SCRAM_PW]" \
      --entity-type users --entity-name carol >"$WORK/kafka-configs-$mech.out" 2>&1
    check "kafka-configs.sh creates carol's $mech credential" test $? -eq 0
  done
else
  fail "kafka-configs.sh creates the SCRAM users" "no Kafka tools under $KAFKA_HOME or no java"
  "$VENV_PY" - "$PLAIN" "$SCRAM_PW" <<'PY' || die "no way to create the SCRAM users"
import sys
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
a = AdminClient({"bootstrap.servers": sys.argv[1]})
ups = [UserScramCredentialUpsertion("carol", ScramCredentialInfo(m, 4096), sys.argv[2].encode()) for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
for f in a.alter_user_scram_credentials(ups).values():
    f.result()
PY
fi

# --- 2. kcat: both listeners, every mechanism ---------------------------------------------------------
python3 -c 'import sys
for i in range(100): print(f"key-{i % 7}:value-{i}-" + "y" * (i % 200))' >"$WORK/records.txt"
# kcat_args LISTENER MECHANISM USER PASSWORD: the kcat options for that client.
kcat_args() {
  local addr proto
  if [ "$1" = SSL ]; then addr="$SASL_SSL"; proto=SASL_SSL; else addr="$SASL"; proto=SASL_PLAINTEXT; fi
  KC=(kcat -b "$addr" -m 10 -X "security.protocol=$proto" -X "sasl.mechanisms=$2" -X "sasl.username=$3" -X "sasl.password=$4")
  if [ "$1" = SSL ]; then KC+=(-X "ssl.ca.location=$PKI/ca.pem"); fi
}
# librdkafka before 2.6.1 appends the client nonce twice in its SCRAM final message, which
# Kafka 4 (and Fjord, as RFC 5802 requires) refuses (librdkafka #4895): Debian's kcat links 2.0.x.
KCAT_RDKAFKA="$(kcat -V 2>&1 | sed -n 's/.*librdkafka \([0-9.]*\).*/\1/p')"
KCAT_SCRAM=1
if [ "$(printf '%s\n2.6.1\n' "$KCAT_RDKAFKA" | sort -V | head -1)" != 2.6.1 ]; then
  KCAT_SCRAM=0
  log "kcat links librdkafka $KCAT_RDKAFKA: its SCRAM nonce bug (fixed in 2.6.1) fails against Kafka 4 as against Fjord; kcat runs PLAIN only, SCRAM is proven by the other clients"
fi
for listener in PLAINTEXT SSL; do
  for mech in PLAIN SCRAM-SHA-256 SCRAM-SHA-512; do
    if [ "$mech" != PLAIN ] && [ "$KCAT_SCRAM" = 0 ]; then
      printf 'SKIP kcat over SASL_%s with %s: librdkafka %s < 2.6.1 sends a SCRAM nonce Kafka 4 refuses\n' "$listener" "$mech" "$KCAT_RDKAFKA"
      continue
    fi
    if [ "$mech" = PLAIN ]; then kcat_args "$listener" "$mech" alice alice-secret; else kcat_args "$listener" "$mech" carol "$SCRAM_PW"; fi
    topic="kcat-$listener-$mech"
    "${KC[@]}" -P -t "$topic" -K : -l "$WORK/records.txt" >"$WORK/$topic.produce" 2>&1
    check "kcat produces over SASL_$listener with $mech" test $? -eq 0
    timeout 30 "${KC[@]}" -C -t "$topic" -o beginning -e -q -f '%k:%s\n' >"$WORK/$topic.consumed" 2>"$WORK/$topic.err"
    check "kcat reads the 100 records back over SASL_$listener with $mech" cmp "$WORK/records.txt" "$WORK/$topic.consumed"
  done
done

# --- 3. confluent-kafka, kafka-python, kafkajs -------------------------------------------------------------
if [ -x "$VENV_PY" ]; then
  for spec in "$SASL SASL_PLAINTEXT PLAIN alice alice-secret" "$SASL_SSL SASL_SSL SCRAM-SHA-512 carol $SCRAM_PW" "$SASL_SSL SASL_SSL SCRAM-SHA-256 carol $SCRAM_PW"; do
    # shellcheck disable=SC2086
    set -- $spec
    check "confluent-kafka produces (acks=all, idempotent) and consumes in a group over $2 with $3" "$VENV_PY" - "$@" "$PKI/ca.pem" <<'PY'
import sys
from confluent_kafka import Consumer, Producer
bootstrap, proto, mech, user, pw, ca = sys.argv[1:7]
conf = {"bootstrap.servers": bootstrap, "security.protocol": proto, "sasl.mechanisms": mech, "sasl.username": user, "sasl.password": pw}
if proto == "SASL_SSL":
    conf["ssl.ca.location"] = ca
topic = f"ck-{proto}-{mech}"
p = Producer({**conf, "acks": "all", "enable.idempotence": True})
errors = []
for i in range(200):
    p.produce(topic, key=f"k{i}", value=f"v{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
assert p.flush(30) == 0, "undelivered records"
assert not errors, errors
c = Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
c.subscribe([topic])
got = []
while len(got) < 200:
    m = c.poll(15)
    assert m is not None, f"timed out after {len(got)} records"
    assert m.error() is None, m.error()
    got.append((m.key().decode(), m.value()))
c.close()
assert got == [(f"k{i}", f"v{i}".encode()) for i in range(200)], "records differ"
PY
    check "kafka-python produces and consumes over $2 with $3" "$VENV_PY" - "$@" "$PKI/ca.pem" <<'PY'
import sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
bootstrap, proto, mech, user, pw, ca = sys.argv[1:7]
conf = dict(bootstrap_servers=bootstrap, security_protocol=proto, sasl_mechanism=mech, sasl_plain_username=user, sasl_plain_password=pw)
if proto == "SASL_SSL":
    conf.update(ssl_cafile=ca, ssl_check_hostname=True)
topic = f"kp-{proto}-{mech}"
p = KafkaProducer(acks="all", **conf)
for i in range(100):
    p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
p.flush(30)
p.close()
c = KafkaConsumer(group_id=None, consumer_timeout_ms=15000, **conf)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek_to_beginning(tp)
got = [(m.key, m.value) for _, m in zip(range(100), c)]
c.close()
assert got == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)], f"got {len(got)} records"
PY
  done
else
  fail "confluent-kafka and kafka-python over SASL" "no $VENV_PY (scripts/install-deps.sh)"
fi

if command -v node >/dev/null && [ -d "$COMPAT_ROOT/kafkajs/node_modules/kafkajs" ]; then
  for spec in "$SASL SASL_PLAINTEXT plain alice alice-secret" "$SASL_SSL SASL_SSL scram-sha-256 carol $SCRAM_PW" "$SASL SASL_PLAINTEXT scram-sha-512 carol $SCRAM_PW"; do
    # shellcheck disable=SC2086
    set -- $spec
    check "kafkajs produces and consumes in a group over $2 with $3" env NODE_PATH="$COMPAT_ROOT/kafkajs/node_modules" timeout 60 node - "$@" "$PKI/ca.pem" <<'JS'
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');
const [bootstrap, proto, mechanism, username, password, ca] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: 'compat-sasl', brokers: [bootstrap], logLevel: logLevel.NOTHING,
  ssl: proto === 'SASL_SSL' ? { ca: [fs.readFileSync(ca, 'utf8')], servername: 'localhost' } : false,
  sasl: { mechanism, username, password },
});
(async () => {
  const topic = `js-${proto}-${mechanism}`;
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const messages = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: topic });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${got.length} records`)), 30000);
    consumer.run({ eachMessage: async ({ message }) => {
      got.push(`${message.key}:${message.value}`);
      if (got.length === 100) { clearTimeout(timer); resolve(); }
    } });
  });
  await consumer.disconnect();
  const want = messages.map((m) => `${m.key}:${m.value}`);
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error('records differ');
})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
JS
  done
else
  fail "kafkajs over SASL" "no node or no $COMPAT_ROOT/kafkajs/node_modules (compat-tests/kafkajs/run.sh installs it)"
fi

# --- 4. the Java console tools -----------------------------------------------------------------------
if [ "$HAVE_JAVA" = 1 ]; then
  printf 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="carol" password="%s";\nssl.truststore.type=PEM\nssl.truststore.location=%s\n' \
    "$SCRAM_PW" "$PKI/ca.pem" >"$WORK/java-scram.properties"
  printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="bob" password="bob-secret";\n' >"$WORK/java-plain.properties"
  seq 1 200 | sed 's/^/java-/' >"$WORK/java-records.txt"
  for spec in "$SASL_SSL scram SASL_SSL/SCRAM-SHA-512" "$SASL plain SASL_PLAINTEXT/PLAIN"; do
    # shellcheck disable=SC2086
    set -- $spec
    timeout 60 "$KAFKA_HOME/bin/kafka-console-producer.sh" --bootstrap-server "$1" --topic "java-$2" \
      --producer.config "$WORK/java-$2.properties" <"$WORK/java-records.txt" >"$WORK/java-$2-producer.out" 2>&1
    check "Java console producer over $3" test $? -eq 0
    timeout 60 "$KAFKA_HOME/bin/kafka-console-consumer.sh" --bootstrap-server "$1" --topic "java-$2" \
      --consumer.config "$WORK/java-$2.properties" --from-beginning --max-messages 200 --timeout-ms 30000 \
      >"$WORK/java-$2-consumed.txt" 2>"$WORK/java-$2-consumer.err"
    check "Java console consumer (a group) over $3 reads the 200 records" cmp "$WORK/java-records.txt" "$WORK/java-$2-consumed.txt"
  done
else
  fail "Java console tools over SASL" "no Kafka tools under $KAFKA_HOME or no java"
fi

# --- 5. wrong passwords -------------------------------------------------------------------------------
# A consumer connected and authenticated before the failures, still reading after them.
kcat_args PLAINTEXT PLAIN alice alice-secret
"${KC[@]}" -P -t survivor -K : -l "$WORK/records.txt" >/dev/null 2>&1
timeout 60 "${KC[@]}" -C -u -t survivor -o beginning -q -f '%k:%s\n' >"$WORK/survivor.txt" 2>/dev/null &
SURVIVOR=$!
sleep 2
kcat_args PLAINTEXT PLAIN alice "$WRONG_PW"
timeout 20 "${KC[@]}" -L >"$WORK/wrong-plain.out" 2>&1
check "kcat with a wrong PLAIN password gets no metadata" test $? -ne 0
check "and is told authentication failed" grep -qi "authentication" "$WORK/wrong-plain.out"
kcat_args SSL PLAIN bob "$WRONG_PW"
timeout 20 "${KC[@]}" -L >"$WORK/wrong-plain-ssl.out" 2>&1
check "kcat with a wrong PLAIN password over SASL_SSL gets no metadata" test $? -ne 0
check "and is told authentication failed" grep -qi "authentication" "$WORK/wrong-plain-ssl.out"
if [ -x "$VENV_PY" ]; then
  check "confluent-kafka with a wrong password gets an authentication error" "$VENV_PY" - "$SASL" "$WRONG_PW" <<'PY'
import sys
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
errors = []
a = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
                 "sasl.username": "carol", "sasl.password": sys.argv[2], "error_cb": errors.append})
try:
    a.list_topics(timeout=5)
    sys.exit("metadata with a wrong password")
except KafkaException:
    pass
for _ in range(20):
    if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        break
    a.poll(0.5)  # serves error_cb
assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
PY
fi
sed 's/\x1b\[[0-9;]*m//g' "$FJORD_LOG_FILE" | grep 'failed authentication' >"$WORK/auth-failures.log"
check "the broker logged each failure with the peer and the mechanism" \
  bash -c "grep 'peer=127.0.0.1' '$WORK/auth-failures.log' | grep -q 'mechanism=PLAIN' && grep 'peer=127.0.0.1' '$WORK/auth-failures.log' | grep -q 'mechanism=SCRAM-SHA-512'"
check "no password in the broker log" bash -c "! grep -qE '$WRONG_PW|alice-secret|$SCRAM_PW' '$FJORD_LOG_FILE'"
kcat_args PLAINTEXT PLAIN alice alice-secret
head -20 "$WORK/records.txt" | "${KC[@]}" -P -t survivor -K : >/dev/null 2>&1
for _ in $(seq 1 100); do [ "$(wc -l <"$WORK/survivor.txt")" -ge 120 ] && break; sleep 0.1; done
check "the consumer authenticated before the failures read the records sent after them" test "$(wc -l <"$WORK/survivor.txt")" -eq 120
kill "$SURVIVOR" 2>/dev/null; wait "$SURVIVOR" 2>/dev/null
kcat_args SSL PLAIN bob bob-secret
check "a new client is served over SASL_SSL after the failures" "${KC[@]}" -L

# --- 6. OAUTHBEARER (unsecured tokens) -------------------------------------------------------------------
KO=(kcat -b "$SASL" -m 10 -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=OAUTHBEARER -X enable.sasl.oauthbearer.unsecure.jwt=true -X "sasl.oauthbearer.config=principal=olive lifeSeconds=600")
"${KO[@]}" -P -t oauth-kcat -K : -l "$WORK/records.txt" >"$WORK/oauth-kcat.produce" 2>&1
check "kcat produces with an unsecured OAUTHBEARER token" test $? -eq 0
timeout 30 "${KO[@]}" -C -t oauth-kcat -o beginning -e -q -f '%k:%s\n' >"$WORK/oauth-kcat.consumed" 2>"$WORK/oauth-kcat.err"
check "kcat reads the 100 records back with OAUTHBEARER" cmp "$WORK/records.txt" "$WORK/oauth-kcat.consumed"
if [ "$HAVE_JAVA" = 1 ]; then
  oauth_props() {
    printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\nsasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="olive" unsecuredLoginLifetimeSeconds="%s";\n' "$1"
  }
  oauth_props 3600 >"$WORK/java-oauth.properties"
  oauth_props -100 >"$WORK/java-oauth-expired.properties"
  timeout 60 "$KAFKA_HOME/bin/kafka-console-producer.sh" --bootstrap-server "$SASL" --topic java-oauth \
    --producer.config "$WORK/java-oauth.properties" <"$WORK/java-records.txt" >"$WORK/java-oauth-producer.out" 2>&1
  check "Java console producer with OAUTHBEARER" test $? -eq 0
  timeout 60 "$KAFKA_HOME/bin/kafka-console-consumer.sh" --bootstrap-server "$SASL" --topic java-oauth \
    --consumer.config "$WORK/java-oauth.properties" --from-beginning --max-messages 200 --timeout-ms 30000 \
    >"$WORK/java-oauth-consumed.txt" 2>"$WORK/java-oauth-consumer.err"
  check "Java console consumer (a group) with OAUTHBEARER reads the 200 records" cmp "$WORK/java-records.txt" "$WORK/java-oauth-consumed.txt"
  timeout 60 "$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "$SASL" --list --command-config "$WORK/java-oauth-expired.properties" >"$WORK/java-oauth-expired.out" 2>&1
  check "an expired OAUTHBEARER token is refused with invalid_token" grep -q '{"status":"invalid_token"}' "$WORK/java-oauth-expired.out"
fi

# --- 7. client quotas --------------------------------------------------------------------------------
if [ "$HAVE_JAVA" = 1 ]; then
  timeout 60 "$KAFKA_HOME/bin/kafka-configs.sh" --bootstrap-server "$PLAIN" --alter --entity-type clients --entity-name throttled \
    --add-config producer_byte_rate=100000 >"$WORK/quota-set.out" 2>&1
  check "kafka-configs.sh sets a client id's producer_byte_rate" test $? -eq 0
  timeout 60 "$KAFKA_HOME/bin/kafka-configs.sh" --bootstrap-server "$PLAIN" --describe --entity-type clients --entity-name throttled >"$WORK/quota-describe.out" 2>&1
  check "kafka-configs.sh describes it" grep -q "producer_byte_rate=100000.0" "$WORK/quota-describe.out"
  # 1.5 MB at 100 KB/s: about 1 MB passes at once (the rate is measured over 10 s), the rest at the quota.
  timeout 90 "$KAFKA_HOME/bin/kafka-producer-perf-test.sh" --topic quota --num-records 1500 --record-size 1000 --throughput -1 \
    --producer-props "bootstrap.servers=$PLAIN" client.id=throttled >"$WORK/quota-perf.out" 2>&1
  rate="$(sed -n 's/.*records\/sec (\([0-9.]*\) MB\/sec).*/\1/p' "$WORK/quota-perf.out" | tail -1)"
  log "the throttled perf producer: ${rate:-?} MB/s (quota 0.1 MB/s)"
  check "the producer under the quota is held near it (under 0.4 MB/s)" awk -v r="${rate:-99}" 'BEGIN { exit !(r > 0 && r < 0.4) }'
fi

check "no ERROR line in the broker log" bash -c "! grep -q 'ERROR' '$FJORD_LOG_FILE'"
suite_finish
