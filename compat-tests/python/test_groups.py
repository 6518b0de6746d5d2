"""Consumer groups with real clients against Fjord: confluent-kafka (librdkafka) subscribe() with the
eager range and the cooperative-sticky assignors, sync and async commits, resume from the committed
offset after a consumer restart and after a broker restart (SIGTERM and kill -9), two members splitting
the partitions and one taking everything over when the other leaves, the AdminClient group APIs, and
kafka-python's KafkaConsumer with a group.

Most tests use a module broker with group.initial.rebalance.delay.ms=0 for speed; one test uses the
session broker (Kafka's default 3000 ms delay) to prove a new group's consumer gets records within a
few seconds all the same.
"""
import time
import uuid

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, Producer, TopicPartition)

from conftest import WORK
from fjord_broker import Broker
from helpers import admin, create_topic

SESSION_MS = 6000  # the broker's group.min.session.timeout.ms, Kafka's default minimum


def gid(prefix="g"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


@pytest.fixture(scope="module")
def gbroker(tmp_path_factory):
    """A broker with no initial rebalance delay, so each new group's first join answers at once."""
    b = Broker(tmp_path_factory.mktemp("fjord-groups"), WORK / "groups",
               overrides=["num.partitions=1", "group.initial.rebalance.delay.ms=0"])
    b.start()
    yield b
    rc = b.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s):\n%s" % (rc, b.log_tail())


def produce(bootstrap, topic, start, n, partition=None):
    """Values v<start>..v<start+n-1>, keys k<i % 97>; every delivery must succeed."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(start, start + n):
        kw = {} if partition is None else {"partition": partition}
        p.produce(topic, key=b"k%d" % (i % 97), value=b"v%d" % i, on_delivery=cb, **kw)
    assert p.flush(30) == 0, "producer did not flush"
    assert not errors, errors[:3]


def group_consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    conf.update(extra)
    return Consumer(conf)


def poll_n(c, n, timeout_s=30.0):
    """Exactly the next n messages (fails on a consumer error or a timeout)."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        assert time.monotonic() < deadline, "timed out: %d of %d messages, assignment %s" % (
            len(out), n, c.assignment())
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append(m)
    return out


def poll_nothing(c, secs=2.0):
    """Nothing more arrives within secs (the consumer has nothing left to re-deliver)."""
    got = []
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append((m.partition(), m.offset(), m.value()))
    assert not got, "unexpected re-delivery: %s" % got[:5]


def high_watermarks(c, topic, parts):
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(parts)}


def group_offsets(bootstrap, group, topic, parts):
    a = admin(bootstrap)
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(parts)])]
    res = a.list_consumer_group_offsets(req, request_timeout=15)[group].result(timeout=20)
    assert res.group_id == group
    for tp in res.topic_partitions:
        assert tp.error is None, tp.error
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def describe(bootstrap, group):
    a = admin(bootstrap)  # keep the handle alive until the future resolves
    return a.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=20)


def assigned(c):
    return {tp.partition for tp in c.assignment()}


# ---------------------------------------------------------------------------------------------------
# Kafka's default group.initial.rebalance.delay.ms (the session broker runs with it).

def test_new_group_gets_records_within_seconds_with_default_initial_delay(bootstrap, topic):
    produce(bootstrap, topic, 0, 100)
    c = group_consumer(bootstrap, gid())
    try:
        t0 = time.monotonic()
        c.subscribe([topic])
        msgs = poll_n(c, 1, timeout_s=15)
        elapsed = time.monotonic() - t0
        msgs += poll_n(c, 99, timeout_s=10)
        print("first record after %.1fs" % elapsed)
        # The first JoinGroup of a new group is held for the 3 s initial delay (Kafka does the same),
        # then join, sync, offset fetch and fetch complete at once.
        assert 2.5 <= elapsed < 10.0, "first record after %.1fs" % elapsed
        assert [m.value() for m in msgs] == [b"v%d" % i for i in range(100)]
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------------
# Module broker: group.initial.rebalance.delay.ms=0.

@pytest.mark.parametrize("strategy,commit_mode", [
    ("range", "sync"), ("range", "async"), ("cooperative-sticky", "sync"), ("cooperative-sticky", "async")])
