"""confluent-kafka (librdkafka) against Fjord: admin, idempotent produce, assign/seek consume,
watermarks, offsets-for-times, every codec. Consumer groups are not used (the broker has none yet)."""
import random
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from helpers import Deliveries, admin, consumer, create_topic, read_all


def wait_until(pred, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def producer(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    conf.update(extra)
    return Producer(conf)


def test_admin_create_list_delete_topic(bootstrap, topic):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                   config={"retention.ms": "3600000"})], request_timeout=15)
    assert fs[topic].result(timeout=20) is None

    md = a.list_topics(timeout=10)
    assert topic in md.topics
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    broker_ids = set(md.brokers)
    assert len(broker_ids) == 1
    for p in t.partitions.values():
        assert p.leader in broker_ids
        assert p.error is None

    # Creating it again is TOPIC_ALREADY_EXISTS, as on Kafka.
    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    fs = a.delete_topics([topic], operation_timeout=15)
    assert fs[topic].result(timeout=20) is None
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, what="deleted topic to disappear")


def test_admin_describe_configs_returns_topic_config(bootstrap, topic):
    a = admin(bootstrap)
    create_topic(bootstrap, topic, 3, {"retention.ms": "3600000"})
    fs = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=15)
    (res, f), = fs.items()
    entries = f.result(timeout=20)
    assert entries["retention.ms"].value == "3600000"


def test_admin_rejects_invalid_partition_count(bootstrap, topic):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=0, replication_factor=1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_idempotent_producer_10k_keys_headers_then_read_back(bootstrap, topic):
    create_topic(bootstrap, topic, 3)
    n = 10_000
    rnd = random.Random(1)
    sent = []
    d = Deliveries()
    p = producer(bootstrap)
    for i in range(n):
        key = b"key-%d" % (i % 97)
        value = b"%d:" % i + rnd.randbytes(rnd.choice([0, 10, 100, 1000, 5000]))
        headers = [("seq", str(i).encode()), ("bin", bytes([i % 256, 0, 255])), ("dup", b"a"), ("dup", b"b")]
        sent.append((key, value, headers))
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers, on_delivery=d)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert d.errors == []
    assert len(d.ok) == n

    # Per partition, delivery offsets are 0..n-1 in delivery order.
    by_part = {}
    for part, off, _, _ in d.ok:
        by_part.setdefault(part, []).append(off)
    for part, offs in by_part.items():
        assert offs == list(range(len(offs))), "partition %d offsets" % part

    got = read_all(bootstrap, topic, [0, 1, 2])
    assert sum(len(v) for v in got.values()) == n
    index = {v: i for i, (_, v, _) in enumerate(sent)}
    for part, msgs in got.items():
        seqs = []
        for m in msgs:
            i = index[m.value()]
            key, value, headers = sent[i]
            assert m.key() == key
            assert m.headers() == headers
            seqs.append(i)
        assert seqs == sorted(seqs), "partition %d not in send order" % part
        assert [m.offset() for m in msgs] == list(range(len(msgs)))
    # One key, one partition (librdkafka's default partitioner hashes the key).
    key_parts = {}
    for part, msgs in got.items():
        for m in msgs:
            assert key_parts.setdefault(m.key(), part) == part


def test_assign_with_offset_and_watermarks(bootstrap, topic):
    create_topic(bootstrap, topic, 2)
    p = producer(bootstrap)
    for i in range(50):
        p.produce(topic, value=b"v%d" % i, partition=0)
    for i in range(20):
        p.produce(topic, value=b"w%d" % i, partition=1)
    assert p.flush(30) == 0

    c = consumer(bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 50)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 20)
    finally:
        c.close()

    got = read_all(bootstrap, topic, [0], start=37)
    assert [m.offset() for m in got[0]] == list(range(37, 50))
    assert [m.value() for m in got[0]] == [b"v%d" % i for i in range(37, 50)]


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_offsets_for_times_first_offset_at_or_after_target(bootstrap, topic, codec):
    create_topic(bootstrap, topic, 1)
    base = 1_700_000_000_000
    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 50})
    n = 300
    for i in range(n):
        p.produce(topic, value=b"t%d" % i, partition=0, timestamp=base + i * 10)
        if i % 100 == 99:
            assert p.flush(30) == 0  # several batches
    assert p.flush(30) == 0

    c = consumer(bootstrap)
    try:
        cases = {
            base - 1: 0,
            base: 0,
            base + 5: 1,
            base + 1500: 150,
            base + 1501: 151,
            base + 2990: 299,
            base + 2991: -1,  # nothing at or after: Kafka answers offset -1 (librdkafka OFFSET_END)
        }
        for target, want in cases.items():
            res = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert res[0].error is None
            assert res[0].offset == want, "target %d: want %d, got %d" % (target, want, res[0].offset)
    finally:
        c.close()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(bootstrap, topic, codec):
    create_topic(bootstrap, topic, 3)
    rnd = random.Random(codec)
    sent = [(b"k%d" % (i % 10), b"%d|" % i + (b"x" * rnd.randint(0, 3000)) + rnd.randbytes(rnd.randint(0, 200)))
            for i in range(3000)]
    d = Deliveries()
    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20})
    for k, v in sent:
        p.produce(topic, key=k, value=v, on_delivery=d)
        p.poll(0)
    assert p.flush(60) == 0
    assert d.errors == []
    got = read_all(bootstrap, topic, [0, 1, 2])
    received = sorted((m.key(), m.value()) for msgs in got.values() for m in msgs)
    assert received == sorted(sent)
    for msgs in got.values():
        seqs = [int(m.value().split(b"|")[0]) for m in msgs]
        assert seqs == sorted(seqs)


