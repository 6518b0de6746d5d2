#!/usr/bin/env bash
# The rdkafka crate (Rust, bundled librdkafka 2.12) against Fjord: AdminClient create (3 partitions),
# duplicate create, replication factor 3 refused; idempotent acks=all lz4 FutureProducer, 20k keyed
# records with headers and binary values, every delivery awaited; an assign()-only BaseConsumer reads
# them back byte-identical at the (partition, offset) each delivery report gave; watermarks;
# offsets_for_times; metadata. RDKAFKA_RECORDS=N for a different record count.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init rdkafka

"$HERE/deps.sh" || die "build dependencies missing (compat-tests/rdkafka/deps.sh)"
export CARGO_TARGET_DIR="${RDKAFKA_TARGET_DIR:-$HERE/target}"
BIN="$CARGO_TARGET_DIR/release/fjord-compat-rdkafka"
log "building $HERE (release, first build compiles librdkafka)"
if ! cargo build --release -j "${CARGO_BUILD_JOBS:-2}" --manifest-path "$HERE/Cargo.toml" \
     >"$WORK/build.log" 2>&1; then
  tail -n 30 "$WORK/build.log" >&2
  die "cargo build failed (see $WORK/build.log)"
fi

fjord_start "$WORK/data" || { fail "broker starts"; suite_finish; exit 1; }

# The binary prints one PASS/FAIL line per check; they go into lib.sh's counters. Its stderr
# (timings, librdkafka logs) is kept in out/client.log.
rc=0
timeout 900 "$BIN" >"$WORK/client.out" 2>"$WORK/client.log" || rc=$?
while IFS= read -r line; do
  case "$line" in
    "PASS "*) pass "${line#PASS }" ;;
    "FAIL "*) rest="${line#FAIL }"; fail "${rest%%: *}" "${rest#*: }" ;;
  esac
done <"$WORK/client.out"
grep -E '^(produced|consumed|rdkafka crate|metadata:)' "$WORK/client.log" | sed 's/^/    /' >&2
if [ "$rc" -ne 0 ] && [ "$FAIL_COUNT" -eq 0 ]; then
  fail "fjord-compat-rdkafka exits 0" "rc=$rc; see $WORK/client.log"
  tail -n 20 "$WORK/client.log" | sed 's/^/    /'
fi

suite_finish
