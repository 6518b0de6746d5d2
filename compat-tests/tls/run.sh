#!/usr/bin/env bash
# SSL listeners with real clients. The CA, the broker's certificate (its key encrypted with PBES2,
# opened with ssl.key.password) and a client certificate are made here with the openssl CLI; no
# key is committed. One broker with three listeners: PLAINTEXT, SSL (PEM key store), and MTLS (SSL
# with ssl.client.auth=required and PKCS12 key and trust stores, through Kafka's
# listener.name.mtls. prefix).
#   1. kcat over SSL (security.protocol=SSL, ssl.ca.location): -L names the SSL listener's port;
#      1000 keyed records produced over SSL read back identical over SSL and over PLAINTEXT.
#   2. kcat in clear text on the SSL port gets nothing, and the broker logs the failed handshake;
#      the other listeners keep serving.
#   3. mTLS: kcat without a client certificate is refused, with one (ssl.certificate.location,
#      ssl.key.location) produces and consumes.
#   4. confluent-kafka (Python) produces 500 records with acks=all and consumes them over SSL.
#   5. The stock Java console producer and consumer (Kafka 4.0: --producer.config / --consumer.config,
#      the 4.0 tools have no --command-config; security.protocol=SSL, ssl.truststore.type=PEM,
#      ssl.truststore.location) round-trip 200 records over SSL, the consumer in a group.
#   6. ssl.principal.mapping.rules: the broker runs Kafka's StandardAuthorizer with no ACL, so only
#      super users (User:ANONYMOUS for the other listeners, User:COMPAT-CLIENT) are served; the MTLS
#      listener's rule maps the client certificate CN=compat-client to User:COMPAT-CLIENT (step 3
#      passes through it too), and the Java console producer with a PKCS12 client key store in
#      --producer.config produces through it.
#   7. Certificate reload: kafka-configs.sh alters listener.name.ssl.ssl.keystore.location to a
#      renewed certificate (same subject and names); the next TLS connection is served its serial.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init tls

command -v kcat >/dev/null || die "kcat not installed (scripts/install-deps.sh)"
command -v openssl >/dev/null || die "openssl not installed (scripts/install-deps.sh)"
KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/../shared/kafka-4.0.0}"

# --- certificates --------------------------------------------------------------------------------
PKI="$WORK/pki"
KEY_PASSWORD="fjord-test-key-pw"
test_pki "$PKI" || die "making the test certificates failed"
(
  cd "$PKI" || exit 1
  set -e
  # The key store: the encrypted PKCS#8 key, then the chain (leaf, CA).
  openssl pkcs8 -topk8 -v2 aes-256-cbc -in server.key -passout "pass:$KEY_PASSWORD" -out server.enc.key
  cat server.enc.key server.pem ca.pem > keystore.pem
  openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=compat-client" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null
  openssl pkcs12 -export -in client.pem -inkey client.key -name client -out client.p12 -passout pass:client-pw
  # The broker's renewed certificate (step 7): the same key, subject and names, a new serial.
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server2.pem -days 2 -extfile server.ext 2>/dev/null
  cat server.enc.key server2.pem ca.pem > keystore2.pem
  # The MTLS listener's stores are PKCS12: the key store as openssl exports it, the trust store as
  # Java's keytool writes it (openssl when there is no keytool).
  openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name broker -out keystore.p12 -passout "pass:$KEY_PASSWORD"
  if command -v keytool >/dev/null; then
    keytool -importcert -noprompt -storetype PKCS12 -keystore truststore.p12 -storepass trust-pw -alias ca -file ca.pem >/dev/null 2>&1
  else
    openssl pkcs12 -export -nokeys -in ca.pem -out truststore.p12 -passout pass:trust-pw
  fi
) || die "making the test certificates failed"

SSL_PORT="$(free_port)"
MTLS_PORT="$(free_port)"
while [ "$MTLS_PORT" = "$SSL_PORT" ]; do MTLS_PORT="$(free_port)"; done
FJORD_PORT="$(free_port)"
fjord_start "$WORK/data" \
  --override "listeners=PLAINTEXT://127.0.0.1:$FJORD_PORT,SSL://127.0.0.1:$SSL_PORT,MTLS://127.0.0.1:$MTLS_PORT" \
  --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL" \
  --override ssl.keystore.type=PEM \
  --override "ssl.keystore.location=$PKI/keystore.pem" \
  --override "ssl.key.password=$KEY_PASSWORD" \
  --override listener.name.mtls.ssl.client.auth=required \
  --override listener.name.mtls.ssl.keystore.type=PKCS12 \
  --override "listener.name.mtls.ssl.keystore.location=$PKI/keystore.p12" \
  --override "listener.name.mtls.ssl.keystore.password=$KEY_PASSWORD" \
  --override listener.name.mtls.ssl.truststore.type=PKCS12 \
  --override "listener.name.mtls.ssl.truststore.location=$PKI/truststore.p12" \
  --override listener.name.mtls.ssl.truststore.password=trust-pw \
  --override 'listener.name.mtls.ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/U,DEFAULT' \
  --override authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
  --override 'super.users=User:ANONYMOUS;User:COMPAT-CLIENT' \
  --override num.partitions=1 || { fail "broker starts with PLAINTEXT, SSL and MTLS listeners"; suite_finish; exit 1; }
