"""Scenarios that arrived with later features (consumer groups, idempotent producers,
DeleteRecords), across the clients that have them. Each is a real test of what a user would
check; those whose broker side belongs to an open issue are marked expected-to-fail with that
issue, and show as passing in the matrix once it lands."""

import subprocess
import shutil
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

def create_topic(broker, name, partitions=1):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    client.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def produce_plain(broker, topic, count):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False})
    for i in range(count):
        producer.produce(topic, value=b"m%d" % i)
    assert producer.flush(30) == 0


@pytest.mark.timeout(90)
@pytest.mark.matrix("confluent-kafka", "consumer groups: subscribe, commit, resume")
def test_confluent_group_commit_and_resume(broker, topic_name):
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)

    def consumer():
        return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-" + topic_name,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})

    first = consumer()
    first.subscribe([topic_name])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        message = first.poll(0.5)
        if message is not None and message.error() is None:
            got.append(message.offset())
    assert got[:5] == [0, 1, 2, 3, 4]
    first.commit(offsets=[TopicPartition(topic_name, 0, 5)], asynchronous=False)
    first.close()
    second = consumer()
    second.subscribe([topic_name])
    deadline = time.monotonic() + 30
    resumed = None
    while resumed is None and time.monotonic() < deadline:
        message = second.poll(0.5)
        if message is not None and message.error() is None:
            resumed = message.offset()
    second.close()
    assert resumed == 5


@pytest.mark.matrix("confluent-kafka", "idempotent producing")
def test_confluent_idempotent_producer(broker, topic_name):
    create_topic(broker, topic_name)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    errors = []
    for i in range(20):
        producer.produce(topic_name, value=b"i%d" % i, on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None] * 20


@pytest.mark.matrix("confluent-kafka", "DeleteRecords")
def test_confluent_delete_records(broker, topic_name):
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = client.delete_records([TopicPartition(topic_name, 0, 4)])
    result = futures[TopicPartition(topic_name, 0, 4)].result(timeout=30)
    assert result.low_watermark == 4


@pytest.mark.matrix("kafka-python", "idempotent producing")
def test_kafka_python_default_producer_is_idempotent(broker, topic_name):
    create_topic(broker, topic_name)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)  # idempotence on by default
    offsets = [producer.send(topic_name, value=b"x").get(timeout=30).offset for _ in range(5)]
    producer.close()
    assert offsets == [0, 1, 2, 3, 4]


@pytest.mark.timeout(90)
@pytest.mark.matrix("kafka-python", "consumer groups: subscribe, commit, resume")
def test_kafka_python_group_consumer(broker, topic_name):
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)
    consumer = KafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap, group_id="g-" + topic_name,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=20_000)
    offsets = [record.offset for _, record in zip(range(10), consumer)]
    consumer.commit()
    committed = consumer.committed(__import__("kafka").TopicPartition(topic_name, 0))
    consumer.close()
    assert offsets == list(range(10))
    assert committed == 10


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.matrix("kcat", "balanced consumer group (-G)")
def test_kcat_group_consumer(broker, topic_name):
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 5)
    result = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-G", "g-" + topic_name, "-o", "beginning", "-c", "5",
         "-q", "-f", "%o\\n", topic_name],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "2", "3", "4"]


GROUP_ADMIN = "consumer group admin: list, describe, delete, list and alter offsets (kafka-consumer-groups)"


