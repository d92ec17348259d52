"""kafka-python 3.0: producing (acks 1 and all, gzip), consuming with assign and seek, and the
admin client's topic operations. Also pinned to old protocol versions through `api_version`."""

import pytest

from conftest import BASE_TS
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError


def produce(broker, topic, count, partitions, **config):
    # Idempotence needs InitProducerId (the durability issue); kafka-python 3 turns it on by
    # default when the broker offers it.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, **config)
    futures = [producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % partitions,
                             headers=[("seq", str(i).encode())], timestamp_ms=BASE_TS + i)
               for i in range(count)]
    metadata = [f.get(timeout=30) for f in futures]
    producer.close()
    return metadata


def consume(broker, topic, partitions, count, **config):
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=10_000, **config)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    records = []
    for record in consumer:
        records.append(record)
        if len(records) == count:
            break
    consumer.close()
    return records


def check_round_trip(metadata, records, partitions, acks=1):
    assert len(records) == len(metadata)
    if acks != 0:  # acks=0 reports no offsets
        for partition in range(partitions):
            offsets = sorted(m.offset for m in metadata if m.partition == partition)
            assert offsets == list(range(len(offsets)))
    for record in records:
        i = int(record.key[1:])
        assert record.value == b"v%d" % i
        assert record.partition == i % partitions
        assert record.headers == [("seq", str(i).encode())]
        assert record.timestamp == BASE_TS + i


@pytest.mark.parametrize("acks,compression", [
    (1, None), ("all", "gzip"), (1, "snappy"), (1, "lz4"), (1, "zstd"), (0, None)])
def test_produce_and_consume(broker, topic_name, acks, compression, request):
    request.node.add_marker(pytest.mark.matrix("kafka-python", f"produce acks={acks}"))
    request.node.add_marker(pytest.mark.matrix(
        "kafka-python", f"produce and consume: compression {compression or 'none'}"))
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    metadata = produce(broker, topic_name, 40, 2, acks=acks, compression_type=compression)
    records = consume(broker, topic_name, 2, 40)
    check_round_trip(metadata, records, 2, acks)
    assert sorted((r.partition, r.offset) for r in records) == sorted(
        [(0, o) for o in range(20)] + [(1, o) for o in range(20)])
    admin.close()


@pytest.mark.matrix("kafka-python", "old protocol versions (api_version pinned)")
def test_pinned_old_api_version(broker, topic_name):
    # 2.1 selects Produce v7, Fetch v10, Metadata v7 and friends instead of the newest.
    metadata = produce(broker, topic_name, 10, 1, api_version=(2, 1))
    records = consume(broker, topic_name, 1, 10, api_version=(2, 1))
    check_round_trip(metadata, records, 1)


@pytest.mark.matrix("kafka-python", "metadata")
@pytest.mark.matrix("kafka-python", "add partitions (kafka-topics --alter)")
@pytest.mark.matrix("kafka-python", "create, list, describe and delete topics (kafka-topics)")
@pytest.mark.matrix("kafka-python", "describe and alter topic configs (kafka-configs)")
def test_topic_administration(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, 3, 1, topic_configs={"retention.ms": "60000"})])
    assert topic_name in admin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic_name, 1, 1)])
    (described,) = admin.describe_topics([topic_name])
    assert [p["partition_index"] for p in described["partitions"]] == [0, 1, 2]
    assert all(p["leader_id"] == 1 for p in described["partitions"])
    admin.create_partitions({topic_name: NewPartitions(total_count=4)})
    (described,) = admin.describe_topics([topic_name])
    assert len(described["partitions"]) == 4
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
    # By default kafka-python lists only modified configs, with where each came from.
    retention = configs["topic"][topic_name]["retention.ms"]
    assert (retention["value"], retention["config_source"]) == ("60000", "DYNAMIC_TOPIC_CONFIG")
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "90000"})])
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
    assert configs["topic"][topic_name]["retention.ms"]["value"] == "90000"
    admin.delete_topics([topic_name])
    assert topic_name not in admin.list_topics()
    admin.close()


@pytest.mark.matrix("kafka-python", "DescribeLogDirs")
def test_describe_log_dirs_reports_partition_sizes(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    produce(broker, topic_name, 10, 1)  # everything to partition 0
    (described,) = admin.describe_log_dirs()
    (log_dir,) = described["log_dirs"]
    assert log_dir["log_dir"] == str(broker.data_dir)
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
    (topic,) = [t for t in log_dir["topics"] if t["name"] == topic_name]
    sizes = {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}
    on_disk = sum(f.stat().st_size for f in (broker.data_dir / f"{topic_name}-0").glob("*.log"))
    assert sizes == {0: on_disk, 1: 0} and on_disk > 10 * 3
    admin.close()


@pytest.mark.matrix("kafka-python", "describe cluster")
def test_describe_cluster(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    cluster = admin.describe_cluster()
    admin.close()
    assert cluster["controller_id"] == 1
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, "127.0.0.1", broker.port)]
    assert len(cluster["cluster_id"]) == 22


@pytest.mark.matrix("kafka-python", "timestamps and ListOffsets by time")
def test_offsets_for_times(broker, topic_name):
    produce(broker, topic_name, 10, 1)  # timestamps BASE_TS + i
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = TopicPartition(topic_name, 0)
    found = consumer.offsets_for_times({tp: BASE_TS + 4})
    assert (found[tp].offset, found[tp].timestamp) == (4, BASE_TS + 4)
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 10}
    consumer.close()