def test_subscribe_consume_commit_then_restart_resumes(gbroker, topic, strategy, commit_mode):
    b = gbroker.bootstrap
    parts, n = 3, 300
    create_topic(b, topic, parts)
    produce(b, topic, 0, n)
    group = gid()
    commits = []
    c = group_consumer(b, group, **{"partition.assignment.strategy": strategy,
                                    "on_commit": lambda err, tps: commits.append((err, tps))})
    try:
        c.subscribe([topic])
        msgs = poll_n(c, n)
        assert assigned(c) == set(range(parts))
        assert sorted(m.value() for m in msgs) == sorted(b"v%d" % i for i in range(n))
        hw = high_watermarks(c, topic, parts)
        assert sum(hw.values()) == n
        for p in range(parts):  # per partition in offset order, 0..end-1
            assert [m.offset() for m in msgs if m.partition() == p] == list(range(hw[p]))
        if commit_mode == "sync":
            res = c.commit(asynchronous=False)
            assert {tp.partition: tp.offset for tp in res} == hw
            assert all(tp.error is None for tp in res)
        else:
            assert c.commit(asynchronous=True) is None
            deadline = time.monotonic() + 15
            while not commits:
                assert time.monotonic() < deadline, "async commit callback never fired"
                c.poll(0.1)
            err, tps = commits[-1]
            assert err is None, err
            assert {tp.partition: tp.offset for tp in tps} == hw
        committed = c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=10)
        assert {tp.partition: tp.offset for tp in committed} == hw
    finally:
        c.close()
    assert group_offsets(b, group, topic, parts) == hw

    # A new consumer in the group resumes at the committed offsets: only the new records arrive.
    produce(b, topic, n, 30)
    c = group_consumer(b, group, **{"partition.assignment.strategy": strategy})
    try:
        c.subscribe([topic])
        more = poll_n(c, 30)
        assert sorted(m.value() for m in more) == sorted(b"v%d" % i for i in range(n, n + 30))
        assert all(m.offset() >= hw[m.partition()] for m in more)
        poll_nothing(c, 1.5)
    finally:
        c.close()


def test_restart_resumes_from_partial_commit(gbroker, topic):
    b = gbroker.bootstrap
    produce(b, topic, 0, 200)
    group = gid()
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        msgs = poll_n(c, 120)
        assert [m.offset() for m in msgs] == list(range(120))
        # Commit the position after the 120th record explicitly (records 120.. were maybe prefetched).
        res = c.commit(message=msgs[-1], asynchronous=False)
        assert [(tp.partition, tp.offset) for tp in res] == [(0, 120)]
    finally:
        c.close()
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        rest = poll_n(c, 80)
        assert [m.offset() for m in rest] == list(range(120, 200))
        assert [m.value() for m in rest] == [b"v%d" % i for i in range(120, 200)]
        poll_nothing(c, 1.5)
    finally:
        c.close()


