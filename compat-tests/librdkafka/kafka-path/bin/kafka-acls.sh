#!/usr/bin/env bash
# Kafka's own bin/kafka-acls.sh for the librdkafka tests that shell out to it (test_kafka_cmd() in
# tests/test.c runs "$KAFKA_PATH/bin/kafka-acls.sh --bootstrap-server ..."; 0109, 0115, 0119).
# run.sh points KAFKA_PATH at this directory; this runs the stock tool of $KAFKA_HOME (default
# ../shared/kafka-4.0.0 beside the repository, as compat-tests/acls uses it) with its logs under
# $LOG_DIR (default a directory in /tmp made for this call).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
KAFKA_HOME="${KAFKA_HOME:-$HERE/../../../../../shared/kafka-4.0.0}"
[ -x "$KAFKA_HOME/bin/kafka-acls.sh" ] || { echo "kafka-acls.sh: no Kafka tools under $KAFKA_HOME" >&2; exit 1; }
if [ -z "${LOG_DIR:-}" ]; then
  LOG_DIR="$(mktemp -d)"
  trap 'rm -rf "$LOG_DIR"' EXIT
fi
export LOG_DIR KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256m}"
"$KAFKA_HOME/bin/kafka-acls.sh" "$@"
