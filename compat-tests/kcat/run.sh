#!/usr/bin/env bash
# kcat (Debian's, librdkafka 2.0.x) against Fjord: metadata, 100k keyed records with headers on a
# 3-partition auto-created topic read back byte-identical and in order, every compression codec,
# offsets-for-times (-Q) and relative offsets (-o -N).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
suite_init kcat

command -v kcat >/dev/null || die "kcat not installed (scripts/install-deps.sh)"
DATA="$HERE/kcat_data.py"
N="${KCAT_RECORDS:-100000}"
CODEC_N="${KCAT_CODEC_RECORDS:-5000}"
PARTS=3
HDR_ARGS=(-H fjord-test=kcat -H origin=compat)
HDR_EXPECT="fjord-test=kcat,origin=compat"
FMT="$(python3 "$DATA" format)"

# 4 MiB segments: the 100k records (~55 MB) span many segment rolls.
fjord_start "$WORK/data" --override num.partitions=$PARTS --override log.segment.bytes=4194304 || { fail "broker starts"; suite_finish; exit 1; }
B="$FJORD_BOOTSTRAP"
KC=(kcat -b "$B" -m 15 -X socket.timeout.ms=15000)

# produce TOPIC INPUT_FILE [kcat args...]: keyed records split on \x1f (key) and \x1e (record).
produce() {
  local topic="$1" input="$2"; shift 2
  "${KC[@]}" -P -t "$topic" -K '\x1f' -D '\x1e' "${HDR_ARGS[@]}" -l "$@" "$input"
}
# consume TOPIC OUT_FILE: everything from the beginning of every partition, then exit.
consume() {
  timeout 120 "${KC[@]}" -C -t "$1" -o beginning -e -q -f "$FMT" >"$2"
}

# (a) metadata: broker listed; a topic auto-created by producing to it has num.partitions partitions.
printf 'hello\n' | "${KC[@]}" -P -t auto-created >"$WORK/auto.out" 2>&1
check "kcat -P to a new topic auto-creates it" test $? -eq 0
"${KC[@]}" -L -J >"$WORK/meta.json" 2>"$WORK/meta.err"
check "kcat -L lists the broker and the auto-created topic with $PARTS partitions" \
  python3 "$DATA" meta "$WORK/meta.json" auto-created $PARTS

# (b) 100k keyed records with headers, varied sizes, binary keys/values.
python3 "$DATA" gen "$WORK/records.in" "$N" 42
if produce records "$WORK/records.in" >"$WORK/produce.out" 2>&1; then
  pass "kcat -P $N keyed records with headers"
else
  fail "kcat -P $N keyed records with headers" "see $WORK/produce.out"; tail -n 5 "$WORK/produce.out"
fi
if consume records "$WORK/records.out" 2>"$WORK/consume.err"; then
  check "kcat -C reads $N records back byte-identical, per-partition in send order" \
    python3 "$DATA" verify "$WORK/records.out" "$N" 42 "$HDR_EXPECT" $PARTS "$WORK/records.ts.json"
else
  fail "kcat -C reads $N records back" "$(tail -n 3 "$WORK/consume.err")"
fi

# (c) each codec, with lingering so batches hold many records.
python3 "$DATA" gen "$WORK/codec.in" "$CODEC_N" 7
for z in gzip snappy lz4 zstd; do
  if produce "codec-$z" "$WORK/codec.in" -z "$z" -X linger.ms=20 >"$WORK/codec-$z.produce.out" 2>&1 &&
     consume "codec-$z" "$WORK/codec-$z.out" 2>"$WORK/codec-$z.err"; then
    check "codec $z: $CODEC_N records round trip identical" \
      python3 "$DATA" verify "$WORK/codec-$z.out" "$CODEC_N" 7 "$HDR_EXPECT" $PARTS
  else
    fail "codec $z: produce/consume" "$(tail -n 3 "$WORK/codec-$z.produce.out" "$WORK/codec-$z.err" 2>/dev/null)"
  fi
done

# (d1) offsets for times: kcat -Q must return the first offset whose timestamp >= target.
if [ -s "$WORK/records.ts.json" ]; then
  for p in 0 1 2; do
    qerr=""
    while read -r target expected; do
      got="$("${KC[@]}" -Q -t "records:$p:$target" 2>&1)"
      off="$(printf '%s\n' "$got" | sed -nE 's/.*\[[0-9]+\][^0-9-]*offset (-?[0-9]+).*/\1/p' | head -1)"
      [ "$off" = "$expected" ] || qerr+="target $target: expected $expected, got '${off:-$got}'; "
    done < <(python3 "$DATA" targets "$WORK/records.ts.json" "$p")
    if [ -z "$qerr" ]; then pass "kcat -Q partition $p offsets-for-times"; else fail "kcat -Q partition $p offsets-for-times" "$qerr"; fi
  done

  # (d2) relative offsets: -o -10 on partition 0 yields the last 10 offsets.
  hw="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["0"]))' "$WORK/records.ts.json")"
  want="$(seq $((hw - 10)) $((hw - 1)) | tr '\n' ' ')"
  got="$(timeout 60 "${KC[@]}" -C -t records -p 0 -o -10 -e -q -f '%o\n' 2>&1 | tr '\n' ' ')"
  assert_eq "kcat -o -10 reads the last 10 offsets of partition 0" "$want" "$got"
else
  fail "kcat -Q / -o -N" "no timestamps: consume step failed"
fi

suite_finish
