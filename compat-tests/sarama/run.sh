#!/usr/bin/env bash
# Sarama 1.22 (Go, Debian's golang-github-shopify-sarama-dev, built with Debian's Go in GOPATH mode)
# against Fjord: the checks are main.go's; its PASS/FAIL lines are counted here. The same program
# passes against Apache Kafka 4.0 (FJORD_BOOTSTRAP=<its address> out/sarama-compat).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init sarama

ensure_sarama
log "$(go version), sarama $(dpkg-query -W -f='${Version}' golang-github-shopify-sarama-dev)"
# GOPATH mode: the client and its dependencies are Debian's sources under /usr/share/gocode.
if ! (cd "$HERE" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$WORK/gocache" \
      go build -o "$WORK/sarama-compat" main.go) >"$WORK/build.log" 2>&1; then
  tail -n 20 "$WORK/build.log" >&2
  die "go build failed"
fi

fjord_start "$WORK/data" || { fail "broker starts"; suite_finish; exit 1; }

rc=0
FJORD_BOOTSTRAP="$FJORD_BOOTSTRAP" timeout --kill-after=5 180 "$WORK/sarama-compat" >"$WORK/test.out" 2>"$WORK/test.err" || rc=$?
cat "$WORK/test.out"
count_results "$WORK/test.out" "$WORK/test.err" "$rc" "sarama-compat"
[ -s "$WORK/test.err" ] && { log "stderr:"; tail -n 20 "$WORK/test.err" >&2; }

suite_finish
