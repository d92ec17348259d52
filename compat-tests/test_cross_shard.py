"""One producer connection and one consumer talking to partitions spread over two shards:
per partition, every record comes back, in the order it was produced."""

import pytest

from test_confluent_kafka import consume_all, create_topic, produce

PARTITIONS = 8
PER_PARTITION = 400


@pytest.mark.matrix("confluent-kafka", "one connection across shards")
@pytest.mark.parametrize("acks", ["1", "all"])
def test_ordered_sequences_across_shards(broker_factory, topic_name, acks):
    broker = broker_factory("--shards", "2")
    create_topic(broker, topic_name, partitions=PARTITIONS)
    # Interleaved over the partitions so every Produce request spans both shards; several
    # requests in flight on the one connection (librdkafka's default of 5).
    sequence = [{"partition": p, "key": f"p{p}".encode(), "value": f"{p}:{i}".encode()}
                for i in range(PER_PARTITION) for p in range(PARTITIONS)]
    delivered = produce(broker, topic_name, sequence, acks=acks, **{"batch.num.messages": 50})
    for p in range(PARTITIONS):
        acked = [(m.offset(), m.value()) for m in delivered if m.partition() == p]
        assert sorted(acked) == [(i, f"{p}:{i}".encode()) for i in range(PER_PARTITION)], \
            f"partition {p}: acknowledged offsets do not match the produced order"

    records = consume_all(broker, topic_name, PARTITIONS, PARTITIONS * PER_PARTITION)
    for p in range(PARTITIONS):
        got = [(r.offset(), r.value()) for r in records if r.partition() == p]
        assert got == [(i, f"{p}:{i}".encode()) for i in range(PER_PARTITION)], \
            f"partition {p}: records lost, duplicated or reordered"
