"""A clean restart (SIGTERM, exit 0, start on the same data dir and port) keeps every record
acknowledged with acks=all, at the same offsets, and new records continue the offsets."""

import pytest

from test_confluent_kafka import consume_all, create_topic, produce

PARTITIONS = 2


def messages(prefix, count):
    return [{"key": f"{prefix}-k{i}".encode(), "value": f"{prefix}-v{i}".encode(),
             "headers": [("n", str(i).encode())], "partition": i % PARTITIONS}
            for i in range(count)]


def records_by_partition(records):
    return {p: [(r.offset(), r.key(), r.value(), r.headers()) for r in records if r.partition() == p]
            for p in range(PARTITIONS)}


def expected_by_partition(batches):
    """What the log must hold: the batches in order, offsets dense from 0 per partition."""
    expected = {p: [] for p in range(PARTITIONS)}
    for batch in batches:
        for m in batch:
            log = expected[m["partition"]]
            log.append((len(log), m["key"], m["value"], m["headers"]))
    return expected


@pytest.mark.matrix("confluent-kafka", "restart on the same data dir")
def test_acknowledged_records_survive_restart_and_offsets_continue(broker_factory, topic_name):
    broker = broker_factory("--shards", "2")
    create_topic(broker, topic_name, partitions=PARTITIONS)
    before = messages("before", 300)
    delivered = produce(broker, topic_name, before, **{"acks": "all", "compression.type": "lz4"})
    assert len(delivered) == 300

    broker.stop()  # asserts exit code 0
    broker.start()

    expected = expected_by_partition([before])
    assert records_by_partition(consume_all(broker, topic_name, PARTITIONS, 300)) == expected

    after = messages("after", 40)
    delivered = produce(broker, topic_name, after, acks="all")
    offsets = {p: sorted(m.offset() for m in delivered if m.partition() == p) for p in range(PARTITIONS)}
    assert offsets == {p: list(range(150, 170)) for p in range(PARTITIONS)}, \
        "offsets after a restart must continue where the log ended"

    # Once more: what was appended after the first restart survives the second one.
    broker.stop()
    broker.start()
    expected = expected_by_partition([before, after])
    assert records_by_partition(consume_all(broker, topic_name, PARTITIONS, 340)) == expected
