#!/usr/bin/env bash
# kcat (Debian's, librdkafka 2.0.x) balanced consumer groups (kcat -G) against Fjord, with the broker's
# default group.initial.rebalance.delay.ms (3000):
#   1. 60k keyed records on a 6-partition topic; three `kcat -G` members started together consume them;
#      the first record arrives within a few seconds; every record is consumed exactly once across the
#      three; DescribeGroups shows 3 members, Stable, a disjoint cover of the 6 partitions.
#   2. produce 30k more, kill -9 one member while it consumes them, produce 3k more: the dead member's
#      partitions move to the two survivors within session.timeout.ms + margin; every record is
#      consumed (a record twice only if the dead member had consumed it: its uncommitted tail);
#      DescribeGroups shows 2 members, Stable.
#   3. the survivors exit (SIGTERM, close commits): committed offsets == log end offsets, group Empty.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init groups-kcat

command -v kcat >/dev/null || die "kcat not installed (scripts/install-deps.sh)"
[ -x "$VENV_PY" ] || die "missing $VENV_PY: run scripts/install-deps.sh"
CHECK="$HERE/groups_check.py"
N1="${GROUPS_KCAT_RECORDS:-60000}"
N2="${GROUPS_KCAT_MORE:-30000}"
N3=3000
PARTS=6
TOPIC=grp-records
GROUP=kcat-grp
SESSION_MS=6000          # the broker's group.min.session.timeout.ms: fastest failure detection allowed
MARGIN_S=15              # rebalance after the session expires: survivors rejoin on their next heartbeat
FIRST_RECORD_MAX_S=10    # initial rebalance delay 3 s + join/sync/fetch

MEMBER_PIDS=()
members_kill() {
  local pid
  for pid in "${MEMBER_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${MEMBER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  MEMBER_PIDS=()
}
on_exit() {
  local rc=$?
  members_kill
  (exit "$rc"); _suite_exit  # lib.sh's handler: stops the broker, exits with rc
}
trap on_exit EXIT

fjord_start "$WORK/data" --override num.partitions=$PARTS || { fail "broker starts"; suite_finish; exit 1; }
B="$FJORD_BOOTSTRAP"
KC=(kcat -b "$B" -m 15 -X socket.timeout.ms=15000)

# gen FROM TO FILE: key:value lines, key k<seq % 997>, value v<seq> (unique, so duplicates are visible).
gen() { awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i < b; i++) printf "k%d:v%d\n", i % 997, i }' >"$3"; }

# seen: distinct record values in all member outputs.
seen() { python3 "$CHECK" seen "$WORK"/member.*.out; }

