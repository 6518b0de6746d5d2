#!/usr/bin/env python3
"""Data-safety tests with a real idempotent producer (confluent-kafka, acks=all).

1. kill -9 mid-stream: sequenced records stream into a 3-partition topic; the broker is SIGKILLed at a
   random moment with requests in flight (CRASH_KILL_CYCLES times, default 3), each time restarted on the same data dir and port while the producer keeps retrying, then the
   producer finishes. Every acknowledged record must be in the log at the offset its delivery report
   gave, per partition in acknowledgment order, and no record may appear twice (idempotent retries are
   deduplicated by the broker).
2. clean restart: after SIGTERM (which must exit 0) and a restart, topics, partition counts, topic ids,
   topic configs, watermarks and every record (key, value, headers, timestamp) are identical.

Prints PASS/FAIL lines and "N passed, N failed"; exits non-zero on any failure.
Usage: crash_test.py WORK_DIR
"""
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from confluent_kafka import Producer, TopicCollection, TopicPartition  # noqa: E402
from confluent_kafka.admin import ConfigResource, ResourceType  # noqa: E402

from fjord_broker import Broker  # noqa: E402
from helpers import admin, consumer, create_topic, read_all  # noqa: E402

KILL_CYCLES = int(os.environ.get("CRASH_KILL_CYCLES", "3"))
RESULTS = {"pass": 0, "fail": 0, "failed": []}


def check(name, ok, detail=""):
    if ok:
        RESULTS["pass"] += 1
        print("PASS", name, flush=True)
    else:
        RESULTS["fail"] += 1
        RESULTS["failed"].append(name)
        print("FAIL %s%s" % (name, (": " + detail) if detail else ""), flush=True)
    return ok


# librdkafka's own log lines (connection refused while the broker is down, ...) go through this
# logger with an [rdkafka] prefix so they are not mistaken for this suite's PASS/FAIL lines.
logging.basicConfig(stream=sys.stderr, format="[rdkafka] %(message)s")
RDKAFKA_LOG = logging.getLogger("rdkafka")


def log(*a):
    print("[crash]", *a, file=sys.stderr, flush=True)


