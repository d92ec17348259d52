"""aiokafka 0.14 (asyncio): producing with each acks and gzip, consuming with assign and seek,
the admin client's topic and config operations."""

import asyncio

import pytest

from conftest import BASE_TS
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=120))


async def produce(bootstrap, topic, count, **config):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **config)
    await producer.start()
    try:
        sent = []
        for i in range(count):
            sent.append(await producer.send_and_wait(
                topic, key=b"k%d" % i, value=None if i % 7 == 6 else b"v%d" % i,
                headers=[("i", str(i).encode())], timestamp_ms=BASE_TS + i, partition=i % 2))
        return sent
    finally:
        await producer.stop()


async def consume(bootstrap, topic, count):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records.extend(messages)
        # seek: reading partition 0 again from offset 2
        consumer.seek(partitions[0], 2)
        again = []
        while not again:
            batch = await consumer.getmany(partitions[0], timeout_ms=1000)
            again = batch.get(partitions[0], [])
        return records, again[0]
    finally:
        await consumer.stop()


async def create(bootstrap, topic, partitions=2, configs=None):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()


@pytest.mark.parametrize("acks,compression", [
    (1, None), ("all", "gzip"), (1, "snappy"), (1, "lz4"), (1, "zstd"), (0, None)])
def test_produce_and_consume_with_assign_and_seek(broker, topic_name, acks, compression, request):
    request.node.add_marker(pytest.mark.matrix("aiokafka", f"produce acks={acks}"))
    request.node.add_marker(pytest.mark.matrix("aiokafka", f"produce and consume: compression {compression or 'none'}"))
    request.node.add_marker(pytest.mark.matrix("aiokafka", "consume with assign and seek"))
    run(create(broker.bootstrap, topic_name))
    sent = run(produce(broker.bootstrap, topic_name, 20, acks=acks, compression_type=compression))
    if acks != 0:
        assert sorted((m.partition, m.offset) for m in sent) == sorted(
            [(0, o) for o in range(10)] + [(1, o) for o in range(10)])
    records, again = run(consume(broker.bootstrap, topic_name, 20))
    assert len(records) == 20
    for record in records:
        i = int(record.key[1:])
        assert record.partition == i % 2 and record.offset == i // 2
        assert record.value == (None if i % 7 == 6 else b"v%d" % i)
        assert list(record.headers) == [("i", str(i).encode())]
        assert record.timestamp == BASE_TS + i
    assert (again.partition, again.offset, again.key) == (0, 2, b"k4")


@pytest.mark.matrix("aiokafka", "metadata")
@pytest.mark.matrix("aiokafka", "create, list, describe and delete topics (kafka-topics)")
@pytest.mark.matrix("aiokafka", "describe and alter topic configs (kafka-configs)")
@pytest.mark.matrix("aiokafka", "add partitions (kafka-topics --alter)")
def test_admin(broker, topic_name):
    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic_name, 2, 1, topic_configs={"retention.ms": "60000"})])
            listed = await admin.list_topics()
            await admin.create_partitions({topic_name: NewPartitions(total_count=3)})
            described = await admin.describe_topics([topic_name])
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name,
                                                      configs={"retention.ms": "120000"})])
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
            await admin.delete_topics([topic_name])
            after = await admin.list_topics()
            return listed, described, configs, after
        finally:
            await admin.close()

    listed, described, configs, after = run(scenario())
    assert topic_name in listed and topic_name not in after
    assert len(described[0]["partitions"]) == 3
    entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert entries["retention.ms"] == "120000"
    assert entries["segment.bytes"] == "1073741824"


@pytest.mark.matrix("aiokafka", "timestamps and ListOffsets by time")
def test_offsets_for_times(broker, topic_name):
    async def scenario():
        await create(broker.bootstrap, topic_name)
        await produce(broker.bootstrap, topic_name, 20)  # partition i % 2, timestamp base + i
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topic_name, 1)
            found = await consumer.offsets_for_times({tp: BASE_TS + 7})
            ends = await consumer.end_offsets([tp])
            return found[tp], ends[tp]
        finally:
            await consumer.stop()

    found, end = run(scenario())
    # Partition 1 holds i = 1, 3, 5, ...: the first at or after base + 7 is i = 7, offset 3.
    assert (found.offset, found.timestamp) == (3, BASE_TS + 7)
    assert end == 10


@pytest.mark.matrix("aiokafka", "describe cluster")
def test_describe_cluster(broker):
    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.describe_cluster()
        finally:
            await admin.close()

    cluster = run(scenario())
    assert cluster["controller_id"] == 1
    assert [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, "127.0.0.1", broker.port)]