def _poll_both(consumers, got, until, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out waiting for %s; assignments %s" % (
            what, [sorted(assigned(c)) for c in consumers])
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got[i].append(m)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_two_consumers_split_partitions_then_survivor_gets_all(gbroker, topic, strategy):
    b = gbroker.bootstrap
    parts = 4
    create_topic(b, topic, parts)
    group = gid()
    conf = {"partition.assignment.strategy": strategy}
    c1 = group_consumer(b, group, **conf)
    c2 = group_consumer(b, group, **conf)
    cs = [c1, c2]
    got = [[], []]
    try:
        c1.subscribe([topic])
        _poll_both([c1], got, lambda: assigned(c1) == set(range(parts)), 20, "c1 to own every partition")
        c2.subscribe([topic])

        def split():
            a1, a2 = assigned(c1), assigned(c2)
            return a1 and a2 and not (a1 & a2) and (a1 | a2) == set(range(parts))
        _poll_both(cs, got, split, 30, "a disjoint split of %d partitions" % parts)
        a1, a2 = assigned(c1), assigned(c2)
        print("split: c1 %s, c2 %s" % (sorted(a1), sorted(a2)))
        assert describe(b, group).state == ConsumerGroupState.STABLE

        produce(b, topic, 0, 400)
        _poll_both(cs, got, lambda: len(got[0]) + len(got[1]) >= 400, 30, "400 records")
        time.sleep(0.5)
        _poll_both(cs, got, lambda: True, 1, "")
        assert len(got[0]) + len(got[1]) == 400, "records delivered twice"
        assert sorted(m.value() for m in got[0] + got[1]) == sorted(b"v%d" % i for i in range(400))
        assert got[0] and got[1], "one member got no records"
        assert {m.partition() for m in got[0]} <= a1
        assert {m.partition() for m in got[1]} <= a2
        c1.commit(asynchronous=False)
        c2.commit(asynchronous=False)

        c2.close()  # LeaveGroup: the survivor must get every partition without waiting for a session timeout
        cs = [c1]
        t0 = time.monotonic()
        _poll_both(cs, got, lambda: assigned(c1) == set(range(parts)), 15, "c1 to get every partition back")
        print("survivor owns every partition %.1fs after the other member closed" % (time.monotonic() - t0))
        before = len(got[0])
        produce(b, topic, 400, 100)
        _poll_both(cs, got, lambda: len(got[0]) - before >= 100, 20, "100 more records on the survivor")
        new = got[0][before:]
        assert sorted(m.value() for m in new) == sorted(b"v%d" % i for i in range(400, 500)), \
            "survivor re-delivered committed records or missed new ones"
        assert {m.partition() for m in new} == set(range(parts))
    finally:
        for c in cs:
            c.close()


