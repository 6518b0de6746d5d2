"""Kafka transactions seen through confluent-kafka (librdkafka): a transactional producer's committed
records are what a read_committed consumer sees, aborted ones only a read_uncommitted consumer sees,
interleaved over several partitions; an open transaction holds read_committed consumers at the last
stable offset, records written after it by another producer included, until it ends; a
consume-transform-produce loop with send_offsets_to_transaction is exactly once across a deliberate
abort and a broker restart (SIGTERM, and kill -9) that finds a transaction still open; a second producer with the same
transactional.id fences the first and aborts its open transaction; the broker aborts a transaction
that outlives its transaction.timeout.ms; and a timeout above transaction.max.timeout.ms is refused
with INVALID_TRANSACTION_TIMEOUT.

The broker checks open transactions against their timeout every 500 ms
(transaction.abort.timed.out.transaction.cleanup.interval.ms) so an abandoned transaction is aborted
within the test's patience. Every client call that can wait takes a timeout, so a broker that does
not answer makes a test fail, not hang.

confluent-kafka 2.16's AdminClient has no list_transactions / describe_transactions, so the admin side
(ListTransactions, DescribeTransactions, DescribeProducers: an ongoing transaction is listed and
described with its partitions, then seen complete) goes through kafka-python's KafkaAdminClient.
"""
import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             Producer, TopicPartition)

from conftest import WORK
from fjord_broker import Broker
from helpers import Deliveries, admin, consumer, create_topic, read_all

OVERRIDES = ["num.partitions=3", "group.initial.rebalance.delay.ms=0",
             "transaction.state.log.num.partitions=4",
             "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
             "transaction.max.timeout.ms=60000"]
API_TIMEOUT = 20  # seconds, for every transactional API call (init, commit, abort, send offsets)
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


@pytest.fixture(scope="module")
def tbroker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("fjord-transactions"), WORK / "transactions", overrides=OVERRIDES)
    b.start()
    yield b
    rc = b.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s):\n%s" % (rc, b.log_tail())


@pytest.fixture
def rbroker(tmp_path):
    """A broker of its own for the test that restarts it (same data dir and port after the restart)."""
    b = Broker(tmp_path / "data", WORK / "transactions-restart", overrides=OVERRIDES)
    b.start()
    yield b
    rc = b.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s):\n%s" % (rc, b.log_tail())