def commit_with_confluent(broker, topic, group):
    """Commits offset 3 for `group` the way a consumer does."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    finally:
        consumer.close()


@pytest.mark.timeout(90)
@pytest.mark.matrix("confluent-kafka", GROUP_ADMIN)
def test_confluent_group_admin(broker, topic_name):
    from confluent_kafka import ConsumerGroupTopicPartitions
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 5)
    group = "g-" + topic_name
    commit_with_confluent(broker, topic_name, group)
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = client.list_consumer_groups().result(timeout=30)
    assert group in [g.group_id for g in listed.valid]
    described = client.describe_consumer_groups([group])[group].result(timeout=30)
    assert described.group_id == group
    offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert [(tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(0, 3)]
    client.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic_name, 0, 1)])])[
        group].result(timeout=30)
    offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert [(tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(0, 1)]
    client.delete_consumer_groups([group])[group].result(timeout=30)
    assert group not in [g.group_id for g in client.list_consumer_groups().result(timeout=30).valid]


@pytest.mark.timeout(90)
@pytest.mark.matrix("kafka-python", GROUP_ADMIN)
def test_kafka_python_group_admin(broker, topic_name):
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata
    create_topic(broker, topic_name)
    group = "g-" + topic_name
    commit_with_confluent(broker, topic_name, group)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # kafka-python 3 names these list_groups, list_group_offsets, alter_group_offsets and
        # delete_groups (2.x: list_consumer_groups, ...).
        assert group in [g["group_id"] for g in admin.list_groups()]
        offsets = admin.list_group_offsets({group: None})[group]
        assert offsets[KTopicPartition(topic_name, 0)].offset == 3
        admin.alter_group_offsets(group, {KTopicPartition(topic_name, 0): OffsetAndMetadata(1, "", -1)})
        assert admin.list_group_offsets({group: None})[group][KTopicPartition(topic_name, 0)].offset == 1
        admin.delete_groups([group])
        assert group not in [g["group_id"] for g in admin.list_groups()]
    finally:
        admin.close()


@pytest.mark.matrix("kafka-python", "DeleteRecords")
def test_kafka_python_delete_records(broker, topic_name):
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.delete_records({KTopicPartition(topic_name, 0): 4})
        assert result[KTopicPartition(topic_name, 0)]["low_watermark"] == 4
    finally:
        admin.close()


def aiokafka_run(coroutine):
    import asyncio
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))


@pytest.mark.matrix("aiokafka", "idempotent producing")
def test_aiokafka_idempotent_producer(broker, topic_name):
    from aiokafka import AIOKafkaProducer

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            return [(await producer.send_and_wait(topic_name, b"x", partition=0)).offset for _ in range(5)]
        finally:
            await producer.stop()

    create_topic(broker, topic_name)
    assert aiokafka_run(scenario()) == [0, 1, 2, 3, 4]


@pytest.mark.timeout(90)
@pytest.mark.matrix("aiokafka", "consumer groups: subscribe, commit, resume")
def test_aiokafka_group_consumer(broker, topic_name):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def scenario():
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap, group_id="g-" + topic_name,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            offsets = []
            while len(offsets) < 10:
                batch = await consumer.getmany(timeout_ms=1000)
                offsets += [m.offset for messages in batch.values() for m in messages]
            await consumer.commit()
            return offsets, await consumer.committed(ATopicPartition(topic_name, 0))
        finally:
            await consumer.stop()

    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)
    offsets, committed = aiokafka_run(scenario())
    assert offsets == list(range(10)) and committed == 10


@pytest.mark.matrix("aiokafka", "DeleteRecords")
def test_aiokafka_delete_records(broker, topic_name):
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.delete_records({ATopicPartition(topic_name, 0): RecordsToDelete(4)})
        finally:
            await admin.close()

    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)
    result = aiokafka_run(scenario())
    assert result[ATopicPartition(topic_name, 0)] == 4


@pytest.mark.timeout(90)
@pytest.mark.matrix("aiokafka", GROUP_ADMIN)
def test_aiokafka_group_admin(broker, topic_name):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def scenario(group):
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            listed = await admin.list_consumer_groups()
            described = await admin.describe_consumer_groups([group])
            offsets = await admin.list_consumer_group_offsets(group)
            return listed, described, offsets
        finally:
            await admin.close()

    create_topic(broker, topic_name)
    group = "g-" + topic_name
    commit_with_confluent(broker, topic_name, group)
    listed, described, offsets = aiokafka_run(scenario(group))
    assert group in [g[0] for g in listed]
    assert offsets[ATopicPartition(topic_name, 0)].offset == 3


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.matrix("kcat", "idempotent producing")
def test_kcat_idempotent_producer(broker, topic_name):
    create_topic(broker, topic_name)
    result = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic_name, "-X", "enable.idempotence=true"],
                            input="a\nb\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ERROR" not in result.stderr, result.stderr
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic_name, "-o", "beginning", "-e", "-q",
                          "-f", "%o:%s\\n"], capture_output=True, text=True, timeout=60).stdout
    assert out.split() == ["0:a", "1:b"]