class SequencedProducer(threading.Thread):
    """Produces value=str(seq), key=str(seq % 100) until stopped; records acks in callback order."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.topic = topic
        self.p = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "queue.buffering.max.messages": 20000,
        }, logger=RDKAFKA_LOG)
        self.acked = []   # (partition, offset, seq) in delivery-callback order
        self.errors = []  # (seq, error string)
        self.produced = 0
        self.stop_flag = threading.Event()
        self.fatal = None

    def on_delivery(self, err, msg):
        seq = int(msg.value())
        if err is not None:
            self.errors.append((seq, str(err)))
            if err.fatal():
                self.fatal = str(err)
        else:
            self.acked.append((msg.partition(), msg.offset(), seq))

    def run(self):
        seq = 0
        while not self.stop_flag.is_set() and self.fatal is None:
            try:
                self.p.produce(self.topic, key=str(seq % 100).encode(), value=str(seq).encode(),
                               on_delivery=self.on_delivery)
                seq += 1
                self.produced = seq
                if seq % 50 == 0:
                    self.p.poll(0)
                    time.sleep(0.001)  # a steady stream, not one giant burst
            except BufferError:
                self.p.poll(0.05)

    def finish(self, timeout_s=90):
        self.stop_flag.set()
        self.join()
        return self.p.flush(timeout_s)


def crash_mid_stream(broker):
    broker.start()
    topic = "crash-seq"
    create_topic(broker.bootstrap, topic, 3)

    prod = SequencedProducer(broker.bootstrap, topic)
    prod.start()
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 1_000_000))
    rnd = random.Random(seed)
    log("kill cycles %d, timing seed %d (CRASH_SEED=%d repeats the timing)" % (KILL_CYCLES, seed, seed))
    for cycle in range(1, KILL_CYCLES + 1):
        # Let the stream run, then SIGKILL at a random moment with requests in flight.
        target = len(prod.acked) + 10000
        deadline = time.monotonic() + 10
        while len(prod.acked) < target and time.monotonic() < deadline and prod.fatal is None:
            time.sleep(0.02)
        time.sleep(rnd.uniform(0.05, 0.6))
        acked_before_kill = len(prod.acked)
        broker.kill9()
        log("cycle %d: SIGKILL after %d acks (%d produced, %d in flight)"
            % (cycle, acked_before_kill, prod.produced, prod.produced - acked_before_kill))
        check("cycle %d: producer was acknowledging records before the SIGKILL" % cycle,
              acked_before_kill >= target - 10000 + 1 and prod.fatal is None, "fatal=%s" % prod.fatal)
        time.sleep(rnd.uniform(0.3, 1.5))  # the producer keeps retrying against a dead port
        try:
            broker.start(timeout_s=30)
        except RuntimeError as e:
            check("cycle %d: broker restarts on the same data dir after SIGKILL" % cycle, False, str(e))
            prod.finish(5)
            return
        check("cycle %d: broker restarts on the same data dir after SIGKILL" % cycle, True)
    time.sleep(2.0)  # keep streaming after the restart
    remaining = prod.finish(90)
    log("producer done: produced %d, acked %d, errors %d, unflushed %d"
        % (prod.produced, len(prod.acked), len(prod.errors), remaining))

    check("producer flushed everything after the restart", remaining == 0, "%d still queued" % remaining)
    check("no delivery errors (retries succeeded after the restart)", not prod.errors,
          "%d errors, first: %s" % (len(prod.errors), prod.errors[:3]))
    check("every produced record was acknowledged", len(prod.acked) == prod.produced,
          "acked %d of %d" % (len(prod.acked), prod.produced))

    got = read_all(broker.bootstrap, topic, [0, 1, 2], timeout_s=120)
    log_pos = {}
    dups = []
    for part, msgs in got.items():
        for m in msgs:
            seq = int(m.value())
            if seq in log_pos:
                dups.append((seq, log_pos[seq], (part, m.offset())))
            log_pos[seq] = (part, m.offset())
            if m.key() != str(seq % 100).encode():
                dups.append(("bad key", seq, m.key()))
    check("no record appears twice in the log", not dups, "%d duplicates, e.g. %s" % (len(dups), dups[:5]))

    missing = [(p, o, s) for p, o, s in prod.acked if s not in log_pos]
    check("every acknowledged record survived the SIGKILL", not missing,
          "%d acked records missing, e.g. %s" % (len(missing), missing[:5]))
    moved = [(p, o, s, log_pos[s]) for p, o, s in prod.acked if s in log_pos and log_pos[s] != (p, o)]
    check("every acknowledged record sits at the offset its delivery report gave", not moved,
          "%d differ, e.g. (partition, acked offset, seq, actual) %s" % (len(moved), moved[:5]))
    order_bad = []
    for part in range(3):
        acked_offsets = [o for p, o, _ in prod.acked if p == part]
        if acked_offsets != sorted(acked_offsets):
            order_bad.append(part)
        log_seqs = [int(m.value()) for m in got[part]]
        if log_seqs != sorted(log_seqs):
            order_bad.append("log-%d" % part)
    check("per partition, the log is in acknowledgment (= send) order", not order_bad, str(order_bad))
    total = sum(len(v) for v in got.values())
    check("log holds exactly the acknowledged records", total == len(prod.acked),
          "log %d, acked %d" % (total, len(prod.acked)))


def snapshot(bootstrap, topics):
    a = admin(bootstrap)
    md = a.list_topics(timeout=10)
    snap = {"topics": {}, "ids": {}, "configs": {}, "data": {}, "watermarks": {}}
    for t in topics:
        snap["topics"][t] = sorted(md.topics[t].partitions) if t in md.topics else None
    # Topic ids: DescribeTopics (Metadata v10+ carries them). A real Kafka always has a non-zero id.
    desc = a.describe_topics(TopicCollection(topics), request_timeout=15)
    for t, f in desc.items():
        snap["ids"][t] = str(f.result(timeout=20).topic_id)
    for res, f in a.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics],
                                     request_timeout=15).items():
        snap["configs"][res.name] = f.result(timeout=20)["retention.ms"].value
    c = consumer(bootstrap)
    try:
        for t in topics:
            for p in snap["topics"][t] or []:
                snap["watermarks"][(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
    finally:
        c.close()
    for t in topics:
        parts = snap["topics"][t] or []
        got = read_all(bootstrap, t, parts, timeout_s=120)
        snap["data"][t] = {p: [(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()) for m in msgs]
                           for p, msgs in got.items()}
    return snap


def clean_restart(broker):
    if broker.proc is None:
        broker.start()
    extra = "clean-five"
    create_topic(broker.bootstrap, extra, 5, {"retention.ms": "7200000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "compression.type": "zstd"},
                 logger=RDKAFKA_LOG)
    for i in range(2000):
        p.produce(extra, key=b"%d" % i, value=b"payload-%d" % i, headers=[("h", b"%d" % i)],
                  timestamp=1_700_000_000_000 + i)
    check("records for the clean-restart topic delivered", p.flush(30) == 0)
    del p  # close the producer before the broker stops
    topics = ["crash-seq", extra]
    before = snapshot(broker.bootstrap, topics)
    rc = broker.stop(timeout_s=20)
    check("broker exits 0 on SIGTERM", rc == 0, "rc=%s; log tail:\n%s" % (rc, broker.log_tail(10)))
    broker.start(timeout_s=30)
    after = snapshot(broker.bootstrap, topics)
    check("topics and partition counts identical after clean restart",
          before["topics"] == after["topics"], "%s vs %s" % (before["topics"], after["topics"]))
    zero = "AAAAAAAAAAAAAAAAAAAAAA"
    check("topic ids are set (non-zero)", all(v and v != zero for v in before["ids"].values()), str(before["ids"]))
    check("topic ids identical after clean restart", before["ids"] == after["ids"],
          "%s vs %s" % (before["ids"], after["ids"]))
    check("topic configs identical after clean restart", before["configs"] == after["configs"],
          "%s vs %s" % (before["configs"], after["configs"]))
    check("watermarks identical after clean restart", before["watermarks"] == after["watermarks"],
          "%s vs %s" % (before["watermarks"], after["watermarks"]))
    same = before["data"] == after["data"]
    check("every record (offset, key, value, headers, timestamp) identical after clean restart", same,
          "" if same else "counts before %s after %s" % (
              {t: {p: len(v) for p, v in d.items()} for t, d in before["data"].items()},
              {t: {p: len(v) for p, v in d.items()} for t, d in after["data"].items()}))
    rc = broker.stop(timeout_s=20)
    check("broker exits 0 on SIGTERM after restart", rc == 0, "rc=%s" % rc)


def main():
    # SIGTERM (e.g. from `timeout` in scripts/compat.sh) unwinds through the finally that stops the broker.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
    out = Path(sys.argv[1] if len(sys.argv) > 1 else HERE / "out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    # 1 MiB segments: recovery after each SIGKILL walks many segments, not just one.
    broker = Broker(out / "data", out, overrides=["num.partitions=3", "log.segment.bytes=1048576"])
    try:
        try:
            crash_mid_stream(broker)
        except Exception as e:  # a broken phase is a failure, not a crash of the harness
            check("kill -9 mid-stream phase ran to completion", False, repr(e))
        try:
            clean_restart(broker)
        except Exception as e:
            check("clean restart phase ran to completion", False, repr(e))
    finally:
        broker.stop()
        if RESULTS["fail"]:
            print("crash failures:", "; ".join(RESULTS["failed"]))
            for f in sorted(out.glob("fjord.*.log")):
                print("broker log %s (tail):" % f)
                print("\n".join(f.read_text(errors="replace").splitlines()[-15:]))
        print("crash: %d passed, %d failed" % (RESULTS["pass"], RESULTS["fail"]))
    sys.exit(1 if RESULTS["fail"] else 0)


if __name__ == "__main__":
    main()
