"""confluent-kafka (librdkafka 2.16): every codec and acks, consumption with assign and seek,
timestamps and ListOffsets, and what kafka-topics / kafka-configs do through the AdminClient."""

import time

import pytest
from confluent_kafka import (KafkaError, KafkaException, Consumer, Producer, TopicPartition,
                             TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic, ResourceType)

from conftest import BASE_TS, wait_until

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions=1, config=None):
    client = admin(broker)  # must outlive the future
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(timeout=30)


def consume_all(broker, topic, partitions, expected, start=0):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compat-assign",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    records = []
    deadline = time.monotonic() + 60
    try:
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            records.append(message)
    finally:
        consumer.close()
    assert len(records) == expected, f"consumed {len(records)} of {expected}"
    return records


def produce(broker, topic, messages, **config):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                         "enable.idempotence": False, **config})
    delivered = []
    errors = []

    def report(err, msg):
        (errors if err else delivered).append(err or msg)

    for m in messages:
        producer.produce(topic, on_delivery=report, **m)
    assert producer.flush(30) == 0
    assert errors == []
    return delivered


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("codec", CODECS)
def test_produce_each_codec_and_acks_then_consume(broker, topic_name, codec, acks, request):
    request.node.add_marker(pytest.mark.matrix("confluent-kafka", f"produce and consume: compression {codec}"))
    request.node.add_marker(pytest.mark.matrix("confluent-kafka", f"produce acks={acks}"))
    create_topic(broker, topic_name, partitions=2)
    messages = []
    for i in range(60):
        messages.append({
            "key": f"key-{i}".encode(),
            "value": None if i % 10 == 9 else (f"value-{i}-" * (i % 7 + 1)).encode(),
            "headers": [("i", str(i).encode()), ("codec", codec.encode())],
            "timestamp": BASE_TS + i,
            "partition": i % 2,
        })
    delivered = produce(broker, topic_name, messages, **{"compression.type": codec, "acks": acks})
    if acks != "0":
        # acks=0 gets no offsets back; the others report each message's offset.
        by_partition = {0: [], 1: []}
        for msg in delivered:
            by_partition[msg.partition()].append(msg.offset())
        assert sorted(by_partition[0]) == list(range(30)) and sorted(by_partition[1]) == list(range(30))
    records = consume_all(broker, topic_name, 2, 60)
    for partition in (0, 1):
        got = [r for r in records if r.partition() == partition]
        assert [r.offset() for r in got] == list(range(30))
        for offset, record in enumerate(got):
            i = offset * 2 + partition
            assert record.key() == messages[i]["key"]
            assert record.value() == messages[i]["value"]
            assert record.headers() == messages[i]["headers"]
            assert record.timestamp() == (TIMESTAMP_CREATE_TIME, BASE_TS + i)


@pytest.mark.matrix("confluent-kafka", "consume with assign and seek")
def test_seek_moves_the_consumer(broker, topic_name):
    create_topic(broker, topic_name)
    produce(broker, topic_name, [{"value": f"m{i}".encode()} for i in range(50)])
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compat-seek",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        first = wait_until(lambda: consumer.poll(0.5), what="a first record")
        assert first.offset() == 0
        consumer.seek(TopicPartition(topic_name, 0, 42))
        after = wait_until(lambda: consumer.poll(0.5), what="a record after seek")
        assert (after.offset(), after.value()) == (42, b"m42")
    finally:
        consumer.close()


@pytest.mark.matrix("confluent-kafka", "timestamps and ListOffsets by time")
def test_list_offsets_by_time_and_watermarks(broker, topic_name):
    create_topic(broker, topic_name)
    produce(broker, topic_name, [{"value": b"x", "timestamp": BASE_TS + 1000 * i} for i in range(10)])
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compat-times"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 10)
        found = consumer.offsets_for_times([TopicPartition(topic_name, 0, BASE_TS + 4500)], timeout=10)
        assert found[0].offset == 5
        beyond = consumer.offsets_for_times([TopicPartition(topic_name, 0, BASE_TS + 10**9)], timeout=10)
        assert beyond[0].offset == -1  # no such record: the end (OFFSET_END)
    finally:
        consumer.close()