def test_admin_list_describe_alter_delete_groups(gbroker, topic):
    b = gbroker.bootstrap
    parts = 2
    create_topic(b, topic, parts)
    produce(b, topic, 0, 40)
    group = gid("admin")
    a = admin(b)
    c = group_consumer(b, group, **{"client.id": "admin-test-member"})
    try:
        c.subscribe([topic])
        poll_n(c, 40)
        hw = high_watermarks(c, topic, parts)
        c.commit(asynchronous=False)

        listed = a.list_consumer_groups(request_timeout=15).result(timeout=20)
        assert not listed.errors, listed.errors
        mine = [g for g in listed.valid if g.group_id == group]
        assert len(mine) == 1, [g.group_id for g in listed.valid]
        assert mine[0].state == ConsumerGroupState.STABLE
        assert not mine[0].is_simple_consumer_group
        stable = a.list_consumer_groups(request_timeout=15, states={ConsumerGroupState.STABLE}).result(timeout=20)
        assert group in [g.group_id for g in stable.valid]
        empty = a.list_consumer_groups(request_timeout=15, states={ConsumerGroupState.EMPTY}).result(timeout=20)
        assert group not in [g.group_id for g in empty.valid]

        d = describe(b, group)
        assert d.group_id == group
        assert d.state == ConsumerGroupState.STABLE
        assert not d.is_simple_consumer_group
        assert d.partition_assignor == "range"
        assert d.coordinator is not None and d.coordinator.port == gbroker.port
        assert len(d.members) == 1
        m = d.members[0]
        assert m.client_id == "admin-test-member"
        assert m.member_id
        assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == \
            [(topic, p) for p in range(parts)]

        # A group with an active member cannot be deleted (Kafka: NON_EMPTY_GROUP).
        f = a.delete_consumer_groups([group], request_timeout=15)[group]
        with pytest.raises(KafkaException) as ei:
            f.result(timeout=20)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value
    finally:
        c.close()

    d = describe(b, group)
    assert d.state == ConsumerGroupState.EMPTY and not d.members
    assert group_offsets(b, group, topic, parts) == hw

    # Reset offsets on the empty group (kafka-consumer-groups --reset-offsets --to-offset 3).
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, 3) for p in range(parts)])]
    res = a.alter_consumer_group_offsets(req, request_timeout=15)[group].result(timeout=20)
    assert sorted((tp.partition, tp.offset, tp.error) for tp in res.topic_partitions) == \
        [(p, 3, None) for p in range(parts)]
    assert group_offsets(b, group, topic, parts) == {p: 3 for p in range(parts)}
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        msgs = poll_n(c, sum(hw.values()) - 3 * parts)
        for p in range(parts):
            assert [m.offset() for m in msgs if m.partition() == p] == list(range(3, hw[p]))
        poll_nothing(c, 1.0)
    finally:
        c.close()  # auto commit is off: the reset offsets stay as they are
    assert group_offsets(b, group, topic, parts) == {p: 3 for p in range(parts)}

    res = a.delete_consumer_groups([group], request_timeout=15)
    assert res[group].result(timeout=20) is None
    listed = a.list_consumer_groups(request_timeout=15).result(timeout=20)
    assert group not in [g.group_id for g in listed.valid]
    # A deleted group has no committed offsets (OffsetFetch answers -1, like for an unknown group).
    assert group_offsets(b, group, topic, parts) == {p: -1001 for p in range(parts)}  # OFFSET_INVALID
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        assert [m.value() for m in poll_n(c, hw[0] + hw[1])].count(b"v0") == 1  # from the beginning again
    finally:
        c.close()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_committed_offsets_survive_broker_restart(tmp_path, topic, how):
    broker = Broker(tmp_path / "data", WORK / ("groups-restart-" + how),
                    overrides=["num.partitions=1", "group.initial.rebalance.delay.ms=0"])
    broker.start()
    try:
        b = broker.bootstrap
        parts = 3
        create_topic(b, topic, parts)
        produce(b, topic, 0, 150)
        group = gid()
        c = group_consumer(b, group)
        try:
            c.subscribe([topic])
            poll_n(c, 150)
            hw = high_watermarks(c, topic, parts)
            c.commit(asynchronous=False)
        finally:
            c.close()
        # A second group with a partial commit, so the restart must restore more than "all consumed".
        partial = gid()
        c = group_consumer(b, partial)
        try:
            c.assign([TopicPartition(topic, p) for p in range(parts)])
            c.commit(offsets=[TopicPartition(topic, p, p + 1) for p in range(parts)], asynchronous=False)
        finally:
            c.close()

        if how == "sigterm":
            assert broker.stop() == 0, broker.log_tail()
        else:
            broker.kill9()
        broker.start(timeout_s=30)

        assert group_offsets(b, group, topic, parts) == hw
        assert group_offsets(b, partial, topic, parts) == {p: p + 1 for p in range(parts)}
        d = describe(b, group)
        assert d.state == ConsumerGroupState.EMPTY

        produce(b, topic, 150, 20)
        c = group_consumer(b, group)
        try:
            c.subscribe([topic])
            more = poll_n(c, 20)
            assert sorted(m.value() for m in more) == sorted(b"v%d" % i for i in range(150, 170))
            poll_nothing(c, 1.5)
        finally:
            c.close()
        c = group_consumer(b, partial)
        try:
            c.subscribe([topic])
            hw2 = high_watermarks(c, topic, parts)
            msgs = poll_n(c, sum(hw2.values()) - sum(p + 1 for p in range(parts)))
            for p in range(parts):
                assert [m.offset() for m in msgs if m.partition() == p] == list(range(p + 1, hw2[p]))
        finally:
            c.close()
    finally:
        rc = broker.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s)" % rc


# ---------------------------------------------------------------------------------------------------
# kafka-python (its own protocol code and its own group coordinator client).

def kp_consumer(bootstrap, group):
    from kafka import KafkaConsumer
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500,
                         request_timeout_ms=30000)


def kp_subscribe(c, topic, parts, timeout_s=10.0):
    """Subscribe, then fetch metadata until the client knows every partition of the topic, before the
    first poll() joins the group. kafka-python's group leader assigns with the metadata it holds when
    it joins, and remembers the partitions it saw: a join racing the first metadata fetch of a new
    topic assigns nothing, and a join before the first metadata fetch since subscribe() remembers no
    partitions, so the next metadata update makes the client rejoin at once; a commit() during that
    rejoin fails with RebalanceInProgressError (against any broker). topics() always fetches."""
    c.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    while topic not in c.topics() or len(c.partitions_for_topic(topic) or ()) < parts:
        assert time.monotonic() < deadline, "kafka-python never saw the partitions of %s" % topic
        time.sleep(0.1)