def tid(prefix="txn"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def txn_producer(bootstrap, transactional_id, init=True, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    if init:
        p.init_transactions(API_TIMEOUT)
    return p


def plain_produce(bootstrap, topic, partition, values):
    """Non-transactional records; every delivery must succeed."""
    d = Deliveries()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for v in values:
        p.produce(topic, value=v, partition=partition, on_delivery=d)
    assert p.flush(30) == 0, "producer did not flush"
    assert not d.errors, d.errors[:3]
    return d.ok


def produce(p, topic, partition, value, on_delivery, key=None):
    deadline = time.monotonic() + 30
    while True:
        try:
            p.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
            return
        except BufferError:
            assert time.monotonic() < deadline, "producer queue stayed full"
            p.poll(0.05)


def flush(p, d):
    """Every record so far is on the broker (inside the open transaction)."""
    assert p.flush(30) == 0, "transactional producer did not flush"
    assert not d.errors, d.errors[:3]


def read_to_end(bootstrap, topic, partitions, isolation, timeout_s=30.0):
    """{partition: [(offset, value)]} from the beginning to the end a consumer with this
    isolation.level sees (high watermark for read_uncommitted, last stable offset for read_committed)."""
    got = read_all(bootstrap, topic, list(partitions), timeout_s=timeout_s, isolation=isolation)
    return {p: [(m.offset(), m.value()) for m in msgs] for p, msgs in got.items()}


def values(records):
    return [v for _, v in records]


def poll_values(c, secs, until=None):
    """Values of the data records that arrive within secs (stops early once until(values) holds)."""
    got = []
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if until is not None and until(got):
            break
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(m.error())
        got.append(m.value())
    return got


def watermarks(bootstrap, topic, partitions, isolation):
    c = consumer(bootstrap, **{"isolation.level": isolation})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        c.close()


def raised(fn, *args):
    """The KafkaError fn(*args) raised (fails if it returned)."""
    with pytest.raises(KafkaException) as ei:
        fn(*args)
    return ei.value.args[0]


# ---------------------------------------------------------------------------------------------------

def test_committed_and_aborted_transactions_interleaved_over_three_partitions(tbroker, topic):
    b = tbroker.bootstrap
    parts, txns, per = 3, 10, 5
    create_topic(b, topic, parts)
    p = txn_producer(b, tid())
    committed = {q: [] for q in range(parts)}
    everything = {q: [] for q in range(parts)}
    for t in range(txns):
        d = Deliveries()
        p.begin_transaction()
        for i in range(per):
            for q in range(parts):
                v = b"t%02d-p%d-i%d" % (t, q, i)
                produce(p, topic, q, v, d)
                everything[q].append(v)
                if t % 2 == 0:
                    committed[q].append(v)
        flush(p, d)  # the records of the aborted transactions are on the broker too
        assert len(d.ok) == per * parts
        if t % 2 == 0:
            p.commit_transaction(API_TIMEOUT)
        else:
            p.abort_transaction(API_TIMEOUT)

    print("watermarks read_uncommitted %s, read_committed %s" % (
        watermarks(b, topic, range(parts), "read_uncommitted"), watermarks(b, topic, range(parts), "read_committed")))
    rc = read_to_end(b, topic, range(parts), "read_committed")
    ru = read_to_end(b, topic, range(parts), "read_uncommitted")
    for q in range(parts):
        # In order per partition: read_committed exactly the committed transactions' records,
        # read_uncommitted every record of every transaction.
        assert values(rc[q]) == committed[q], "partition %d read_committed" % q
        assert values(ru[q]) == everything[q], "partition %d read_uncommitted" % q
        # Same records at the same offsets: read_committed is read_uncommitted minus the aborted ones.
        assert rc[q] == [(off, v) for off, v in ru[q] if int(v[1:3]) % 2 == 0]
        offsets = [off for off, _ in ru[q]]
        assert offsets == sorted(set(offsets))


def test_an_open_transaction_blocks_read_committed_until_it_ends(tbroker, topic):
    b = tbroker.bootstrap
    create_topic(b, topic, 1)
    before = [b"before-%d" % i for i in range(3)]
    in_txn = [b"txn-%d" % i for i in range(10)]
    after = [b"after-%d" % i for i in range(5)]
    plain_produce(b, topic, 0, before)

    p = txn_producer(b, tid())
    d = Deliveries()
    p.begin_transaction()
    for v in in_txn:
        produce(p, topic, 0, v, d)
    flush(p, d)
    # A non-transactional producer writes after the open transaction's first record: above the LSO.
    plain_produce(b, topic, 0, after)
    assert values(read_to_end(b, topic, [0], "read_uncommitted")[0]) == before + in_txn + after

    c = consumer(b, **{"isolation.level": "read_committed"})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = poll_values(c, 2.5)
        print("while open: read_committed watermarks %s, read_uncommitted %s" % (
            watermarks(b, topic, [0], "read_committed"), watermarks(b, topic, [0], "read_uncommitted")))
        assert got == before, "read_committed passed the last stable offset of an open transaction"
        p.commit_transaction(API_TIMEOUT)
        got += poll_values(c, 15, until=lambda g: len(g) >= len(in_txn) + len(after))
        got += poll_values(c, 1.0)  # and nothing more
        assert got == before + in_txn + after
    finally:
        c.close()
    print("after commit: read_committed watermarks %s" % watermarks(b, topic, [0], "read_committed"))


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(tbroker, topic):
    b = tbroker.bootstrap
    create_topic(b, topic, 1)
    txn_id = tid()
    pa = txn_producer(b, txn_id)
    da = Deliveries()
    pa.begin_transaction()
    for i in range(5):
        produce(pa, topic, 0, b"a-open-%d" % i, da)
    flush(pa, da)

    # B's InitProducerId bumps the epoch: A's open transaction is aborted and A is fenced.
    pb = txn_producer(b, txn_id)

    late = Deliveries()
    try:
        pa.produce(topic, value=b"a-late", partition=0, on_delivery=late)
    except KafkaException as e:  # a fenced producer may refuse to enqueue at once
        print("A's produce after fencing raised %s" % e.args[0])
    # Serve the late record's delivery report. poll(), not flush(): flush() of a producer in a fatal
    # state raises SystemError in confluent-kafka 2.16, and poll() raises the fatal error itself.
    deadline = time.monotonic() + 10
    while len(pa) and time.monotonic() < deadline:
        try:
            pa.poll(0.1)
        except KafkaException as e:
            print("A's poll after fencing raised %s" % e.args[0])
    err = raised(pa.commit_transaction, API_TIMEOUT)
    print("A's commit after fencing: %s (fatal=%s)" % (err, err.fatal()))
    assert err.fatal(), err
    assert err.code() in FENCED, err
    assert not late.ok, "the fenced producer's record was accepted: %s" % late.ok

    db = Deliveries()
    pb.begin_transaction()
    for i in range(5):
        produce(pb, topic, 0, b"b-%d" % i, db)
    pb.commit_transaction(API_TIMEOUT)
    assert not db.errors and len(db.ok) == 5, (db.errors, db.ok)

    assert values(read_to_end(b, topic, [0], "read_committed")[0]) == [b"b-%d" % i for i in range(5)]
    ru = values(read_to_end(b, topic, [0], "read_uncommitted")[0])
    assert ru == [b"a-open-%d" % i for i in range(5)] + [b"b-%d" % i for i in range(5)]


def test_transaction_timeout_aborts_an_abandoned_transaction(tbroker, topic):
    b = tbroker.bootstrap
    create_topic(b, topic, 1)
    timeout_ms = 2000
    p = txn_producer(b, tid(), **{"transaction.timeout.ms": timeout_ms})
    d = Deliveries()
    p.begin_transaction()
    abandoned = [b"abandoned-%d" % i for i in range(5)]
    for v in abandoned:
        produce(p, topic, 0, v, d)
    flush(p, d)
    t0 = time.monotonic()
    plain_produce(b, topic, 0, [b"later"])

    c = consumer(b, **{"isolation.level": "read_committed"})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        assert poll_values(c, 1.0) == [], "read_committed passed an open transaction"
        got = poll_values(c, 20, until=lambda g: len(g) >= 1)
        elapsed = time.monotonic() - t0
        got += poll_values(c, 1.0)
        print("the abandoned transaction stopped blocking read_committed after %.1fs" % elapsed)
        assert got == [b"later"], "read_committed saw %s" % got
        assert elapsed >= timeout_ms / 1000.0 * 0.75, "blocked only %.1fs" % elapsed
    finally:
        c.close()
    assert values(read_to_end(b, topic, [0], "read_committed")[0]) == [b"later"]
    assert values(read_to_end(b, topic, [0], "read_uncommitted")[0]) == abandoned + [b"later"]
    # The broker aborted the transaction: the producer cannot commit it any more.
    err = raised(p.commit_transaction, API_TIMEOUT)
    print("commit after the timeout abort: %s (fatal=%s, abortable=%s)" % (err, err.fatal(), err.txn_requires_abort()))


def test_invalid_transaction_timeout_is_refused(tbroker):
    # The broker's transaction.max.timeout.ms is 60000.
    p = txn_producer(tbroker.bootstrap, tid(), init=False, **{"transaction.timeout.ms": 120000})
    err = raised(p.init_transactions, API_TIMEOUT)
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err
    assert err.fatal(), err
    # The limit itself is allowed.
    txn_producer(tbroker.bootstrap, tid(), **{"transaction.timeout.ms": 60000})


def test_an_ongoing_transaction_is_listed_and_described_with_its_partitions(tbroker, topic):
    from kafka.admin import KafkaAdminClient, TransactionState
    from kafka.structs import TopicPartition as KTP
    b = tbroker.bootstrap
    create_topic(b, topic, 3)
    txn_id = tid("admin")
    plain_produce(b, topic, 1, [b"x0", b"x1"])  # the transaction starts at offset 2 of partition 1
    p = txn_producer(b, txn_id, **{"transaction.timeout.ms": 45000})
    d = Deliveries()
    p.begin_transaction()
    for q in (0, 1):
        produce(p, topic, q, b"open-%d" % q, d)
    flush(p, d)
    k = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=20000)
    try:
        listed = [t for ts in k.list_transactions().values() for t in ts if t.transactional_id == txn_id]
        assert len(listed) == 1, listed
        assert listed[0].state == TransactionState.ONGOING
        ongoing = [t.transactional_id for ts in k.list_transactions(state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id in ongoing
        desc = k.describe_transactions([txn_id])[txn_id]
        print("ongoing: %s" % (desc,))
        assert desc.state == TransactionState.ONGOING
        assert desc.producer_id == listed[0].producer_id and desc.producer_id >= 0
        assert desc.transaction_timeout_ms == 45000
        assert desc.transaction_start_time_ms > 0
        assert desc.topic_partitions == {KTP(topic, 0), KTP(topic, 1)}
        producers = k.describe_producers([KTP(topic, 1)])[KTP(topic, 1)].active_producers
        mine = [s for s in producers if s.producer_id == desc.producer_id]
        assert len(mine) == 1, producers
        assert mine[0].producer_epoch == desc.producer_epoch
        assert mine[0].current_transaction_start_offset == 2

        p.commit_transaction(API_TIMEOUT)
        desc = k.describe_transactions([txn_id])[txn_id]
        print("committed: %s" % (desc,))
        assert desc.state == TransactionState.COMPLETE_COMMIT
        assert not desc.topic_partitions
        ongoing = [t.transactional_id for ts in k.list_transactions(state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id not in ongoing
        producers = k.describe_producers([KTP(topic, 1)])[KTP(topic, 1)].active_producers
        assert [s.current_transaction_start_offset for s in producers if s.producer_id == desc.producer_id] == [-1]
    finally:
        k.close()


# ---------------------------------------------------------------------------------------------------
# Consume-transform-produce (exactly once) across an abort and a broker restart.

CHUNK = 200


def eos_consumer(bootstrap, group):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})


def poll_chunk(c, nxt, ends, n=CHUNK, timeout_s=30.0):
    """Up to n input records (fewer only at the input's end). nxt: partition -> the offset the consumer
    must deliver next (the committed one when it starts); each record must be exactly that offset."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and nxt != ends:
        assert time.monotonic() < deadline, "timed out: %d records, next offsets %s of %s, assignment %s" % (
            len(out), nxt, ends, c.assignment())
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        q = m.partition()
        assert m.offset() == nxt[q], "partition %d: offset %d delivered, %d expected" % (q, m.offset(), nxt[q])
        nxt[q] = m.offset() + 1
        out.append(m)
    return out


def transform(p, out_topic, msgs, d):
    for m in msgs:
        produce(p, out_topic, m.partition(), b"out-" + m.value(), d, key=m.key())


def group_offsets(bootstrap, group, topic, parts):
    """The group's committed offsets (require_stable: none still pending in an open transaction);
    a partition never committed counts as 0 (the input's first offset)."""
    a = admin(bootstrap)
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, q) for q in range(parts)])]
    res = a.list_consumer_group_offsets(req, require_stable=True, request_timeout=15)[group].result(timeout=20)
    for tp in res.topic_partitions:
        assert tp.error is None, tp.error
    return {tp.partition: max(tp.offset, 0) for tp in res.topic_partitions}


