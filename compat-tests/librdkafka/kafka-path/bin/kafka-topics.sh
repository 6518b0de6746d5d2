#!/usr/bin/env bash
# Stand-in for Apache Kafka's bin/kafka-topics.sh, for the librdkafka tests that shell out to it
# (test_kafka_topics() in tests/test.c runs "$KAFKA_PATH/bin/kafka-topics.sh --bootstrap-server
# $BROKERS ..."; 0052 msg_timestamps, 0045, 0077). run.sh points KAFKA_PATH at this directory.
# Supports --create/--delete/--alter --topic T [--partitions N] [--replication-factor N]
# [--config k=v]..., done through the Admin API with confluent-kafka from compat-tests/.venv
# (scripts/install-deps.sh). Exits non-zero when the broker refuses the request.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${VENV_PY:-$HERE/../../../.venv/bin/python}"
[ -x "$PY" ] || { echo "kafka-topics.sh stand-in: $PY missing (run scripts/install-deps.sh)" >&2; exit 1; }
exec "$PY" - "$@" <<'PYEOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions

args = sys.argv[1:]
op, topic, parts, rf, configs, bootstrap = None, None, None, 1, {}, None
i = 0
while i < len(args):
    a = args[i]
    if a in ("--create", "--delete", "--alter"):
        op = a[2:]
    elif a == "--topic":
        i += 1; topic = args[i]
    elif a == "--partitions":
        i += 1; parts = int(args[i])
    elif a == "--replication-factor":
        i += 1; rf = int(args[i])
    elif a == "--config":
        i += 1; k, v = args[i].split("=", 1); configs[k] = v
    elif a == "--bootstrap-server":
        i += 1; bootstrap = args[i]
    else:
        sys.exit(f"kafka-topics.sh stand-in: unsupported argument {a}")
    i += 1
if not (op and topic and bootstrap):
    sys.exit("kafka-topics.sh stand-in: need --bootstrap-server, --topic and --create/--delete/--alter")
admin = AdminClient({"bootstrap.servers": bootstrap})
if op == "create":
    fut = admin.create_topics([NewTopic(topic, parts or 1, rf, config=configs)], operation_timeout=30)
elif op == "delete":
    fut = admin.delete_topics([topic], operation_timeout=30)
else:
    fut = admin.create_partitions([NewPartitions(topic, parts)], operation_timeout=30)
for t, f in fut.items():
    f.result()
    print(f"{op}d topic {t}")
PYEOF