# wait_seen N TIMEOUT_S: until N distinct values were consumed; prints the seconds waited.
wait_seen() {
  local want="$1" deadline=$(( $(date +%s) + $2 )) start got
  start=$(date +%s.%N)
  while :; do
    got="$(seen)"
    [ "$got" -ge "$want" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then log "timed out: $got of $want records consumed"; return 1; fi
    sleep 0.3
  done
  python3 -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$start"
}

start_member() {
  local i="$1"
  kcat -b "$B" -G "$GROUP" -u -f '%p %o %s\n' \
    -X client.id="member-$i" -X auto.offset.reset=earliest \
    -X session.timeout.ms=$SESSION_MS -X heartbeat.interval.ms=1000 \
    -X enable.auto.commit=true -X auto.commit.interval.ms=500 \
    "$TOPIC" >"$WORK/member.$i.out" 2>"$WORK/member.$i.err" &
  MEMBER_PIDS+=($!)
  eval "MEMBER_$i=$!"
}

# (1) 60k keyed records, three members, exactly once.
gen 0 "$N1" "$WORK/batch1.in"
if "${KC[@]}" -P -t "$TOPIC" -K ':' -l "$WORK/batch1.in" >"$WORK/produce1.out" 2>&1; then
  pass "kcat -P $N1 keyed records to a $PARTS-partition topic"
else
  fail "kcat -P $N1 keyed records" "$(tail -n 3 "$WORK/produce1.out")"
fi

t0=$(date +%s.%N)
for i in 1 2 3; do start_member "$i"; done
first=""
deadline=$(( $(date +%s) + 30 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if [ -n "$(cat "$WORK"/member.*.out 2>/dev/null | head -c 1)" ]; then
    first="$(python3 -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$t0")"
    break
  fi
  sleep 0.1
done
log "first record after ${first:-never}s (default group.initial.rebalance.delay.ms=3000)"
if [ -n "$first" ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= $FIRST_RECORD_MAX_S else 1)" "$first"; then
  pass "new group with the default 3 s initial rebalance delay: first record within ${FIRST_RECORD_MAX_S}s (${first}s)"
else
  fail "new group: first record within ${FIRST_RECORD_MAX_S}s" "got ${first:-none in 30s}"
fi

if secs="$(wait_seen "$N1" 60)"; then
  pass "three kcat -G members consumed $N1 records (${secs}s)"
else
  fail "three kcat -G members consume $N1 records within 60s" "$(seen) consumed; see $WORK/member.*.err"
fi
sleep 1  # anything consumed twice would show up now
check "steady state: every record consumed exactly once across the three members, offsets 0..end-1" \
  python3 "$CHECK" steady "$N1" $PARTS "$WORK"/member.1.out "$WORK"/member.2.out "$WORK"/member.3.out
python3 "$CHECK" steady "$N1" $PARTS "$WORK"/member.*.out 2>&1 | head -1 | sed 's/^/    /' >&2
check "DescribeGroups: 3 members, Stable, disjoint cover of $PARTS partitions" \
  "$VENV_PY" "$CHECK" describe "$B" "$GROUP" 3 $PARTS STABLE

# (2) produce 30k more; as soon as member 2 consumes some of them (its auto commit lags by up to
# auto.commit.interval.ms, so it dies with an uncommitted tail) kill -9 it; produce 3k more so its
# partitions must be consumed by the survivors.
killed_parts="$(python3 "$CHECK" owned "$WORK/member.2.out")"
before2="$(wc -l <"$WORK/member.2.out")"
gen "$N1" $((N1 + N2)) "$WORK/batch2.in"
if "${KC[@]}" -P -t "$TOPIC" -K ':' -l "$WORK/batch2.in" >"$WORK/produce2.out" 2>&1; then
  pass "kcat -P $N2 more records"
else
  fail "kcat -P $N2 more records" "$(tail -n 3 "$WORK/produce2.out")"
fi
deadline=$(( $(date +%s) + 10 ))
while [ "$(wc -l <"$WORK/member.2.out")" -le "$before2" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.02; done
# shellcheck disable=SC2154
kill -KILL "$MEMBER_2"; wait "$MEMBER_2" 2>/dev/null
t_kill=$(date +%s.%N)
log "member 2 (pid $MEMBER_2, partitions $killed_parts) killed with SIGKILL after consuming $(( $(wc -l <"$WORK/member.2.out") - before2 )) of the new records"
gen $((N1 + N2)) $((N1 + N2 + N3)) "$WORK/batch3.in"
if "${KC[@]}" -P -t "$TOPIC" -K ':' -l "$WORK/batch3.in" >"$WORK/produce3.out" 2>&1; then
  pass "kcat -P $N3 more records after the kill"
else
  fail "kcat -P $N3 more records after the kill" "$(tail -n 3 "$WORK/produce3.out")"
fi
TOTAL=$((N1 + N2 + N3))
limit=$(( SESSION_MS / 1000 + MARGIN_S ))
if wait_seen "$TOTAL" "$limit" >/dev/null; then
  secs="$(python3 -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$t_kill")"
  pass "after kill -9 of a member, all $TOTAL records consumed within session timeout + ${MARGIN_S}s (${secs}s after the kill)"
else
  fail "after kill -9 of a member, all records consumed within ${limit}s of the kill" "$(seen) of $TOTAL"
fi
python3 "$CHECK" failover "$TOTAL" "$WORK/member.2.out" "$WORK/member.1.out" "$WORK/member.3.out" 2>&1 | tail -1 | sed 's/^/    /' >&2
check "killed member's partitions ($killed_parts) moved to the survivors; none missing, duplicates only from its uncommitted tail" \
  python3 "$CHECK" failover "$TOTAL" "$WORK/member.2.out" "$WORK/member.1.out" "$WORK/member.3.out"
check "DescribeGroups after the kill: 2 members, Stable, disjoint cover of $PARTS partitions" \
  "$VENV_PY" "$CHECK" describe "$B" "$GROUP" 2 $PARTS STABLE

# (3) survivors leave (close commits); committed offsets == log end offsets.
sleep 1.5  # > auto.commit.interval.ms
# shellcheck disable=SC2154
for pid in "$MEMBER_1" "$MEMBER_3"; do kill -TERM "$pid" 2>/dev/null; done
exited=1
deadline=$(( $(date +%s) + 20 ))
for pid in "$MEMBER_1" "$MEMBER_3"; do
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then exited=0; break; fi
    sleep 0.1
  done
done
if [ "$exited" -eq 1 ]; then pass "surviving members exit on SIGTERM (consumer close, LeaveGroup)"; else fail "surviving members exit on SIGTERM within 20s"; fi
members_kill
check "committed offsets == log end offsets on all $PARTS partitions" \
  "$VENV_PY" "$CHECK" committed "$B" "$GROUP" "$TOPIC" $PARTS
check "DescribeGroups after every member left: Empty, 0 members" \
  "$VENV_PY" "$CHECK" describe "$B" "$GROUP" 0 $PARTS EMPTY

suite_finish