@pytest.mark.parametrize("stop", ["sigterm", "kill9"])
def test_consume_transform_produce_is_exactly_once_across_a_broker_restart(rbroker, topic, stop):
    b = rbroker.bootstrap
    parts, n = 3, 3000
    in_topic, out_topic = topic + "-in", topic + "-out"
    create_topic(b, in_topic, parts)
    create_topic(b, out_topic, parts)
    d = Deliveries()
    src = Producer({"bootstrap.servers": b, "acks": "all", "linger.ms": 5})
    for i in range(n):
        produce(src, in_topic, i % parts, b"in-%d" % i, d, key=b"k%d" % i)
    assert src.flush(30) == 0 and not d.errors and len(d.ok) == n
    inputs = {q: [v for _, _, _, v in sorted(r for r in d.ok if r[0] == q)] for q in range(parts)}
    ends = {q: len(inputs[q]) for q in range(parts)}
    group, txn_id = tid("eos-group"), tid("eos")
    committed = {q: 0 for q in range(parts)}  # the test's own account of what the group has committed
    uncommitted_extra = 0  # transformed records written in transactions that did not commit

    def txn_chunk(p, c, msgs):
        """Begin a transaction holding the transformed msgs (on the broker) and the consumer's offsets."""
        dd = Deliveries()
        p.begin_transaction()
        transform(p, out_topic, msgs, dd)
        flush(p, dd)
        assert len(dd.ok) == len(msgs)
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), API_TIMEOUT)

    # Before the restart: commit chunks up to about half the input, abort one, rewind, commit one
    # more, then leave one transaction open (records and offsets sent, no EndTxn) and go away.
    p = txn_producer(b, txn_id)
    c = eos_consumer(b, group)
    try:
        c.subscribe([in_topic])
        nxt = dict(committed)
        while sum(committed.values()) < n // 2:
            txn_chunk(p, c, poll_chunk(c, nxt, ends))
            p.commit_transaction(API_TIMEOUT)
            committed = dict(nxt)

        msgs = poll_chunk(c, nxt, ends)
        assert msgs
        txn_chunk(p, c, msgs)
        p.abort_transaction(API_TIMEOUT)
        uncommitted_extra += len(msgs)
        # The aborted transaction's offsets were not committed: rewind to what is.
        tps = c.committed(c.assignment(), timeout=10)
        assert {tp.partition: max(tp.offset, 0) for tp in tps} == committed
        for tp in tps:
            c.seek(TopicPartition(in_topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
        nxt = dict(committed)  # poll_chunk checks the consumer really starts there again
        txn_chunk(p, c, poll_chunk(c, nxt, ends))
        p.commit_transaction(API_TIMEOUT)
        committed = dict(nxt)

        msgs = poll_chunk(c, nxt, ends)
        assert msgs
        txn_chunk(p, c, msgs)
        uncommitted_extra += len(msgs)
    finally:
        c.close()  # auto commit is off: nothing is committed here
    del p  # destroyed with its transaction open
    print("before the restart: committed %s of %s, %d records in uncommitted transactions"
          % (committed, ends, uncommitted_extra))

    if stop == "kill9":
        rbroker.kill9()  # no clean shutdown: recovery and the state topics' replay must do
    else:
        assert rbroker.stop() == 0, rbroker.log_tail()
    rbroker.start(timeout_s=30)

    # After the restart: the same transactional.id aborts the open transaction, and the same group
    # resumes from the offsets of the last committed transaction.
    p = txn_producer(b, txn_id)
    assert group_offsets(b, group, in_topic, parts) == committed
    c = eos_consumer(b, group)
    try:
        c.subscribe([in_topic])
        nxt = dict(committed)
        while committed != ends:
            msgs = poll_chunk(c, nxt, ends)
            assert msgs
            txn_chunk(p, c, msgs)
            p.commit_transaction(API_TIMEOUT)
            committed = dict(nxt)
    finally:
        c.close()

    out = read_to_end(b, out_topic, range(parts), "read_committed")
    got = sorted(v for q in range(parts) for v in values(out[q]))
    assert len(got) == len(set(got)), "duplicates in the output: %d records, %d distinct" % (len(got), len(set(got)))
    assert got == sorted(b"out-in-%d" % i for i in range(n))
    for q in range(parts):  # each input partition transformed in order into the same output partition
        assert values(out[q]) == [b"out-" + v for v in inputs[q]], "output partition %d" % q
    assert group_offsets(b, group, in_topic, parts) == ends
    # The aborted and the abandoned transactions' records are in the log, just not committed.
    ru = read_to_end(b, out_topic, range(parts), "read_uncommitted")
    assert sum(len(v) for v in ru.values()) == n + uncommitted_extra
