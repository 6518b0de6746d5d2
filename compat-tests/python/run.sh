#!/usr/bin/env bash
# confluent-kafka and kafka-python pytest suites against Fjord. The broker is started and stopped by
# conftest.py (a session fixture on a temp data dir); broker logs land in compat-tests/python/out/.
# Extra args go to pytest, e.g. compat-tests/python/run.sh -k offsets_for_times
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="$HERE/../.venv/bin/python"
[ -x "$PY" ] || { echo "missing $PY: run scripts/install-deps.sh" >&2; exit 2; }
FJORD_BIN="${FJORD_BIN:-$(cd "$HERE/../.." && pwd)/target/release/fjord}"
[ -x "$FJORD_BIN" ] || { echo "broker binary not found: $FJORD_BIN (run cargo build --release)" >&2; exit 2; }
export FJORD_BIN
cd "$HERE" && exec "$PY" -m pytest -v -p no:cacheprovider "$@" test_confluent.py test_kafka_python.py test_groups.py test_compaction.py test_admin.py test_transactions.py