PLAIN="127.0.0.1:$FJORD_PORT"
SSL="127.0.0.1:$SSL_PORT"
MTLS="127.0.0.1:$MTLS_PORT"
KC_PLAIN=(kcat -b "$PLAIN" -m 10)
KC_SSL=(kcat -b "$SSL" -m 10 -X security.protocol=SSL -X "ssl.ca.location=$PKI/ca.pem")
KC_MTLS=(kcat -b "$MTLS" -m 10 -X security.protocol=SSL -X "ssl.ca.location=$PKI/ca.pem")

# --- 1. kcat over SSL ------------------------------------------------------------------------------
"${KC_SSL[@]}" -L -J >"$WORK/meta.json" 2>"$WORK/meta.err"
check "kcat -L over SSL names the SSL listener's port" \
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); ports=[b["name"].rsplit(":",1)[1] for b in m["brokers"]]; sys.exit(0 if ports==[sys.argv[2]] else f"brokers {ports}")' "$WORK/meta.json" "$SSL_PORT"
"${KC_PLAIN[@]}" -L -J >"$WORK/meta-plain.json" 2>&1
check "kcat -L over PLAINTEXT names the PLAINTEXT port" \
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); ports=[b["name"].rsplit(":",1)[1] for b in m["brokers"]]; sys.exit(0 if ports==[sys.argv[2]] else f"brokers {ports}")' "$WORK/meta-plain.json" "$FJORD_PORT"

python3 -c 'import sys
for i in range(1000): print(f"key-{i % 37}:value-{i}-" + "x" * (i % 300))' >"$WORK/records.txt"
"${KC_SSL[@]}" -P -t over-ssl -K : -l "$WORK/records.txt" >"$WORK/produce-ssl.out" 2>&1
check "kcat produces 1000 records over SSL" test $? -eq 0
timeout 60 "${KC_SSL[@]}" -C -t over-ssl -o beginning -e -q -f '%k:%s\n' >"$WORK/consumed-ssl.txt" 2>"$WORK/consume-ssl.err"
check "the records read back over SSL are the records sent" cmp "$WORK/records.txt" "$WORK/consumed-ssl.txt"
timeout 60 "${KC_PLAIN[@]}" -C -t over-ssl -o beginning -e -q -f '%k:%s\n' >"$WORK/consumed-plain.txt" 2>&1
check "and over PLAINTEXT they are the same" cmp "$WORK/records.txt" "$WORK/consumed-plain.txt"

# --- 2. clear text on the SSL port -------------------------------------------------------------------
timeout 20 kcat -b "$SSL" -m 5 -L >"$WORK/plain-on-ssl.out" 2>&1
check "kcat in clear text on the SSL port gets no metadata" test $? -ne 0
check "the broker logged the failed handshake with the peer" grep -q "TLS handshake failed" "$FJORD_LOG_FILE"
check "PLAINTEXT still serves after it" "${KC_PLAIN[@]}" -L
check "SSL still serves after it" "${KC_SSL[@]}" -L

# --- 3. mTLS ---------------------------------------------------------------------------------------
timeout 20 "${KC_MTLS[@]}" -m 5 -L >"$WORK/mtls-nocert.out" 2>&1
check "mTLS listener: no client certificate, no metadata" test $? -ne 0
KC_MTLS_CERT=("${KC_MTLS[@]}" -X "ssl.certificate.location=$PKI/client.pem" -X "ssl.key.location=$PKI/client.key")
head -100 "$WORK/records.txt" | "${KC_MTLS_CERT[@]}" -P -t over-mtls -K : >"$WORK/produce-mtls.out" 2>&1
check "mTLS listener: produce with a client certificate" test $? -eq 0
timeout 60 "${KC_MTLS_CERT[@]}" -C -t over-mtls -o beginning -e -q -f '%k:%s\n' >"$WORK/consumed-mtls.txt" 2>&1
check "mTLS listener: the 100 records read back" cmp <(head -100 "$WORK/records.txt") "$WORK/consumed-mtls.txt"

