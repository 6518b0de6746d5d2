"""Shared confluent-kafka helpers for the pytest suite and the crash suite."""
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap, name, partitions, config=None):
    a = admin(bootstrap)  # keep the handle alive until the future resolves
    fs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=15)
    fs[name].result(timeout=20)


def consumer(bootstrap, **extra):
    # No group membership: a group.id is configured (librdkafka wants one) but partitions are
    # assign()ed explicitly and nothing is ever committed.
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "fjord-compat-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    }
    conf.update(extra)
    return Consumer(conf)


def read_all(bootstrap, topic, partitions, timeout_s=60.0, start=OFFSET_BEGINNING, isolation="read_uncommitted"):
    """Every record of `partitions` from `start` to the end the consumer's isolation.level sees (the
    high watermark, or the last stable offset for read_committed), as a dict partition -> [Message]."""
    c = consumer(bootstrap, **{"isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        out = {p: [] for p in partitions}
        at_eof = set()
        deadline = time.monotonic() + timeout_s
        while at_eof != set(partitions):
            if time.monotonic() > deadline:
                raise AssertionError("timed out reading %s (%s): eof for %s, counts %s"
                                     % (topic, isolation, sorted(at_eof), {p: len(v) for p, v in out.items()}))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            at_eof.discard(m.partition())
            out[m.partition()].append(m)
        return out
    finally:
        c.close()


class Deliveries:
    """Delivery-report collector: successes in callback order, and errors."""

    def __init__(self):
        self.ok = []      # (partition, offset, key, value)
        self.errors = []  # (error, key, value)

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append((err, msg.key(), msg.value()))
        else:
            self.ok.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
