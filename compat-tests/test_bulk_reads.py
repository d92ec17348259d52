"""Bulk reads, as a consumer catching up reads them: megabyte batches that the broker sends
straight from the page cache with sendfile. Every byte must arrive, in order, with whatever
fetch sizes the client asks for, before and after a restart, and from the middle of a batch."""

import hashlib
import os
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonTopicPartition

PARTITIONS = 3
MESSAGES_PER_PARTITION = 6000
VALUE_BYTES = 1000


def produce_bulk(broker, topic):
    """~6 MB of random values per partition, in batches of up to 1 MB; returns the values."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS,
                                  replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 200,
                         "batch.size": 1_000_000, "acks": "all",
                         "queue.buffering.max.kbytes": 65536})
    values = {p: [os.urandom(VALUE_BYTES) for _ in range(MESSAGES_PER_PARTITION)]
              for p in range(PARTITIONS)}
    errors = []
    for i in range(MESSAGES_PER_PARTITION):
        for p in range(PARTITIONS):
            producer.produce(topic, value=values[p][i], key=str(i).encode(), partition=p,
                             on_delivery=lambda err, _msg: err and errors.append(err))
        if i % 1000 == 999:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    return values


def digest(values):
    return hashlib.sha256(b"".join(values)).hexdigest()


def consume_confluent(broker, topic, start, config):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bulk",
                         "enable.auto.commit": False, **config})
    consumer.assign([TopicPartition(topic, p, start) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    offsets = {p: [] for p in range(PARTITIONS)}
    want = (MESSAGES_PER_PARTITION - start) * PARTITIONS
    deadline = time.monotonic() + 120
    count = 0
    try:
        while count < want and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                got[message.partition()].append(message.value())
                offsets[message.partition()].append(message.offset())
                count += 1
    finally:
        consumer.close()
    for p in range(PARTITIONS):
        assert offsets[p] == list(range(start, MESSAGES_PER_PARTITION)), f"partition {p}"
    return got


@pytest.mark.parametrize("fetch_sizes", ["defaults", "small partition limit", "large"])
def test_confluent_kafka_catch_up_is_byte_exact(broker, topic_name, fetch_sizes, request):
    request.node.add_marker(pytest.mark.matrix("confluent-kafka", "bulk catch-up reads"))
    values = produce_bulk(broker, topic_name)
    config = {
        "defaults": {},
        # Below one batch: each fetch still returns one whole batch (KIP-74).
        "small partition limit": {"max.partition.fetch.bytes": 100_000, "fetch.max.bytes": 1_000_000},
        "large": {"max.partition.fetch.bytes": 8_000_000, "fetch.max.bytes": 50_000_000},
    }[fetch_sizes]
    got = consume_confluent(broker, topic_name, 0, config)
    for p in range(PARTITIONS):
        assert digest(got[p]) == digest(values[p]), f"partition {p}"

    # After a restart the indexes come from disk; the bytes must be the same. Starting in
    # the middle of a batch reads it from its start and skips the records before.
    broker.restart()
    middle = MESSAGES_PER_PARTITION // 2 + 7
    got = consume_confluent(broker, topic_name, middle, config)
    for p in range(PARTITIONS):
        assert digest(got[p]) == digest(values[p][middle:]), f"partition {p}"


def test_kafka_python_catch_up_is_byte_exact(broker, topic_name, request):
    request.node.add_marker(pytest.mark.matrix("kafka-python", "bulk catch-up reads"))
    values = produce_bulk(broker, topic_name)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=2_000_000, fetch_max_bytes=10_000_000,
                             consumer_timeout_ms=60_000)
    partitions = [KafkaPythonTopicPartition(topic_name, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got = {p: [] for p in range(PARTITIONS)}
    want = MESSAGES_PER_PARTITION * PARTITIONS
    count = 0
    try:
        for message in consumer:
            assert message.offset == len(got[message.partition])
            got[message.partition].append(message.value)
            count += 1
            if count == want:
                break
    finally:
        consumer.close()
    assert count == want
    for p in range(PARTITIONS):
        assert digest(got[p]) == digest(values[p]), f"partition {p}"
