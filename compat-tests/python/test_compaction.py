"""Log compaction (cleanup.policy=compact) seen through confluent-kafka: a compacted topic keeps the
latest value of every key with its original offset, drops deleted keys after delete.retention.ms,
refuses records without a key, and __consumer_offsets is compacted so committed offsets stay small
and survive a restart.

The broker runs its cleaner every 200 ms (log.cleaner.backoff.ms) so a pass follows each produce
within the test's patience.
"""
import os
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import WORK
from fjord_broker import Broker
from helpers import Deliveries, create_topic, read_all

KEYS = 1000
ROUNDS = 100


@pytest.fixture(scope="module")
def cbroker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("fjord-compaction"), WORK / "compaction",
               overrides=["num.partitions=1", "log.cleaner.backoff.ms=200",
                          "offsets.topic.segment.bytes=16384", "group.initial.rebalance.delay.ms=0"])
    b.start()
    yield b
    rc = b.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s):\n%s" % (rc, b.log_tail())


def produce_all(bootstrap, topic, records):
    """records: [(key, value)]; returns {offset: (key, value)} from the delivery reports."""
    d = Deliveries()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "compression.type": "lz4"})
    for k, v in records:
        while True:
            try:
                p.produce(topic, key=k, value=v, partition=0, on_delivery=d)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    assert not d.errors, d.errors[:3]
    return {off: (k, v) for _, off, k, v in d.ok}


def test_compacted_topic_keeps_the_latest_value_per_live_key_with_offsets_intact(cbroker, topic):
    b = cbroker.bootstrap
    create_topic(b, topic, 1, {"cleanup.policy": "compact", "segment.bytes": "262144",
                               "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"})
    # 100k records over 1k keys; in the last round every tenth key is deleted (tombstone).
    records = []
    for r in range(ROUNDS):
        for k in range(KEYS):
            deleted = r == ROUNDS - 1 and k % 10 == 0
            records.append((b"k%d" % k, None if deleted else b"r%d-k%d" % (r, k)))
    written = produce_all(b, topic, records)
    assert len(written) == KEYS * ROUNDS
    # Incompressible records on another key roll the segment holding the last round, so all of it
    # is cleanable.
    written.update(produce_all(b, topic, [(b"filler", os.urandom(1024)) for _ in range(600)]))
    expected = {b"k%d" % k: (None if k % 10 == 0 else b"r%d-k%d" % (ROUNDS - 1, k)) for k in range(KEYS)}

    deadline = time.monotonic() + 90
    while True:
        msgs = read_all(b, topic, [0])[0]
        keyed = [m for m in msgs if m.key() != b"filler"]
        if len(keyed) == KEYS - KEYS // 10 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Offsets are those the producer was given; nothing is rewritten.
    for m in msgs:
        assert written[m.offset()] == (m.key(), m.value()), "offset %d changed" % m.offset()
    assert [m.offset() for m in msgs] == sorted(m.offset() for m in msgs)
    # Exactly the latest value of every live key, once; deleted keys and their tombstones are gone.
    view = {m.key(): m.value() for m in keyed}
    assert len(keyed) == len(view), "a key appears twice after cleaning"
    assert view == {k: v for k, v in expected.items() if v is not None}
    # The earliest offset did not move: compaction is not retention.
    c = Consumer({"bootstrap.servers": b, "group.id": "wm"})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()
    assert (low, high) == (0, KEYS * ROUNDS + 600)


def test_compacted_topic_refuses_records_without_a_key(cbroker, topic):
    b = cbroker.bootstrap
    create_topic(b, topic, 1, {"cleanup.policy": "compact"})
    d = Deliveries()
    p = Producer({"bootstrap.servers": b, "acks": "all", "retries": 0, "enable.idempotence": False})
    p.produce(topic, value=b"no key", partition=0, on_delivery=d)
    p.produce(topic, key=b"k", value=b"keyed", partition=0, on_delivery=d)
    assert p.flush(30) == 0
    codes = sorted(e.code() for e, _, _ in d.errors)
    assert KafkaError.INVALID_RECORD in codes, d.errors
    # Whatever got in had a key.
    assert all(m.key() is not None for m in read_all(b, topic, [0])[0])


def test_consumer_offsets_are_compacted_and_the_last_commit_survives_a_restart(cbroker, topic):
    b = cbroker.bootstrap
    create_topic(b, topic, 1)
    group = "compaction-" + topic
    commits = 3000
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    try:
        for i in range(1, commits + 1):
            c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
    finally:
        c.close()

    def offsets_records():
        parts = read_all(b, "__consumer_offsets", list(range(50)))
        return sum(len(v) for v in parts.values())

    deadline = time.monotonic() + 60
    n = offsets_records()
    while n > commits // 4 and time.monotonic() < deadline:
        time.sleep(0.5)
        n = offsets_records()
    assert n <= commits // 4, "__consumer_offsets still holds %d records after %d commits" % (n, commits)

    cbroker.stop()
    cbroker.start()
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, 0)], timeout=20)
    finally:
        c.close()
    assert got[0].offset == commits
    if got[0].error:
        raise KafkaException(got[0].error)
