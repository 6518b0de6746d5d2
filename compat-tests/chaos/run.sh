#!/usr/bin/env bash
# Hostile cases against a release broker (see chaos_test.py): the short form CI runs. The long form
# is scripts/chaos.sh --long. Broker logs land in compat-tests/chaos/out/.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="$HERE/../.venv/bin/python"
[ -x "$PY" ] || { echo "missing $PY: run scripts/install-deps.sh" >&2; exit 2; }
FJORD_BIN="${FJORD_BIN:-$(cd "$HERE/../.." && pwd)/target/release/fjord}"
[ -x "$FJORD_BIN" ] || { echo "broker binary not found: $FJORD_BIN (run cargo build --release)" >&2; exit 2; }
export FJORD_BIN
# The crafted-batch sender (examples/hostile) is built beside the broker when it is missing.
if [ -z "${FJORD_HOSTILE_BIN:-}" ] && [ ! -x "$HERE/../../target/release/examples/hostile" ]; then
  (cd "$HERE/../.." && cargo build --release --example hostile) || { echo "cannot build examples/hostile" >&2; exit 2; }
fi
rm -rf "$HERE/out"
exec "$PY" "$HERE/chaos_test.py" "$HERE/out" "$@"
