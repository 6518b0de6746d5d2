"""kafka-python (pure Python client, its own protocol code) against Fjord: admin, acks=all produce,
assign + seek consume without a group, beginning/end offsets and offsets_for_times, transactions."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-compat", request_timeout_ms=15000)


def make_consumer(bootstrap):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="none", request_timeout_ms=30000)


def poll_all(c, n, timeout_s=60.0):
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            out.extend(recs)
    return out


def test_admin_create_list_delete(bootstrap, topic):
    a = admin(bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, timeout_ms=15000)
        assert topic in a.list_topics()
        c = make_consumer(bootstrap)
        try:
            assert c.partitions_for_topic(topic) == {0, 1, 2}
        finally:
            c.close()
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, timeout_ms=15000)
        a.delete_topics([topic], timeout_ms=15000)
        deadline = time.monotonic() + 10
        while topic in a.list_topics():
            assert time.monotonic() < deadline, "deleted topic still listed"
            time.sleep(0.2)
    finally:
        a.close()


def test_produce_acks_all_then_assign_seek_to_beginning(bootstrap, topic):
    a = admin(bootstrap)
    a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, timeout_ms=15000)
    a.close()

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    n = 3000
    futures = []
    for i in range(n):
        futures.append(p.send(topic, key=b"k%d" % (i % 31), value=b"value-%d-" % i + b"z" * (i % 700),
                              headers=[("i", str(i).encode()), ("empty", b"")]))
    p.flush(timeout=60)
    metas = [f.get(timeout=30) for f in futures]
    p.close()
    per_part = {}
    for m in metas:
        per_part.setdefault(m.partition, []).append(m.offset)
    for part, offs in per_part.items():
        assert offs == list(range(len(offs))), "partition %d offsets" % part

    c = make_consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, q) for q in range(3)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        recs = poll_all(c, n)
    finally:
        c.close()
    assert len(recs) == n
    seen = sorted(int(r.value.split(b"-")[1]) for r in recs)
    assert seen == list(range(n))
    for r in recs:
        i = int(r.value.split(b"-")[1])
        assert r.key == b"k%d" % (i % 31)
        assert r.value == b"value-%d-" % i + b"z" * (i % 700)
        assert list(r.headers) == [("i", str(i).encode()), ("empty", b"")]
        assert (r.partition, r.offset) == (metas[i].partition, metas[i].offset)


def test_gzip_round_trip(bootstrap, topic):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip", linger_ms=20)
    futures = [p.send(topic, value=b"gz-%d" % i + b"a" * 500, partition=0) for i in range(500)]
    p.flush(timeout=60)
    assert [f.get(timeout=30).offset for f in futures] == list(range(500))
    p.close()
    c = make_consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        recs = poll_all(c, 500)
    finally:
        c.close()
    assert [r.value for r in recs] == [b"gz-%d" % i + b"a" * 500 for i in range(500)]


def test_beginning_end_offsets_and_offsets_for_times(bootstrap, topic):
    a = admin(bootstrap)
    a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=15000)
    a.close()
    base = 1_600_000_000_000
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(100):
        p.send(topic, value=b"%d" % i, partition=0, timestamp_ms=base + i * 100)
    p.flush(timeout=60)
    p.close()

    c = make_consumer(bootstrap)
    try:
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 100, tp1: 0}
        res = c.offsets_for_times({tp0: base + 4550})
        assert res[tp0].offset == 46 and res[tp0].timestamp == base + 4600
        res = c.offsets_for_times({tp0: base})
        assert res[tp0].offset == 0 and res[tp0].timestamp == base
        res = c.offsets_for_times({tp0: base + 100 * 100})
        assert res[tp0] is None  # no record at or after the target
        res = c.offsets_for_times({tp1: base})
        assert res[tp1] is None  # empty partition

        c.assign([tp0])
        c.seek(tp0, 90)
        recs = poll_all(c, 10)
        assert [(r.offset, r.value, r.timestamp) for r in recs] == [
            (i, b"%d" % i, base + i * 100) for i in range(90, 100)]
    finally:
        c.close()


def test_transactions_commit_and_abort_with_read_committed(bootstrap, topic):
    """kafka-python's transactional producer (its own InitProducerId / AddPartitionsToTxn / EndTxn
    code): a read_committed consumer sees the committed transactions' records only, a
    read_uncommitted one sees the aborted ones too."""
    a = admin(bootstrap)
    a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=15000)
    a.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-" + topic, request_timeout_ms=15000)
    try:
        p.init_transactions()
        for i, commit in enumerate([True, False, True]):
            p.begin_transaction()
            for part in range(2):
                for j in range(5):
                    p.send(topic, partition=part, value=b"t%d-%d-%d" % (i, part, j))
            p.flush(timeout=30)
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()
    finally:
        p.close(timeout=10)

    def read(isolation, n):
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                          isolation_level=isolation, request_timeout_ms=30000)
        try:
            c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
            c.seek_to_beginning()
            got = poll_all(c, n, timeout_s=20)
            time.sleep(0.5)
            got += [r for recs in c.poll(timeout_ms=500).values() for r in recs]
            return sorted(r.value for r in got)
        finally:
            c.close()

    committed = read("read_committed", 20)
    assert committed == sorted(b"t%d-%d-%d" % (i, part, j) for i in (0, 2) for part in range(2) for j in range(5))
    everything = read("read_uncommitted", 30)
    assert everything == sorted(b"t%d-%d-%d" % (i, part, j) for i in range(3) for part in range(2) for j in range(5))