def test_produce_to_unknown_topic_auto_creates_with_num_partitions(bootstrap, topic):
    d = Deliveries()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    p.produce(topic, value=b"hello", on_delivery=d)
    assert p.flush(30) == 0
    assert d.errors == [] and len(d.ok) == 1
    md = admin(bootstrap).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 1  # conftest starts the broker with num.partitions=1


def test_fetch_returns_a_whole_batch_larger_than_max_bytes(bootstrap, topic):
    # KIP-74: a fetch always makes progress, returning the first batch even when it exceeds the limits.
    create_topic(bootstrap, topic, 1)
    big = bytes(range(256)) * 2048  # 512 KiB, incompressible enough
    p = producer(bootstrap)
    p.produce(topic, value=big, partition=0)
    p.produce(topic, value=b"small", partition=0)
    assert p.flush(30) == 0
    c = consumer(bootstrap, **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1000,
                               "receive.message.max.bytes": 2_000_000})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
            elif m is not None and m.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(m.error())
        assert got == [big, b"small"]
    finally:
        c.close()


def test_oversized_batch_is_rejected_with_message_too_large(bootstrap, topic):
    # The broker's message.max.bytes defaults to 1048588; the client is allowed to send more.
    create_topic(bootstrap, topic, 1)
    d = Deliveries()
    p = producer(bootstrap, **{"message.max.bytes": 5_000_000, "enable.idempotence": False})
    p.produce(topic, value=b"x" * 2_000_000, partition=0, on_delivery=d)
    p.flush(30)
    assert len(d.errors) == 1 and d.ok == []
    assert d.errors[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    # The partition is still usable afterwards.
    d2 = Deliveries()
    p.produce(topic, value=b"fine", partition=0, on_delivery=d2)
    assert p.flush(30) == 0 and d2.errors == [] and d2.ok[0][1] == 0


def test_fetch_past_the_end_is_offset_out_of_range(bootstrap, topic):
    create_topic(bootstrap, topic, 1)
    p = producer(bootstrap)
    for i in range(10):
        p.produce(topic, value=b"%d" % i, partition=0)
    assert p.flush(30) == 0
    c = consumer(bootstrap)  # auto.offset.reset=error surfaces OFFSET_OUT_OF_RANGE instead of resetting
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is not None, "got a record at offset %d past the end" % m.offset()
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()


def test_waiting_fetch_wakes_when_data_arrives(bootstrap, topic):
    # A fetch parked with max_wait 5 s must be answered as soon as a record is appended (purgatory).
    create_topic(bootstrap, topic, 1)
    c = consumer(bootstrap, **{"fetch.wait.max.ms": 5000, "fetch.min.bytes": 1})
    p = producer(bootstrap, **{"linger.ms": 0})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # let the consumer reach EOF and park its fetch
            m = c.poll(0.2)
            if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
                break
        time.sleep(1.0)
        latencies = []
        for i in range(3):
            t0 = time.monotonic()
            p.produce(topic, value=b"wake-%d" % i, partition=0)
            assert p.flush(10) == 0
            m = None
            while m is None or m.error():
                m = c.poll(0.05)
                assert time.monotonic() - t0 < 10, "record never arrived"
            assert m.value() == b"wake-%d" % i
            latencies.append(time.monotonic() - t0)
            time.sleep(0.5)
        assert max(latencies) < 1.5, "fetch not woken by the append: latencies %s" % latencies
    finally:
        c.close()


def test_recreated_topic_has_new_id_and_no_old_data(bootstrap, topic):
    from confluent_kafka import TopicCollection
    create_topic(bootstrap, topic, 2)
    p = producer(bootstrap)
    for i in range(100):
        p.produce(topic, value=b"old-%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    a = admin(bootstrap)
    old_id = a.describe_topics(TopicCollection([topic]))[topic].result(timeout=20).topic_id
    a.delete_topics([topic], operation_timeout=15)[topic].result(timeout=20)
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, what="deleted topic to disappear")
    create_topic(bootstrap, topic, 3)
    new = a.describe_topics(TopicCollection([topic]))[topic].result(timeout=20)
    assert str(new.topic_id) != str(old_id)
    assert len(new.partitions) == 3
    c = consumer(bootstrap)
    try:
        for part in range(3):
            assert c.get_watermark_offsets(TopicPartition(topic, part), timeout=10) == (0, 0)
    finally:
        c.close()
