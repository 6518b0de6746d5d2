#!/usr/bin/env bash
# Data-safety suite: kill -9 mid-stream under an idempotent acks=all producer, then a clean SIGTERM
# restart; see crash_test.py. Broker logs land in compat-tests/crash/out/.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="$HERE/../.venv/bin/python"
[ -x "$PY" ] || { echo "missing $PY: run scripts/install-deps.sh" >&2; exit 2; }
FJORD_BIN="${FJORD_BIN:-$(cd "$HERE/../.." && pwd)/target/release/fjord}"
[ -x "$FJORD_BIN" ] || { echo "broker binary not found: $FJORD_BIN (run cargo build --release)" >&2; exit 2; }
export FJORD_BIN
rm -rf "$HERE/out"
exec "$PY" "$HERE/crash_test.py" "$HERE/out"
