"""kafkajs 2.2.4 (Node): admin operations, producing with each acks and gzip (other codecs need
plugins kafkajs does not ship), ListOffsets; consumption needs a group (kafkajs has no assign)."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import BASE_TS

HERE = Path(__file__).resolve().parent / "kafkajs"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (HERE / "node_modules" / "kafkajs").exists(),
    reason="node or kafkajs is not installed (scripts/test installs them)")


def run(scenario, broker, topic, expect_ok=True):
    result = subprocess.run(["node", str(HERE / "scenario.js"), scenario, broker.bootstrap, topic],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "BASE_TS": str(BASE_TS)})
    if expect_ok:
        assert result.returncode == 0, f"{scenario}: {result.stderr}\n{broker.log()}"
        return json.loads(result.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.matrix("kafkajs", "metadata")
@pytest.mark.matrix("kafkajs", "create, list, describe and delete topics (kafka-topics)")
@pytest.mark.matrix("kafkajs", "describe and alter topic configs (kafka-configs)")
@pytest.mark.matrix("kafkajs", "add partitions (kafka-topics --alter)")
@pytest.mark.matrix("kafkajs", "describe cluster")
def test_admin(broker, topic_name):
    seen = run("admin", broker, topic_name)
    assert seen["created"] is True and seen["again"] is False  # false: it already existed
    assert seen["partitions"] == [[0, 1], [1, 1]]
    assert seen["grown"] == 4
    assert seen["configs"] == {"retention.ms": "7200000", "cleanup.policy": "delete"}
    assert seen["brokers"] == [[1, "127.0.0.1", broker.port]] and seen["controller"] == 1
    assert seen["listed"] and seen["deleted"]


@pytest.mark.matrix("kafkajs", "produce acks=all")
@pytest.mark.matrix("kafkajs", "produce acks=1")
@pytest.mark.matrix("kafkajs", "produce acks=0")
@pytest.mark.matrix("kafkajs", "produce and consume: compression gzip")
@pytest.mark.matrix("kafkajs", "timestamps and ListOffsets by time")
def test_produce_then_read_back_with_another_client(broker, topic_name):
    seen = run("produce", broker, topic_name)
    acks_all, acks_one, acks_zero = seen["results"]
    assert acks_all == [{"partition": 0, "error": 0, "base": "0"}]
    assert acks_one == [{"partition": 0, "error": 0, "base": "10"}]
    # kafkajs resolves acks=0 sends without a broker answer.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "read-kafkajs"})
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    records = []
    deadline = time.monotonic() + 30
    while len(records) < 30 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            assert message.error() is None
            records.append(message)
    consumer.close()
    assert [r.offset() for r in records] == list(range(30))
    for n, record in enumerate(records):
        assert record.key() == f"k{n}".encode()
        assert record.value() == (None if n % 5 == 4 else f"v{n}".encode())
        assert record.headers() == [("n", str(n).encode())]
        assert record.timestamp()[1] == BASE_TS + n
    offsets = run("offsets", broker, topic_name)
    assert offsets["latest"] == [[0, "0", "30"]]
    assert offsets["byTime"] == [[0, "5"]]


@pytest.mark.timeout(120)
@pytest.mark.matrix("kafkajs", "consumer groups: subscribe, commit, resume")
def test_group_consumer(broker, topic_name):
    run("produce", broker, topic_name)
    seen = run("consume", broker, topic_name)
    assert [offset for offset, _ in seen["seen"]][:5] == ["0", "1", "2", "3", "4"]


@pytest.mark.matrix("kafkajs", "idempotent producing")
def test_idempotent_producer(broker, topic_name):
    assert run("idempotent", broker, topic_name) == {"base": "0"}


@pytest.mark.matrix("kafkajs", "DeleteRecords")
def test_delete_records(broker, topic_name):
    assert run("deleteRecords", broker, topic_name) == {"low": "4"}


@pytest.mark.matrix("kafkajs", "consumer group admin: list, describe, delete, list and alter offsets (kafka-consumer-groups)")
def test_group_admin(broker, topic_name):
    run("idempotent", broker, topic_name, expect_ok=False)  # creates the topic
    assert run("groupAdmin", broker, topic_name) == {
        "offset": "3", "listed": True, "described": f"g-{topic_name}", "deleted": True}
