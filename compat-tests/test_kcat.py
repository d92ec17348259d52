"""kcat (Debian's, on librdkafka 2.0.2): metadata, produce with keys and headers, consume from
the beginning, the end and a given offset."""

import json
import shutil
import subprocess

import pytest

from conftest import BASE_TS, wait_until

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")

FORMAT = '{"key":"%k","value":"%s","offset":%o,"partition":%p,"ts":%T,"headers":"%h"}\\n'


def kcat(broker, *args, input=None, timeout=30):
    result = subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=input,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"kcat {args} failed: {result.stderr}\n{broker.log()}"
    return result.stdout


def consume(broker, topic, offset, *extra):
    out = kcat(broker, "-C", "-t", topic, "-o", str(offset), "-e", "-q", "-f", FORMAT, *extra)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.matrix("kcat", "metadata")
def test_metadata_lists_broker_and_topic(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, input="hello\n")
    metadata = json.loads(kcat(broker, "-L", "-J"))
    assert [(b["id"], b["name"]) for b in metadata["brokers"]] == [(1, broker.bootstrap)]
    topics = {t["topic"]: t for t in metadata["topics"]}
    assert topic_name in topics
    partitions = topics[topic_name]["partitions"]
    assert [(p["partition"], p["leader"], [r["id"] for r in p["replicas"]]) for p in partitions] == [(0, 1, [1])]


@pytest.mark.matrix("kcat", "produce and consume: keys, values, headers, offsets")
@pytest.mark.matrix("kcat", "produce and consume: compression none")
def test_produce_with_keys_and_headers_then_consume_from_beginning(broker, topic_name):
    lines = "".join(f"key{i}:value{i}\n" for i in range(20))
    kcat(broker, "-P", "-t", topic_name, "-K:", "-H", "app=tidelog", "-H", "n=1", input=lines)
    records = wait_until(lambda: (r := consume(broker, topic_name, "beginning")) and len(r) >= 20 and r,
                         what="20 records")
    assert [(r["key"], r["value"], r["offset"], r["partition"]) for r in records] == [
        (f"key{i}", f"value{i}", i, 0) for i in range(20)]
    assert all(r["headers"] == "app=tidelog,n=1" for r in records)
    assert all(r["ts"] > 1_600_000_000_000 for r in records)


@pytest.mark.matrix("kcat", "consume from an offset and from the end")
def test_consume_from_offset_and_from_end(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, input="".join(f"m{i}\n" for i in range(10)))
    from_five = consume(broker, topic_name, 5)
    assert [(r["value"], r["offset"]) for r in from_five] == [(f"m{i}", i) for i in range(5, 10)]
    assert consume(broker, topic_name, "end") == []
    # A consumer started at the end sees only what is produced after it started.
    consumer = subprocess.Popen(
        ["kcat", "-b", broker.bootstrap, "-C", "-t", topic_name, "-o", "end", "-c", "3", "-q", "-f", FORMAT],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Produce until the consumer has its three records: it may start after the first ones.
        def consumer_done():
            kcat(broker, "-P", "-t", topic_name, input="late\n")
            return consumer.poll() is not None
        wait_until(consumer_done, timeout=30, interval=0.3, what="the tail consumer to get 3 records")
        out, err = consumer.communicate(timeout=10)
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3
    assert all(r["value"] == "late" and r["offset"] >= 10 for r in records)
    assert [r["offset"] for r in records] == sorted(r["offset"] for r in records)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_produce_compressed_with_each_acks(broker, topic_name, codec, request):
    request.node.add_marker(pytest.mark.matrix("kcat", f"produce and consume: compression {codec}"))
    for acks in ("0", "1", "all"):
        request.node.add_marker(pytest.mark.matrix("kcat", f"produce acks={acks}"))
    sent = []
    for acks in ("0", "1", "all"):
        lines = [f"{acks}-{i}:{codec}-{acks}-{i}" for i in range(10)]
        kcat(broker, "-P", "-t", topic_name, "-K:", "-z", codec, "-X", f"acks={acks}", input="\n".join(lines) + "\n")
        sent += [line.split(":", 1) for line in lines]
    records = consume(broker, topic_name, "beginning")
    assert [(r["key"], r["value"]) for r in records] == [(k, v) for k, v in sent]
    assert [r["offset"] for r in records] == list(range(30))


@pytest.mark.matrix("kcat", "timestamps and ListOffsets by time")
def test_consume_from_a_timestamp(broker, topic_name):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False})
    for i in range(10):
        producer.produce(topic_name, value=b"t%d" % i, timestamp=BASE_TS + 1000 * i)
    assert producer.flush(30) == 0
    records = consume(broker, topic_name, f"s@{BASE_TS + 4500}")
    assert [(r["offset"], r["value"], r["ts"]) for r in records] == [
        (i, f"t{i}", BASE_TS + 1000 * i) for i in range(5, 10)]