def kp_poll(c, n, timeout_s=30.0):
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        assert time.monotonic() < deadline, "timed out: %d of %d records" % (len(out), n)
        for recs in c.poll(timeout_ms=200).values():
            out.extend(recs)
    return out


def kp_poll_nothing(c, secs=1.5):
    got = []
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=200).values():
            got.extend((r.partition, r.offset) for r in recs)
    assert not got, "unexpected re-delivery: %s" % got[:5]


def test_kafka_python_group_commit_resume_and_broker_restart(tmp_path, topic):
    from kafka import TopicPartition as KTP
    broker = Broker(tmp_path / "data", WORK / "groups-kafka-python",
                    overrides=["num.partitions=1", "group.initial.rebalance.delay.ms=0"])
    broker.start()
    try:
        b = broker.bootstrap
        parts = 2
        create_topic(b, topic, parts)
        produce(b, topic, 0, 100)
        group = gid("kp")
        c = kp_consumer(b, group)
        try:
            kp_subscribe(c, topic, parts)
            recs = kp_poll(c, 100)
            assert sorted(r.value for r in recs) == sorted(b"v%d" % i for i in range(100))
            assert c.assignment() == {KTP(topic, p) for p in range(parts)}
            c.commit()
            ends = c.end_offsets([KTP(topic, p) for p in range(parts)])
            for p in range(parts):
                assert c.committed(KTP(topic, p)) == ends[KTP(topic, p)]
        finally:
            c.close(autocommit=False)
        hw = {tp.partition: off for tp, off in ends.items()}
        assert group_offsets(b, group, topic, parts) == hw

        # Consumer restart: only new records.
        produce(b, topic, 100, 10)
        c = kp_consumer(b, group)
        try:
            kp_subscribe(c, topic, parts)
            recs = kp_poll(c, 10)
            assert sorted(r.value for r in recs) == sorted(b"v%d" % i for i in range(100, 110))
            kp_poll_nothing(c)
            c.commit()
        finally:
            c.close(autocommit=False)

        # Broker restart: the committed offsets are still there.
        assert broker.stop() == 0, broker.log_tail()
        broker.start()
        produce(b, topic, 110, 10)
        c = kp_consumer(b, group)
        try:
            kp_subscribe(c, topic, parts)
            recs = kp_poll(c, 10)
            assert sorted(r.value for r in recs) == sorted(b"v%d" % i for i in range(110, 120))
            kp_poll_nothing(c)
        finally:
            c.close(autocommit=False)
    finally:
        rc = broker.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s)" % rc


# ---------------------------------------------------------------------------------------------------
# KIP-848: the consumer group protocol (group.protocol=consumer), assignments made by the broker.

def kip848_consumer(bootstrap, group):
    # session.timeout.ms, heartbeat.interval.ms and partition.assignment.strategy belong to the
    # broker under this protocol; librdkafka refuses them.
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })


