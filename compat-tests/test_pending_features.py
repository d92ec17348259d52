"""Scenarios whose broker side belongs to other open issues. Each is a real test of what a user
would check; it is marked expected-to-fail with the issue that brings the missing API, and
shows as passing in the matrix once that lands."""

import subprocess
import shutil
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

GROUPS = pytest.mark.xfail(
    reason="consumer groups (JoinGroup/SyncGroup/OffsetCommit/OffsetFetch) are issue 4", strict=False)
IDEMPOTENCE = pytest.mark.xfail(
    reason="idempotent producers need InitProducerId (durability issue 3)", strict=False)
DELETE_RECORDS = pytest.mark.xfail(reason="DeleteRecords is the durability issue (3)", strict=False)


def create_topic(broker, name, partitions=1):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    client.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def produce_plain(broker, topic, count):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False})
    for i in range(count):
        producer.produce(topic, value=b"m%d" % i)
    assert producer.flush(30) == 0


@GROUPS
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


@IDEMPOTENCE
@pytest.mark.matrix("confluent-kafka", "idempotent producing")
def test_confluent_idempotent_producer(broker, topic_name):
    create_topic(broker, topic_name)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    errors = []
    for i in range(20):
        producer.produce(topic_name, value=b"i%d" % i, on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None] * 20


@DELETE_RECORDS
@pytest.mark.matrix("confluent-kafka", "DeleteRecords")
def test_confluent_delete_records(broker, topic_name):
    create_topic(broker, topic_name)
    produce_plain(broker, topic_name, 10)
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = client.delete_records([TopicPartition(topic_name, 0, 4)])
    result = futures[TopicPartition(topic_name, 0, 4)].result(timeout=30)
    assert result.low_watermark == 4


@IDEMPOTENCE
@pytest.mark.matrix("kafka-python", "idempotent producing")
def test_kafka_python_default_producer_is_idempotent(broker, topic_name):
    create_topic(broker, topic_name)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)  # idempotence on by default
    offsets = [producer.send(topic_name, value=b"x").get(timeout=30).offset for _ in range(5)]
    producer.close()
    assert offsets == [0, 1, 2, 3, 4]


@GROUPS
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


@GROUPS
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