# --- 4. confluent-kafka ----------------------------------------------------------------------------
if [ -x "$VENV_PY" ]; then
  check "confluent-kafka produces 500 records (acks=all) and consumes them over SSL" "$VENV_PY" - "$SSL" "$PKI/ca.pem" <<'PY'
import sys
from confluent_kafka import Consumer, Producer, TopicPartition
bootstrap, ca = sys.argv[1], sys.argv[2]
tls = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca}
p = Producer({**tls, "acks": "all", "enable.idempotence": True})
errors = []
for i in range(500):
    p.produce("py-ssl", key=f"k{i}", value=f"v{i}".encode() * 10, on_delivery=lambda e, m: e and errors.append(e))
assert p.flush(30) == 0, "undelivered records"
assert not errors, errors
c = Consumer({**tls, "group.id": "py-ssl", "enable.auto.commit": False})
c.assign([TopicPartition("py-ssl", 0, 0)])
got = []
while len(got) < 500:
    m = c.poll(10)
    assert m is not None, f"timed out after {len(got)} records"
    assert m.error() is None, m.error()
    got.append((m.key().decode(), m.value()))
c.close()
assert got == [(f"k{i}", f"v{i}".encode() * 10) for i in range(500)], "records differ"
PY
else
  fail "confluent-kafka over SSL" "no $VENV_PY (scripts/install-deps.sh)"
fi

# --- 5. the Java console tools -----------------------------------------------------------------------
if [ -x "$KAFKA_HOME/bin/kafka-console-producer.sh" ] && command -v java >/dev/null; then
  export LOG_DIR="$WORK/tool-logs" KAFKA_HEAP_OPTS="-Xmx256m"
  mkdir -p "$LOG_DIR"
  printf 'security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$PKI/ca.pem" >"$WORK/client-ssl.properties"
  seq 1 200 | sed 's/^/java-/' >"$WORK/java-records.txt"
  timeout 60 "$KAFKA_HOME/bin/kafka-console-producer.sh" --bootstrap-server "$SSL" --topic java-ssl \
    --producer.config "$WORK/client-ssl.properties" <"$WORK/java-records.txt" >"$WORK/java-producer.out" 2>&1
  check "Java console producer over SSL" test $? -eq 0
  timeout 60 "$KAFKA_HOME/bin/kafka-console-consumer.sh" --bootstrap-server "$SSL" --topic java-ssl \
    --consumer.config "$WORK/client-ssl.properties" --from-beginning --max-messages 200 --timeout-ms 30000 \
    >"$WORK/java-consumed.txt" 2>"$WORK/java-consumer.err"
  check "Java console consumer (a group) over SSL reads the 200 records" cmp "$WORK/java-records.txt" "$WORK/java-consumed.txt"
  # 6. A client certificate mapped by the MTLS listener's rule.
  printf 'security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\nssl.keystore.type=PKCS12\nssl.keystore.location=%s\nssl.keystore.password=client-pw\n' \
    "$PKI/ca.pem" "$PKI/client.p12" >"$WORK/client-mtls.properties"
  seq 1 50 | sed 's/^/mapped-/' >"$WORK/mapped-records.txt"
  timeout 60 "$KAFKA_HOME/bin/kafka-console-producer.sh" --bootstrap-server "$MTLS" --topic java-mapped \
    --producer.config "$WORK/client-mtls.properties" <"$WORK/mapped-records.txt" >"$WORK/java-mapped.out" 2>&1
  check "Java console producer with a client certificate mapped to the super user User:COMPAT-CLIENT" test $? -eq 0
  timeout 60 "${KC_MTLS_CERT[@]}" -C -t java-mapped -o beginning -e -q -f '%s\n' >"$WORK/consumed-mapped.txt" 2>&1
  check "its 50 records read back" cmp "$WORK/mapped-records.txt" "$WORK/consumed-mapped.txt"
  # 7. Reload through kafka-configs.sh.
  timeout 60 "$KAFKA_HOME/bin/kafka-configs.sh" --bootstrap-server "$PLAIN" --entity-type brokers --entity-name 1 --alter \
    --add-config "listener.name.ssl.ssl.keystore.location=$PKI/keystore2.pem" >"$WORK/kafka-configs.out" 2>&1
  check "kafka-configs.sh alters listener.name.ssl.ssl.keystore.location" test $? -eq 0
  want="$(openssl x509 -in "$PKI/server2.pem" -noout -serial)"
  got="$(openssl s_client -connect "$SSL" -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial)"
  check "a new connection is served the renewed certificate ($want)" test "$got" = "$want"
else
  fail "Java console tools over SSL" "no Kafka tools under $KAFKA_HOME or no java"
fi

check "no ERROR line in the broker log" bash -c "! grep -q 'ERROR' '$FJORD_LOG_FILE'"
suite_finish
