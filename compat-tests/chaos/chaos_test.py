#!/usr/bin/env python3
"""Hostile cases against a release broker, each reported as a row: what was done, what Kafka's
promise says must hold, what Fjord did.

Cases (names for --case):
  full-disk   log.dirs on a small ext4 file system (a loop device): fill it, produce acks=all until the
              appends fail, then kill -9 while full, SIGTERM while full, delete a topic while full,
              free space and produce again; every acknowledged record must be there at its offset
              each time, no offset may hold two records, and appends must work again.
              Skipped, with the reason, where no loop device can be mounted (not root, a container).
  crafted-batches
              record batches whose header lies about its records (counts of 2^31-1, 1,000,000, 2 with
              one record; too few; bad lengths, varints, offset deltas; garbage and cut-off compressed
              streams) and compression bombs (1 GiB in a 50 KB zstd batch), to a normal and a compacted
              topic, sent by examples/hostile: each gets Kafka's error code (INVALID_RECORD 87 where
              Kafka gives it) and leaves the high watermark where it was, valid batches still work,
              the broker stays up and its peak memory stays small.
  huge-admin  CreateTopics with 30,000 partitions and CreatePartitions to 100,000: refused up front as
              Kafka refuses them, nothing created, and the broker keeps serving.
  many-partitions
              thousands of partitions holding a little data, kill -9, restart: the broker serves again
              quickly (recovery of untouched partitions costs nothing), and a SIGTERM stop is quick.
  group-restart
              two consumers in one group commit while the broker restarts (SIGTERM, then kill -9): their
              next commits succeed with the same member ids, and no rebalance happens.

--long runs the long form (a larger file system, longer produce phases); the default is the short
form CI runs. Prints a table and "N passed, N failed"; exits non-zero on any failure.
Usage: chaos_test.py WORK_DIR [--long] [--case NAME ...]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from fjord_broker import Broker  # noqa: E402
from helpers import create_topic, read_all  # noqa: E402

ROWS = []  # (case, check, expected, got, status)


def row(case, check, expected, got, ok):
    status = "PASS" if ok is True else ("SKIP" if ok is None else "FAIL")
    ROWS.append((case, check, expected, str(got), status))
    print("%s %s: %s (expected %s, got %s)" % (status, case, check, expected, got), flush=True)
    return ok


def log(*a):
    print("[chaos]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# full-disk

class SmallFs:
    """An ext4 image of `mib` MiB mounted on a loop device under `work`; unmounted by close()."""

    def __init__(self, work, mib):
        self.img = work / "fs.img"
        self.mnt = work / "mnt"
        self.mib = mib
        self.mounted = False

    def open(self):
        if os.geteuid() != 0:
            return "not root: mounting a loop device needs root"
        if shutil.which("mkfs.ext4") is None:
            return "mkfs.ext4 not found (Debian package e2fsprogs)"
        self.mnt.mkdir(parents=True, exist_ok=True)
        with open(self.img, "wb") as f:
            f.truncate(self.mib << 20)
        r = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(self.img)], capture_output=True, text=True)
        if r.returncode != 0:
            return "mkfs.ext4 failed: %s" % r.stderr.strip()
        r = subprocess.run(["mount", "-o", "loop", str(self.img), str(self.mnt)], capture_output=True, text=True)
        if r.returncode != 0:
            return "cannot mount a loop device here: %s" % r.stderr.strip()
        self.mounted = True
        return None

    def free_bytes(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def close(self):
        if self.mounted:
            subprocess.run(["umount", str(self.mnt)], check=False)
            self.mounted = False
        if self.img.exists():
            self.img.unlink()


class AckTracker:
    """Delivery reports of one producer: value -> (partition, offset) of each acknowledgment."""

    def __init__(self):
        self.acked = {}
        self.errors = {}

    def __call__(self, err, msg):
        if err is not None:
            code = err.name()
            self.errors[code] = self.errors.get(code, 0) + 1
        else:
            self.acked[msg.value()] = (msg.partition(), msg.offset())


def producer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "message.send.max.retries": 0,
        "linger.ms": 5,
        "message.timeout.ms": 15000,
    }
    conf.update(extra)
    return Producer(conf)


def produce_until_errors(bootstrap, topic, seq0, tracker, seconds_after_first_error, max_seconds, rate):
    """Produces 1 KiB records value=seq (padded) at about `rate`/s until errors have come for
    `seconds_after_first_error` or `max_seconds` passed. Returns the next seq."""
    p = producer(bootstrap)
    seq = seq0
    start = time.monotonic()
    first_error = None
    while True:
        now = time.monotonic()
        if tracker.errors and first_error is None:
            first_error = now
        if first_error is not None and now - first_error > seconds_after_first_error:
            break
        if now - start > max_seconds:
            break
        for _ in range(max(1, rate // 100)):
            v = ("%012d" % seq).encode() + b"." * 1012
            try:
                p.produce(topic, value=v, on_delivery=tracker)
            except BufferError:
                p.poll(0.05)
                continue
            seq += 1
        p.poll(0.01)
        time.sleep(0.01)
    p.flush(30)
    return seq


def check_acked(case, step, bootstrap, topic, partitions, tracker):
    """Every acknowledged record is at its offset; every offset holds one record; the consumer
    reaches the high watermark."""
    try:
        got = read_all(bootstrap, topic, list(range(partitions)), timeout_s=60)
    except Exception as e:  # noqa: BLE001 - reported as the row's result
        return row(case, step + ": consumers reach the high watermark", "every partition read to its end", repr(e), False)
    at = {}
    for p, msgs in got.items():
        for m in msgs:
            at[(p, m.offset())] = m.value()
    missing = sum(1 for v, po in tracker.acked.items() if at.get(po) != v)
    offsets_ok = all([m.offset() for m in msgs] == list(range(msgs[0].offset(), msgs[0].offset() + len(msgs)))
                     for msgs in got.values() if msgs)
    row(case, step + ": acknowledged records at their offsets", "0 missing of %d" % len(tracker.acked),
        "%d missing" % missing, missing == 0)
    return row(case, step + ": offsets contiguous, one record each", "contiguous", "contiguous" if offsets_ok else "gaps or repeats", offsets_ok)


def full_disk(work, long_form):
    # The io_uring backend (the default where the kernel allows it) and the portable one.
    for backend in ("uring", "std"):
        full_disk_on(work / backend, long_form, backend)


def full_disk_on(work, long_form, backend):
    case = "full-disk (%s)" % backend
    fs = SmallFs(work, 512 if long_form else 160)
    why = fs.open()
    if why:
        row(case, "small ext4 file system on a loop device", "mounted", why, None)
        return
    broker = Broker(fs.mnt / "data", work / "logs",
                    overrides=["log.segment.bytes=16777216", "auto.create.topics.enable=false", "io.backend=" + backend])
    try:
        broker.start()
        bs = broker.bootstrap
        # Fill most of the disk with one topic, fast.
        create_topic(bs, "filler", 1)
        filler = producer(bs, **{"acks": "1", "linger.ms": 20, "batch.size": 1000000})
        room = fs.free_bytes() - (24 << 20)
        chunk = b"f" * 100000
        for _ in range(max(0, room // len(chunk))):
            while True:
                try:
                    filler.produce("filler", value=chunk)
                    break
                except BufferError:
                    filler.poll(0.05)
        filler.flush(60)
        log("filler written; %d MiB free" % (fs.free_bytes() >> 20))

        topic = "acked"
        create_topic(bs, topic, 3)
        tracker = AckTracker()
        seq = produce_until_errors(bs, topic, 0, tracker, 25 if long_form else 4, 300 if long_form else 60, 5000)
        errors = dict(tracker.errors)
        row(case, "producers get errors once the disk is full", "KAFKA_STORAGE_ERROR", errors or "no error", "KAFKA_STORAGE_ERROR" in errors)
        check_acked(case, "while full", bs, topic, 3, tracker)

        broker.kill9()
        broker.start()
        check_acked(case, "kill -9 while full, restart", bs, topic, 3, tracker)

        seq = produce_until_errors(bs, topic, seq, tracker, 2, 10, 2000)
        rc = broker.stop()
        row(case, "SIGTERM while full", "exits", "rc=%s" % rc, rc is not None)
        broker.start()
        check_acked(case, "SIGTERM while full, restart", bs, topic, 3, tracker)

        log_lines = sum(1 for f in broker.log_dir.glob("fjord.*.log")
                        for line in f.read_text(errors="replace").splitlines() if "ERROR" in line)
        before = fs.free_bytes()
        a = AdminClient({"bootstrap.servers": bs})
        try:
            a.delete_topics(["filler"], request_timeout=15)["filler"].result(timeout=20)
            deleted = "deleted"
        except Exception as e:  # noqa: BLE001
            deleted = repr(e)
        row(case, "DeleteTopics on a full disk", "deleted", deleted, deleted == "deleted")
        time.sleep(1)
        row(case, "deleting the topic frees its space", "> 20 MiB more free", "%d MiB more" % ((fs.free_bytes() - before) >> 20), fs.free_bytes() - before > (20 << 20))

        fresh = AckTracker()
        p = producer(bs)
        for i in range(2000):
            p.produce(topic, value=("%012d" % (seq + i)).encode() + b"+" * 1012, on_delivery=fresh)
        p.flush(30)
        row(case, "appends work again once space is freed", "2000 acknowledged", "%d acknowledged, errors %s" % (len(fresh.acked), fresh.errors), len(fresh.acked) == 2000)
        tracker.acked.update(fresh.acked)
        check_acked(case, "after freeing", bs, topic, 3, tracker)
        row(case, "ERROR log lines while full (rate-limited)", "< 100", log_lines, log_lines < 100)
        rc = broker.stop()
        broker.start()
        check_acked(case, "clean restart after freeing", bs, topic, 3, tracker)
    finally:
        broker.kill9()
        fs.close()


# ---------------------------------------------------------------------------------------------
# crafted-batches

HOSTILE_BIN = os.environ.get("FJORD_HOSTILE_BIN", str(HERE.parents[1] / "target/release/examples/hostile"))

# The code each case gets (Kafka 4.0's answer, or where Fjord deliberately differs, noted in
# src/records/walk.rs); cases not named here are the valid batches, which must succeed.
EXPECTED_PREFIX = [
    ("lying-count", 87), ("count-too-small", 87), ("length-", 87), ("truncated-", 87), ("garbage-", 87),
    ("offset-deltas-0-0-2-zstd", 87), ("offset-deltas-0-0-2-compact-zstd", 87), ("offset-deltas-1-2-3-lz4", 87),
    ("offset-deltas-", 0), ("zstd-bomb-records-compact", 0), ("zstd-bomb-trailing", 87), ("zstd-bomb", 10),
    ("record-timestamp-ahead", 32),
]


def expected_code(case):
    for prefix, code in EXPECTED_PREFIX:
        if case.startswith(prefix):
            return code
    return 0


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def crafted_batches(work, long_form):
    case = "crafted-batches"
    if not os.access(HOSTILE_BIN, os.X_OK):
        row(case, "examples/hostile built", HOSTILE_BIN, "missing (cargo build --release --example hostile)", False)
        return
    broker = Broker(work / "data", work / "logs")
    try:
        broker.start()
        r = subprocess.run([HOSTILE_BIN, "--bootstrap", broker.bootstrap], capture_output=True, text=True, timeout=600)
        results = []
        for line in r.stdout.splitlines():
            if not line.startswith("case="):
                continue
            f = dict(kv.split("=", 1) for kv in line.split(" message=")[0].split() if "=" in kv)
            f["error"] = f.get("error", "-2") if f.get("error", "").lstrip("-").isdigit() else "-2"
            f.setdefault("hw_before", "?")
            f.setdefault("hw_after", "??")
            results.append(f)
        row(case, "the sender ran every case", "> 40 cases, exit 0", "%d cases, exit %d" % (len(results), r.returncode),
            len(results) > 40 and r.returncode == 0)
        wrong = ["%s: %s" % (f["case"], f["error"]) for f in results if int(f["error"]) != expected_code(f["case"])]
        row(case, "each case gets Kafka's error code", "all as expected", wrong or "all as expected", not wrong)
        moved = [f["case"] for f in results if int(f["error"]) != 0 and f["hw_before"] != f["hw_after"]]
        row(case, "refused batches leave the high watermark", "unmoved", moved or "unmoved", not moved)
        lying = [f for f in results if f["case"] == "lying-count"]
        row(case, "a count of 2^31-1 with one record", "INVALID_RECORD, high watermark unmoved",
            ["error %s, hw %s -> %s" % (f["error"], f["hw_before"], f["hw_after"]) for f in lying],
            bool(lying) and all(f["error"] == "87" and f["hw_before"] == f["hw_after"] for f in lying))
        alive = broker.proc is not None and broker.proc.poll() is None
        row(case, "the broker is still up", "up", "up" if alive else "exited rc=%s" % broker.proc.poll(), alive)
        if alive:
            rss = peak_rss_mib(broker.proc.pid)
            row(case, "broker peak memory over the bombs", "< 200 MiB", "%d MiB" % rss, 0 < rss < 200)
    finally:
        broker.kill9()


# ---------------------------------------------------------------------------------------------
# huge-admin

def huge_admin(work, long_form):
    from confluent_kafka.admin import NewPartitions, NewTopic
    case = "huge-admin"
    broker = Broker(work / "data", work / "logs")
    try:
        broker.start()
        bs = broker.bootstrap
        a = AdminClient({"bootstrap.servers": bs})
        started = time.monotonic()
        try:
            a.create_topics([NewTopic("huge", num_partitions=30000, replication_factor=1)],
                            request_timeout=60)["huge"].result(timeout=90)
            got = "created"
        except Exception as e:  # noqa: BLE001
            got = e.args[0].name() if e.args and hasattr(e.args[0], "name") else repr(e)
        row(case, "CreateTopics with 30,000 partitions", "POLICY_VIOLATION, at once",
            "%s in %.1f s" % (got, time.monotonic() - started), got == "POLICY_VIOLATION" and time.monotonic() - started < 5)
        dirs = [d for d in (work / "data").iterdir() if d.name.startswith("huge-")]
        row(case, "nothing of the refused topic is left", "0 partition dirs", len(dirs), not dirs)

        create_topic(bs, "grow", 1)
        started = time.monotonic()
        try:
            a.create_partitions([NewPartitions("grow", 100000)], request_timeout=60)["grow"].result(timeout=90)
            got = "created"
        except Exception as e:  # noqa: BLE001
            got = e.args[0].name() if e.args and hasattr(e.args[0], "name") else repr(e)
        row(case, "CreatePartitions to 100,000", "POLICY_VIOLATION, at once",
            "%s in %.1f s" % (got, time.monotonic() - started), got == "POLICY_VIOLATION" and time.monotonic() - started < 5)
        md = a.list_topics(timeout=10)
        row(case, "the broker still serves, partitions unchanged", "grow has 1 partition",
            len(md.topics["grow"].partitions), len(md.topics["grow"].partitions) == 1)
    finally:
        broker.kill9()


# ---------------------------------------------------------------------------------------------
# many-partitions

def time_to_serve(broker, timeout_s=120):
    """Starts the broker and returns seconds until a Metadata request is answered."""
    started = time.monotonic()
    broker.start(timeout_s=timeout_s)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.list_topics(timeout=timeout_s)
    return time.monotonic() - started


def many_partitions(work, long_form):
    from confluent_kafka.admin import NewTopic
    case = "many-partitions"
    topics, per_topic = (50, 100) if long_form else (20, 100)
    total = topics * per_topic
    broker = Broker(work / "data", work / "logs")
    try:
        broker.start()
        bs = broker.bootstrap
        a = AdminClient({"bootstrap.servers": bs})
        fs = a.create_topics([NewTopic("p%03d" % t, num_partitions=per_topic, replication_factor=1)
                              for t in range(topics)], request_timeout=120)
        for f in fs.values():
            f.result(timeout=180)
        tracker = AckTracker()
        p = producer(bs, **{"message.send.max.retries": 5})
        for i in range(20000):
            p.produce("p%03d" % (i % topics), value=b"%d" % i, partition=i % per_topic, on_delivery=tracker)
            if i % 1000 == 0:
                p.poll(0)
        p.flush(60)
        row(case, "records acknowledged across %d partitions" % total, "20000", len(tracker.acked), len(tracker.acked) == 20000)

        broker.kill9()
        secs = time_to_serve(broker)
        row(case, "serving again after kill -9 (%d partitions)" % total, "< 1 s", "%.2f s" % secs, secs < 1.0)
        started = time.monotonic()
        rc = broker.stop(timeout_s=60)
        stop_s = time.monotonic() - started
        row(case, "SIGTERM stop (%d partitions)" % total, "exit 0 in < 5 s", "rc=%s in %.2f s" % (rc, stop_s), rc == 0 and stop_s < 5)
        secs = time_to_serve(broker)
        row(case, "serving again after a clean stop", "< 1 s", "%.2f s" % secs, secs < 1.0)
        got = read_all(bs, "p000", list(range(per_topic)), timeout_s=60)
        n = sum(len(v) for v in got.values())
        want = sum(1 for (po) in tracker.acked.values())  # every topic got the same share
        row(case, "records of one topic read back", "%d" % (want // topics), n, n == want // topics)
    finally:
        broker.kill9()


# ---------------------------------------------------------------------------------------------
# group-restart

def group_restart(work, long_form):
    from confluent_kafka import Consumer, KafkaException
    case = "group-restart"
    broker = Broker(work / "data", work / "logs", overrides=["group.initial.rebalance.delay.ms=0"])
    consumers = []
    try:
        broker.start()
        bs = broker.bootstrap
        create_topic(bs, "g", 4)
        p = producer(bs)
        for i in range(4000):
            p.produce("g", value=b"%d" % i, partition=i % 4)
        p.flush(30)
        assigns = []

        def member(name):
            c = Consumer({"bootstrap.servers": bs, "group.id": "survivors", "enable.auto.commit": False,
                          "auto.offset.reset": "earliest", "session.timeout.ms": 30000,
                          "heartbeat.interval.ms": 1000, "reconnect.backoff.max.ms": 500})
            c.subscribe(["g"], on_assign=lambda _c, parts: assigns.append((name, len(parts))))
            return c

        consumers = [member("a"), member("b")]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({n for n, k in assigns if k}) < 2:
            for c in consumers:
                c.poll(0.2)
        settled = len(assigns)
        row(case, "two members share the partitions", "both assigned", assigns, len({n for n, k in assigns if k}) == 2)

        for how in ("SIGTERM", "kill -9"):
            broker.stop() if how == "SIGTERM" else broker.kill9()
            broker.start()
            p = producer(bs)
            for i in range(400):
                p.produce("g", value=b"%d" % i, partition=i % 4)
            p.flush(30)
            ok = 0
            failures = []
            deadline = time.monotonic() + (20 if long_form else 12)
            while time.monotonic() < deadline:
                for c in consumers:
                    m = c.poll(0.2)
                    if m is not None and not m.error():
                        try:
                            c.commit(message=m, asynchronous=False)
                            ok += 1
                        except KafkaException as e:
                            failures.append(e.args[0].name())
            row(case, "commits after a broker %s restart" % how, "succeed, no UNKNOWN_MEMBER_ID",
                "%d ok, failures %s" % (ok, sorted(set(failures))), ok > 0 and not failures)
            row(case, "rebalances after a broker %s restart" % how, "none",
                "%d" % (len(assigns) - settled), len(assigns) == settled)
            settled = len(assigns)
    finally:
        for c in consumers:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        broker.kill9()


CASES = {"full-disk": full_disk, "crafted-batches": crafted_batches, "huge-admin": huge_admin, "many-partitions": many_partitions, "group-restart": group_restart}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.case or list(CASES):
        try:
            CASES[name](work / name, args.long)
        except Exception as e:  # noqa: BLE001 - a case that breaks is a failed row, the others still run
            row(name, "case ran to its end", "no exception", repr(e), False)
    print()
    print("| case | check | expected | got | result |")
    print("|---|---|---|---|---|")
    for r in ROWS:
        print("| %s |" % " | ".join(r))
    passed = sum(1 for r in ROWS if r[4] == "PASS")
    failed = sum(1 for r in ROWS if r[4] == "FAIL")
    skipped = sum(1 for r in ROWS if r[4] == "SKIP")
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