def test_consumer_protocol_members_split_partitions_commit_and_are_described(gbroker, topic):
    from confluent_kafka import ConsumerGroupType
    b = gbroker.bootstrap
    parts = 4
    create_topic(b, topic, parts)
    produce(b, topic, 0, 200)
    group = gid("kip848")
    c1, c2 = kip848_consumer(b, group), kip848_consumer(b, group)
    cs = [c1, c2]
    got = [[], []]
    try:
        c1.subscribe([topic])
        _poll_both([c1], got, lambda: assigned(c1) == set(range(parts)), 20, "c1 to own every partition")
        c2.subscribe([topic])

        def split():
            a1, a2 = assigned(c1), assigned(c2)
            return a1 and a2 and not (a1 & a2) and (a1 | a2) == set(range(parts))
        # Revocation first, then the new owner: a few heartbeats of 5 s (Kafka's default interval).
        _poll_both(cs, got, split, 40, "a disjoint split of %d partitions" % parts)
        # Each consumer reads its own partitions to their ends before committing: records c1 read
        # from a partition before giving it up are not committed (auto commit is off), so the new
        # owner must read that partition again for the commit to cover it.
        ends = {p: c1.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(parts)}
        assert sum(ends.values()) == 200

        def at_ends():
            return all(tp.offset == ends[tp.partition] for c in cs for tp in c.position(c.assignment()))
        _poll_both(cs, got, at_ends, 30, "both consumers at the end of their partitions")
        for c in cs:
            committed = c.commit(asynchronous=False)
            assert committed and all(tp.error is None for tp in committed), committed
        assert sum(group_offsets(b, group, topic, parts).values()) == 200

        d = describe(b, group)
        assert d.group_id == group
        assert d.type == ConsumerGroupType.CONSUMER
        assert len(d.members) == 2
        owned = sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions)
        assert owned == list(range(parts))
        a = admin(b)
        listed = a.list_consumer_groups(request_timeout=15, types={ConsumerGroupType.CONSUMER}).result(timeout=20)
        assert group in [g.group_id for g in listed.valid]
        classic = a.list_consumer_groups(request_timeout=15, types={ConsumerGroupType.CLASSIC}).result(timeout=20)
        assert group not in [g.group_id for g in classic.valid]

        c2.close()  # leaves with epoch -1: the survivor gets every partition at its next heartbeat
        cs = [c1]
        _poll_both(cs, got, lambda: assigned(c1) == set(range(parts)), 20, "c1 to get every partition back")
    finally:
        for c in cs:
            c.close()


# KIP-848's online migration: classic and consumer-protocol members in one group, as in a rolling
# upgrade of consumers from group.protocol=classic to consumer (and back when the last one leaves).
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_a_rolling_upgrade_shares_the_group_between_classic_and_consumer_protocol_members(gbroker, topic, strategy):
    from confluent_kafka import ConsumerGroupType
    b = gbroker.bootstrap
    parts = 4
    create_topic(b, topic, parts)
    produce(b, topic, 0, 200)
    group = gid("migrate")
    classic = group_consumer(b, group, **{"group.protocol": "classic", "partition.assignment.strategy": strategy})
    modern = kip848_consumer(b, group)
    cs = [classic]
    got = [[], []]
    try:
        classic.subscribe([topic])
        _poll_both(cs, got, lambda: assigned(classic) == set(range(parts)), 20, "the classic member to own every partition")
        assert describe(b, group).type == ConsumerGroupType.CLASSIC

        # A consumer-protocol member joins: the group becomes a consumer group of both, the classic
        # member is told to rejoin, gives half up, and the newcomer gets that half.
        modern.subscribe([topic])
        cs = [classic, modern]

        def split():
            a1, a2 = assigned(classic), assigned(modern)
            return a1 and a2 and not (a1 & a2) and (a1 | a2) == set(range(parts))
        _poll_both(cs, got, split, 40, "a disjoint split between the classic and the consumer-protocol member")
        d = describe(b, group)
        assert d.type == ConsumerGroupType.CONSUMER
        owned = sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions)
        assert (len(d.members), owned) == (2, list(range(parts)))

        # Each commits its own partitions: the classic member with its generation, the other with
        # its member epoch.
        ends = high_watermarks(classic, topic, parts)
        for c in cs:
            done = c.commit(offsets=[TopicPartition(topic, p, ends[p]) for p in assigned(c)], asynchronous=False)
            assert all(tp.error is None for tp in done), done
        assert sum(group_offsets(b, group, topic, parts).values()) == 200

        # The consumer-protocol member leaves: a classic group again, whose member gets everything
        # in a classic rebalance and keeps committing.
        modern.close()
        cs = [classic]
        _poll_both(cs, got, lambda: assigned(classic) == set(range(parts)), 30, "the classic member to get every partition back")
        d = describe(b, group)
        assert (d.type, len(d.members)) == (ConsumerGroupType.CLASSIC, 1)
        done = classic.commit(offsets=[TopicPartition(topic, p, ends[p]) for p in range(parts)], asynchronous=False)
        assert all(tp.error is None for tp in done), done
        assert sum(group_offsets(b, group, topic, parts).values()) == 200
    finally:
        for c in cs:
            c.close()
