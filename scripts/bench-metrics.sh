#!/usr/bin/env bash
# Overhead of the HTTP listener's /metrics: produce and consume throughput with /metrics scraped
# every second vs the listener off (fjord.http.listener=none), runs interleaved (off, on, off,
# on, ...) on a fresh broker each, medians printed and written as JSON under bench/results/.
# The load is kcat (librdkafka): N messages of SIZE bytes into P partitions, acks=1, then one
# consumer reading them all back.
#   scripts/bench-metrics.sh                      # release build, defaults below
#   N=500000 SIZE=200 P=4 REPEATS=5 SCRAPE_S=1 scripts/bench-metrics.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/bench-perf.sh
N=${N:-500000}
SIZE=${SIZE:-200}
P=${P:-4}
REPEATS=${REPEATS:-5}
SCRAPE_S=${SCRAPE_S:-1}
command -v kcat >/dev/null || { echo "kcat is needed (Debian package kcat)" >&2; exit 2; }
if [ -z "${FJORD_BIN:-}" ]; then cargo build --release >&2; FJORD_BIN="$ROOT/target/release/fjord"; fi
WORK=$(mktemp -d)
BROKER=""
SCRAPER=""
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null || true
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
python3 -c "import sys; line = 'x' * $SIZE + '\n'; sys.stdout.write(line * $N)" > "$WORK/messages"

# run MODE: one fresh broker; appends "MODE produce_s consume_s scrapes" to $WORK/results.
run() {
  local mode="$1" port http_port http scrapes=0
  port=$(free_port)
  if [ "$mode" = on ]; then http_port=$(free_port); http="127.0.0.1:$http_port"; else http=none; fi
  rm -rf "$WORK/data"
  "$FJORD_BIN" --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$WORK/data" \
    --override "num.partitions=$P" --override "fjord.http.listener=$http" > "$WORK/fjord-$mode.log" 2>&1 &
  BROKER=$!
  wait_port "$port"
  : > "$WORK/scrapes"
  if [ "$mode" = on ]; then
    wait_port "$http_port"
    ( while true; do curl -s -o /dev/null "http://$http/metrics" && echo >> "$WORK/scrapes"; sleep "$SCRAPE_S"; done ) &
    SCRAPER=$!
  fi
  local t0 t1 t2
  t0=$(date +%s.%N)
  kcat -P -b "127.0.0.1:$port" -t bench -X acks=1 -X linger.ms=5 -X batch.num.messages=10000 \
    -X queue.buffering.max.messages=1000000 -l "$WORK/messages"
  t1=$(date +%s.%N)
  local got
  got=$(kcat -C -b "127.0.0.1:$port" -t bench -o beginning -e -q -f '%s\n' | wc -l)
  t2=$(date +%s.%N)
  [ "$got" = "$N" ] || { echo "consumed $got of $N messages" >&2; exit 1; }
  if [ -n "$SCRAPER" ]; then kill "$SCRAPER"; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=""; fi
  scrapes=$(wc -l < "$WORK/scrapes")
  kill "$BROKER"; wait "$BROKER" 2>/dev/null || true; BROKER=""
  python3 -c "print(f'$mode {$t1 - $t0:.3f} {$t2 - $t1:.3f} $scrapes')" >> "$WORK/results"
}

printf '[bench-metrics] %s messages x %s B, %s partitions, acks=1, %s repeats, scrape every %ss; kcat\n' "$N" "$SIZE" "$P" "$REPEATS" "$SCRAPE_S" >&2
: > "$WORK/results"
for i in $(seq "$REPEATS"); do
  for mode in off on; do
    run "$mode"
    printf '[bench-metrics] run %s: %s (produce s, consume s, scrapes)\n' "$i" "$(tail -1 "$WORK/results")" >&2
  done
done
mkdir -p bench/results
out="bench/results/metrics-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$WORK/results" "$N" "$SIZE" "$P" "$REPEATS" "$SCRAPE_S" "$(git rev-parse --short HEAD)" "$out" <<'PY'
import json, statistics, sys
path, n, size, p, repeats, scrape_s, commit, out = sys.argv[1:]
n, size = int(n), int(size)
runs = [l.split() for l in open(path) if l.strip()]
res = {"conditions": {"messages": n, "message_bytes": size, "partitions": int(p), "acks": 1, "repeats": int(repeats),
                      "scrape_interval_s": float(scrape_s), "load": "kcat -P (linger.ms=5, batch.num.messages=10000), then kcat -C -e", "commit": commit},
       "modes": {}}
for mode in ("off", "on"):
    rs = [r for r in runs if r[0] == mode]
    prod = [n / float(r[1]) for r in rs]
    cons = [n / float(r[2]) for r in rs]
    res["modes"][mode] = {"produce_msgs_s": prod, "consume_msgs_s": cons, "scrapes": [int(r[3]) for r in rs],
                          "produce_median_msgs_s": statistics.median(prod), "consume_median_msgs_s": statistics.median(cons),
                          "produce_median_mb_s": statistics.median(prod) * size / 1e6, "consume_median_mb_s": statistics.median(cons) * size / 1e6}
for k in ("produce", "consume"):
    res[k + "_on_over_off"] = res["modes"]["on"][k + "_median_msgs_s"] / res["modes"]["off"][k + "_median_msgs_s"]
json.dump(res, open(out, "w"), indent=1)
for mode in ("off", "on"):
    m = res["modes"][mode]
    print(f"{mode:3} produce median {m['produce_median_msgs_s']:.0f} msg/s ({m['produce_median_mb_s']:.1f} MB/s)  consume median {m['consume_median_msgs_s']:.0f} msg/s ({m['consume_median_mb_s']:.1f} MB/s)")
print(f"on/off: produce {res['produce_on_over_off']:.3f}  consume {res['consume_on_over_off']:.3f}  ({out})")
PY
