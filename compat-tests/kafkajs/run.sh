#!/usr/bin/env bash
# kafkajs 2.x (pure JavaScript client) against Fjord: admin createTopics, producer send with and without
# idempotence, consumer groups (subscribe fromBeginning, run/eachMessage, commits, resume), admin
# fetchOffsets / setOffsets / describeGroups / listGroups / deleteGroups, transactions. The test itself is test.js
# (plain node + assert); its PASS/FAIL lines are counted here.
# node_modules/ is installed from package.json (pinned version, no lock file) when missing.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init kafkajs

ensure_kafkajs
log "node $(node --version), kafkajs $(node -p 'require(process.argv[1]).version' "$HERE/node_modules/kafkajs/package.json")"

# No initial rebalance delay: every step starts a fresh group member.
fjord_start "$WORK/data" --override group.initial.rebalance.delay.ms=0 || { fail "broker starts"; suite_finish; exit 1; }

rc=0
(cd "$HERE" && FJORD_BOOTSTRAP="$FJORD_BOOTSTRAP" timeout --kill-after=5 150 node test.js) >"$WORK/test.out" 2>"$WORK/test.err" || rc=$?
cat "$WORK/test.out"
count_results "$WORK/test.out" "$WORK/test.err" "$rc" "node test.js"
[ -s "$WORK/test.err" ] && { log "node stderr (kafkajs log lines):"; tail -n 20 "$WORK/test.err" >&2; }

suite_finish
