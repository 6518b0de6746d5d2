#!/usr/bin/env bash
# Hostile cases against a release build, as a tester would run them: a full small file system,
# crafted record batches, huge partition counts, compression bombs, many partitions after kill -9,
# group members across restarts. Prints a table of what each case got (compat-tests/chaos/).
#   scripts/chaos.sh                 # the long form of every case
#   scripts/chaos.sh --short         # the short form CI runs (compat-tests/chaos/run.sh)
#   scripts/chaos.sh --case full-disk [--case ...]
#   FJORD_BIN=/path/fjord scripts/chaos.sh   # skip the build, use this binary
# The full-disk case mounts an ext4 image on a loop device: it needs root, and is reported as
# skipped (with the reason) where that is not possible.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
long=(--long)
args=()
for a in "$@"; do
  if [ "$a" = "--short" ]; then long=(); else args+=("$a"); fi
done
if [ -z "${FJORD_BIN:-}" ]; then
  cargo build --release || { echo "chaos: release build failed"; exit 1; }
  export FJORD_BIN="$ROOT/target/release/fjord"
fi
[ -x compat-tests/.venv/bin/python ] || scripts/install-deps.sh || exit 1
exec compat-tests/chaos/run.sh "${long[@]}" "${args[@]}"
