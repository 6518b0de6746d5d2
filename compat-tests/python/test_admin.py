"""Topic and broker administration through the clients' admin APIs (what kafka-configs.sh,
kafka-topics.sh --alter and kafka-delete-records.sh do): alter and describe configs (full and
incremental, topic and broker), add partitions, delete records (the earliest offset moves),
describe log dirs, SCRAM credentials (kafka-configs.sh --entity-type users). confluent-kafka and kafka-python, against the session broker.
"""
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from helpers import admin, create_topic


def produce_n(bootstrap, topic, n, partition=0):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=partition)
    assert p.flush(30) == 0


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "admin-wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def describe(bootstrap, rtype, name):
    a = admin(bootstrap)
    res = ConfigResource(rtype, name)
    return a.describe_configs([res])[res].result(timeout=20)


def test_alter_configs_and_incremental_alter_configs_change_a_topic_live(bootstrap, topic):
    create_topic(bootstrap, topic, 1)
    a = admin(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "3600000", "max.message.bytes": "5000"})
    a.alter_configs([res])[res].result(timeout=20)
    cfg = describe(bootstrap, ResourceType.TOPIC, topic)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Live: a record over the new max.message.bytes is refused at once.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "enable.idempotence": False,
                  "message.max.bytes": 100000})
    errors = []
    p.produce(topic, value=b"x" * 20000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == 10, errors  # MESSAGE_TOO_LARGE

    inc = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([inc])[inc].result(timeout=20)
    cfg = describe(bootstrap, ResourceType.TOPIC, topic)
    assert cfg["cleanup.policy"].value == "delete,compact"
    assert cfg["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert cfg["retention.ms"].value == "3600000", "incremental keeps what it does not name"

    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"no.such.config": "1"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([bad])[bad].result(timeout=20)
    assert "INVALID_CONFIG" in str(e.value) or "Unknown topic config" in str(e.value)


def test_broker_configs_change_dynamically_and_static_ones_are_refused(bootstrap, topic):
    create_topic(bootstrap, topic, 1)
    a = admin(bootstrap)
    inc = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([inc])[inc].result(timeout=20)
    try:
        broker = describe(bootstrap, ResourceType.BROKER, "1")
        assert broker["log.retention.ms"].value == "86400000"
        assert broker["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        # A topic without its own value inherits the dynamic one.
        t = describe(bootstrap, ResourceType.TOPIC, topic)
        assert t["retention.ms"].value == "86400000"
        static = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
            ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException):
            a.incremental_alter_configs([static])[static].result(timeout=20)
    finally:
        undo = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
            ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
        a.incremental_alter_configs([undo])[undo].result(timeout=20)
    assert describe(bootstrap, ResourceType.TOPIC, topic)["retention.ms"].value == "604800000"


def test_create_partitions_adds_partitions_that_take_records(bootstrap, topic):
    create_topic(bootstrap, topic, 2)
    a = admin(bootstrap)
    a.create_partitions([NewPartitions(topic, 5)])[topic].result(timeout=20)
    md = a.list_topics(topic, timeout=10).topics[topic]
    assert sorted(md.partitions) == [0, 1, 2, 3, 4]
    produce_n(bootstrap, topic, 10, partition=4)
    assert watermarks(bootstrap, topic, 4) == (0, 10)
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=20)
    assert "INVALID_PARTITIONS" in str(e.value) or "increase" in str(e.value)


def test_delete_records_moves_the_earliest_offset(bootstrap, topic):
    create_topic(bootstrap, topic, 1)
    produce_n(bootstrap, topic, 100)
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0, 40)
    res = a.delete_records([tp])[tp].result(timeout=20)
    assert res.low_watermark == 40
    assert watermarks(bootstrap, topic) == (40, 100)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "admin-dr", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])  # below the low watermark: reset to the earliest
        m = None
        for _ in range(40):
            m = c.poll(0.5)
            if m is not None and not m.error():
                break
        assert m is not None and m.offset() == 40 and m.value() == b"v40"
    finally:
        c.close()


def test_scram_credentials_are_upserted_described_and_deleted(bootstrap, topic):
    a = admin(bootstrap)
    user = "scram-" + topic

    def described(users):
        if users is None:  # every user: one future for the whole answer
            return a.describe_user_scram_credentials().result(timeout=20)
        return {u: f.result(timeout=20) for u, f in a.describe_user_scram_credentials(users).items()}

    with pytest.raises(KafkaException) as e:
        described([user])
    assert e.value.args[0].code() == 91, e.value  # RESOURCE_NOT_FOUND
    ups = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 10000), b"pw", b"salt")]
    for f in a.alter_user_scram_credentials(ups).values():
        f.result(timeout=20)
    ups = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"pw2")]
    for f in a.alter_user_scram_credentials(ups).values():
        f.result(timeout=20)
    infos = described([user])[user].scram_credential_infos
    assert sorted((i.mechanism, i.iterations) for i in infos) == [
        (ScramMechanism.SCRAM_SHA_256, 10000), (ScramMechanism.SCRAM_SHA_512, 8192)], infos
    assert user in described(None), "no names: every user with a credential"
    # Fewer iterations than SCRAM allows: UNACCEPTABLE_CREDENTIAL, nothing changes.
    bad = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw")]
    with pytest.raises(KafkaException) as e:
        for f in a.alter_user_scram_credentials(bad).values():
            f.result(timeout=20)
    assert e.value.args[0].code() == 93, e.value  # UNACCEPTABLE_CREDENTIAL
    for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        for f in a.alter_user_scram_credentials([UserScramCredentialDeletion(user, m)]).values():
            f.result(timeout=20)
    with pytest.raises(KafkaException) as e:
        described([user])
    assert e.value.args[0].code() == 91, e.value


def test_kafka_python_admin_partitions_records_configs_and_log_dirs(bootstrap, topic):
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions as KNewPartitions
    from kafka.structs import TopicPartition as KTopicPartition
    create_topic(bootstrap, topic, 1)
    produce_n(bootstrap, topic, 20)
    k = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    try:
        k.create_partitions({topic: KNewPartitions(total_count=3)})
        assert len(k.describe_topics([topic])[0]["partitions"]) == 3
        k.delete_records({KTopicPartition(topic, 0): 15})
        assert watermarks(bootstrap, topic) == (15, 20)
        k.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "3600000"})])
        assert describe(bootstrap, ResourceType.TOPIC, topic)["segment.ms"].value == "3600000"
        dirs = k.describe_log_dirs()
        text = repr(dirs)
        assert topic in text, text[:500]
    finally:
        k.close()