@pytest.mark.matrix("confluent-kafka", "LogAppendTime topics")
def test_log_append_time_topic_stamps_records(broker, topic_name):
    create_topic(broker, topic_name, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce(broker, topic_name, [{"value": b"a", "timestamp": BASE_TS}], acks="all")
    (record,) = consume_all(broker, topic_name, 1, 1)
    kind, ts = record.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before - 5000 <= ts <= int(time.time() * 1000) + 5000


@pytest.mark.matrix("confluent-kafka", "large messages near max.message.bytes")
def test_large_message_near_limit_and_over_it(broker, topic_name):
    create_topic(broker, topic_name, config={"max.message.bytes": "2000000"})
    big = bytes(range(256)) * (1_900_000 // 256)
    produce(broker, topic_name, [{"value": big}], **{"message.max.bytes": 3_000_000})
    (record,) = consume_all(broker, topic_name, 1, 1)
    assert record.value() == big
    # Over the topic's limit: the broker answers MESSAGE_TOO_LARGE.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 5_000_000,
                         "enable.idempotence": False, "retries": 0})
    errors = []
    producer.produce(topic_name, value=b"y" * 2_500_000, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert [e.code() for e in errors] == [KafkaError.MSG_SIZE_TOO_LARGE]


@pytest.mark.matrix("confluent-kafka", "metadata")
@pytest.mark.matrix("confluent-kafka", "create, list, describe and delete topics (kafka-topics)")
def test_topic_administration(broker, topic_name):
    client = admin(broker)
    create_topic(broker, topic_name, partitions=3)
    with pytest.raises(KafkaException) as exists:
        create_topic(broker, topic_name)
    assert exists.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as bad_name:
        create_topic(broker, "bad name!")
    assert bad_name.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    with pytest.raises(KafkaException) as bad_rf:
        client.create_topics([NewTopic(topic_name + "-rf3", 1, 3)])[topic_name + "-rf3"].result(timeout=30)
    assert bad_rf.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    metadata = client.list_topics(timeout=10)
    assert len(metadata.topics[topic_name].partitions) == 3
    assert metadata.topics[topic_name].partitions[2].leader == 1
    described = client.describe_topics(
        __import__("confluent_kafka").TopicCollection([topic_name]))[topic_name].result(timeout=30)
    assert [p.id for p in described.partitions] == [0, 1, 2]
    assert described.topic_id is not None
    client.delete_topics([topic_name])[topic_name].result(timeout=30)
    assert topic_name not in client.list_topics(timeout=10).topics


@pytest.mark.matrix("confluent-kafka", "add partitions (kafka-topics --alter)")
def test_create_partitions(broker, topic_name):
    client = admin(broker)
    create_topic(broker, topic_name, partitions=2)
    client.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(timeout=30)
    assert len(client.list_topics(timeout=10).topics[topic_name].partitions) == 5
    produce(broker, topic_name, [{"value": b"p4", "partition": 4}])
    with pytest.raises(KafkaException) as shrink:
        client.create_partitions([NewPartitions(topic_name, 3)])[topic_name].result(timeout=30)
    assert shrink.value.args[0].code() == KafkaError.INVALID_PARTITIONS


@pytest.mark.matrix("confluent-kafka", "describe and alter topic configs (kafka-configs)")
def test_describe_and_alter_configs(broker, topic_name):
    client = admin(broker)
    create_topic(broker, topic_name, config={"retention.ms": "3600000"})
    resource = ConfigResource(ResourceType.TOPIC, topic_name)

    def described():
        return client.describe_configs([resource])[resource].result(timeout=30)

    assert described()["retention.ms"].value == "3600000"
    assert described()["segment.bytes"].value == "1073741824"
    client.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])])[ConfigResource(ResourceType.TOPIC, topic_name)].result(timeout=30)
    after = described()
    assert after["retention.ms"].value == "7200000"
    assert after["cleanup.policy"].value == "delete,compact"
    client.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])])[ConfigResource(ResourceType.TOPIC, topic_name)].result(timeout=30)
    assert described()["retention.ms"].value == "604800000"
    with pytest.raises(KafkaException) as bad:
        client.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
            ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
        ])])[ConfigResource(ResourceType.TOPIC, topic_name)].result(timeout=30)
    assert bad.value.args[0].code() == KafkaError.INVALID_CONFIG
    broker_resource = ConfigResource(ResourceType.BROKER, "1")
    broker_configs = client.describe_configs([broker_resource])[broker_resource].result(timeout=30)
    assert broker_configs["num.partitions"].value == "1"


@pytest.mark.matrix("confluent-kafka", "describe cluster")
def test_describe_cluster(broker):
    client = admin(broker)
    cluster = client.describe_cluster().result(timeout=30)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.controller.id == 1
    assert cluster.cluster_id and len(cluster.cluster_id) == 22


@pytest.mark.matrix("confluent-kafka", "old protocol versions (api.version.request=false)")
def test_without_api_versions_request_using_a_fallback_version(broker, topic_name):
    # librdkafka then picks versions from the fallback broker version instead of asking.
    old = {"api.version.request": False, "broker.version.fallback": "2.1.0"}
    create_topic(broker, topic_name)
    produce(broker, topic_name, [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(20)], **old)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compat-old",
                         "enable.auto.commit": False, **old})
    records = []
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        deadline = time.monotonic() + 30
        while len(records) < 20 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                records.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    assert records == [(i, b"k%d" % i, b"v%d" % i) for i in range(20)]
