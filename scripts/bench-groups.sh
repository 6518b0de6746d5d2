#!/usr/bin/env bash
# Consumer-group timing: from creating a new group consumer (subscribe) to its first record, with
# Kafka's default group.initial.rebalance.delay.ms (3000) and with 0, and the time for a second
# member to join a running group and get records. confluent-kafka from compat-tests/.venv.
# Each measurement runs BENCH_RUNS times (default 5); medians go to bench/results/groups-<time>.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${BENCH_RUNS:-5}"
scripts/install-deps.sh >&2
cargo build --release >&2
mkdir -p bench/out bench/results
PY="$ROOT/compat-tests/.venv/bin/python"
out="bench/results/groups-$(date -u +%Y%m%dT%H%M%SZ).json"
"$PY" - "$ROOT/target/release/fjord" "$RUNS" "$out" <<'EOF_PY'
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

binary, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(delay_ms):
    d = tempfile.mkdtemp(dir="bench/out"); port = free_port()
    p = subprocess.Popen([binary, "--override", "fjord.http.listener=none", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={d}/data",
                          "--override", f"group.initial.rebalance.delay.ms={delay_ms}"], stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.05).close(); break
        except OSError:
            time.sleep(0.01)
    return p, d, f"127.0.0.1:{port}"

def first_record_s(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    t0 = time.monotonic(); c.subscribe([topic])
    while True:
        m = c.poll(0.05)
        if m is not None and m.error() is None:
            dt = time.monotonic() - t0; break
        if time.monotonic() - t0 > 30:
            raise SystemExit("no record within 30 s")
    return c, dt

results = {"conditions": {"client": "confluent-kafka (librdkafka 2.x) subscribe + poll", "runs": runs, "topic_partitions": 4,
                          "broker": "fjord release, single node, loopback"}}
for delay in (3000, 0):
    p, d, b = start(delay)
    try:
        admin = AdminClient({"bootstrap.servers": b})  # kept alive until the answer arrives
        admin.create_topics([NewTopic("g", 4, 1)])["g"].result()
        pr = Producer({"bootstrap.servers": b}); [pr.produce("g", b"x", partition=i % 4) for i in range(100)]; pr.flush()
        firsts, seconds = [], []
        for r in range(runs):
            c1, dt = first_record_s(b, f"grp-{delay}-{r}", "g"); firsts.append(dt)
            # A second member joining the running group: time until it owns partitions.
            c2 = Consumer({"bootstrap.servers": b, "group.id": f"grp-{delay}-{r}", "auto.offset.reset": "earliest"})
            t0 = time.monotonic(); c2.subscribe(["g"])
            while not c2.assignment() and time.monotonic() - t0 < 30:
                c1.poll(0.01); c2.poll(0.01)
            seconds.append(time.monotonic() - t0)
            c2.close(); c1.close()
        results[f"initial_delay_{delay}ms"] = {"new_group_first_record_s_median": statistics.median(firsts), "all": firsts,
                                               "second_member_assigned_s_median": statistics.median(seconds), "all_second": seconds}
        print(f"group.initial.rebalance.delay.ms={delay}: new group first record median {statistics.median(firsts):.3f} s {['%.3f' % x for x in firsts]}; "
              f"second member assigned median {statistics.median(seconds):.3f} s")
    finally:
        p.terminate(); p.wait(10); shutil.rmtree(d, ignore_errors=True)
json.dump(results, open(out, "w"), indent=2)
print("results:", out)
EOF_PY
