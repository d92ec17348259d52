"""Durability against the real binary: SIGKILL under acknowledged load (both I/O engines, with
and without idempotence), a full disk, retention and DeleteRecords across a restart.

Segment files are checked here, independently of the broker: every batch's CRC-32C
(computed in Python), magic, dense offsets, no bytes after the last batch, and the records'
values, so a bug in the broker's own reading cannot hide one in its writing.
"""

import os
import random
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from conftest import Broker, wait_until

# ---- segment files, parsed without the broker ---------------------------------------------

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _varint(buf, pos):
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def read_partition(directory):
    """[(offset, value)] of every record in a partition directory's segments, checking each
    batch's CRC, magic, density of offsets and that nothing follows the last batch."""
    records = []
    expected = None
    for path in sorted(Path(directory).glob("*.log")):
        data = path.read_bytes()
        base_of_file = int(path.stem)
        if expected is not None:
            assert base_of_file == expected, f"{path}: segment starts at {base_of_file}, expected {expected}"
        pos = 0
        while pos < len(data):
            assert len(data) - pos >= 61, f"{path}: {len(data) - pos} trailing bytes at {pos}"
            base_offset, batch_length, _epoch, magic, crc = struct.unpack_from(">qiibI", data, pos)
            total = batch_length + 12
            assert magic == 2, f"{path}@{pos}: magic {magic}"
            assert pos + total <= len(data), f"{path}@{pos}: torn batch"
            assert crc32c(data[pos + 21:pos + total]) == crc, f"{path}@{pos}: CRC mismatch"
            attributes, last_delta = struct.unpack_from(">hi", data, pos + 21)
            count, = struct.unpack_from(">i", data, pos + 57)
            assert attributes & 0x07 == 0, "the tests produce uncompressed batches"
            if expected is not None:
                assert base_offset == expected, f"{path}@{pos}: offset {base_offset}, expected {expected}"
            expected = base_offset + last_delta + 1
            at = pos + 61
            for _ in range(count):
                length, at = _varint(data, at)
                end = at + length
                at += 1  # attributes
                _, at = _varint(data, at)  # timestamp delta
                offset_delta, at = _varint(data, at)
                key_len, at = _varint(data, at)
                at += max(key_len, 0)
                value_len, at = _varint(data, at)
                value = data[at:at + value_len] if value_len >= 0 else None
                records.append((base_offset + offset_delta, value))
                at = end
            pos += total
    return records


def partition_dirs(data_dir, topic):
    return sorted((p for p in Path(data_dir).glob(f"{topic}-*") if p.is_dir()),
                  key=lambda p: int(p.name.rsplit("-", 1)[1]))


def create_topic(bootstrap, topic, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])
    futures[topic].result(timeout=30)


# ---- kill -9 under acknowledged load --------------------------------------------------------

KILL_ROUNDS = 20
PARTITIONS = 2


class LoadProducer:
    """Sends `seq` values continuously, round-robin over the partitions, and records what was
    acknowledged: partition -> {seq: offset}."""

    def __init__(self, bootstrap, topic, idempotent):
        config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "none",
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            # Short back-offs, so that the producer (an idempotent one drains and re-checks
            # its state after each disconnect) makes progress between kills a second apart.
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 100,
            "topic.metadata.refresh.fast.interval.ms": 50,
            "message.timeout.ms": 60000,
            "queue.buffering.max.messages": 5000,
            "log_level": 3,
        }
        if idempotent:
            config["enable.idempotence"] = True
        else:
            # Without idempotence a retry after a crash may write a batch twice, which Kafka
            # allows; with no retries, an acknowledged message was written exactly once.
            config["retries"] = 0
        self.producer = Producer(config)
        self.topic = topic
        self.acked = {p: {} for p in range(PARTITIONS)}
        self.errors = []
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, error, message):
        seq = int(message.value())
        if error is None:
            self.acked[message.partition()][seq] = message.offset()
        else:
            self.errors.append((seq, error.code()))

    def _run(self):
        while not self.stopping.is_set():
            try:
                self.producer.produce(self.topic, str(self.sent).encode(),
                                      partition=self.sent % PARTITIONS, on_delivery=self._delivered)
                self.sent += 1
            except BufferError:
                self.producer.poll(0.01)
                continue
            self.producer.poll(0)
            if self.sent % 16 == 0:
                # Enough load for requests to be in flight at every kill, little enough that
                # checking the CRCs in Python stays quick.
                time.sleep(0.001)

    def start(self):
        self.thread.start()

    def acked_count(self):
        return sum(len(acked) for acked in self.acked.values())

    def wait_for_progress(self, since, timeout, what):
        """Polls until more than `since` messages are acknowledged."""
        deadline = time.monotonic() + timeout
        while self.acked_count() <= since:
            assert time.monotonic() < deadline, f"no acknowledgement within {timeout}s {what}"
            time.sleep(0.02)

    def finish(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        remaining = self.producer.flush(60)
        assert remaining == 0, f"{remaining} messages never got an answer"


@pytest.mark.parametrize("idempotent", [False, True], ids=["acks-all", "idempotent"])
@pytest.mark.parametrize("engine", ["uring", "portable"])
def test_kill_under_load_keeps_every_acknowledged_message(tmp_path, engine, idempotent):
    seed = int(os.environ.get("TIDELOG_KILL_SEED", random.randrange(1 << 30)))
    print(f"kill test seed {seed} (TIDELOG_KILL_SEED={seed} reproduces the kill moments)")
    rng = random.Random(seed)
    broker = Broker(tmp_path / "data", ["--io-engine", engine, "--fsync", "always"])
    topic = "kill"
    broker.start()
    load = None
    try:
        create_topic(broker.bootstrap, topic, PARTITIONS)
        load = LoadProducer(broker.bootstrap, topic, idempotent)
        load.start()
        for round_number in range(KILL_ROUNDS):
            # Every kill hits a producer that is sending and being acknowledged: wait (polling)
            # for acknowledgements after each restart before the next kill.
            load.wait_for_progress(load.acked_count(), 30, f"before kill {round_number} (seed {seed})")
            time.sleep(rng.uniform(0.1, 0.5))
            broker.kill()
            time.sleep(rng.uniform(0.0, 0.1))
            at_restart = load.acked_count()
            broker.start()
            load.wait_for_progress(at_restart, 30, f"after restart {round_number} (seed {seed})")
        time.sleep(0.5)
        load.finish()
        broker.stop()
    finally:
        broker.kill()

    acked_total = sum(len(a) for a in load.acked.values())
    print(f"{engine} idempotent={idempotent}: sent {load.sent}, acknowledged {acked_total}, "
          f"failed {len(load.errors)}; recoveries logged: {broker.log().count('truncated torn')}")
    assert acked_total > 100, f"only {acked_total} messages were acknowledged (seed {seed})"
    if idempotent:
        # Nothing may be lost or refused: every message sent was acknowledged.
        assert load.errors == [], f"idempotent producer saw errors {load.errors[:5]} (seed {seed})"
        assert acked_total == load.sent
    else:
        # Only requests in flight at a kill may fail, with transport errors.
        assert all(code != KafkaError.KAFKA_STORAGE_ERROR for _, code in load.errors)

    for directory in partition_dirs(broker.data_dir, topic):
        partition = int(directory.name.rsplit("-", 1)[1])
        records = read_partition(directory)
        offsets = [offset for offset, _ in records]
        assert offsets == list(range(len(records))), f"offsets not dense in {directory} (seed {seed})"
        seqs = [int(value) for _, value in records]
        assert len(seqs) == len(set(seqs)), f"duplicates in {directory} (seed {seed})"
        assert seqs == sorted(seqs), f"out of order in {directory} (seed {seed})"
        by_offset = dict(records)
        for seq, offset in load.acked[partition].items():
            assert by_offset.get(offset) == str(seq).encode(), (
                f"acknowledged seq {seq} at offset {offset} of partition {partition} is "
                f"{by_offset.get(offset)!r} (seed {seed})")
        if idempotent:
            # No gaps: exactly the messages sent to this partition, in order.
            assert seqs == list(range(partition, load.sent, PARTITIONS)), f"gap in {directory} (seed {seed})"


# ---- retention and DeleteRecords --------------------------------------------------------------

def produce_values(bootstrap, topic, values, partition=0, extra=None):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "compression.type": "none", "batch.num.messages": 1, **(extra or {})})
    results = []
    for value in values:
        producer.produce(topic, value, partition=partition,
                         on_delivery=lambda e, m: results.append((e, m.offset())))
        producer.poll(0)
    producer.flush(30)
    return results


def watermarks(bootstrap, topic, partition=0):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "durability-watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def first_offset_read(bootstrap, topic, offset, partition=0):
    """The offset of the first message a consumer assigned at `offset` gets, or its error."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "durability-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                return message.error()
            return message.offset()
        return None
    finally:
        consumer.close()


def test_delete_records_and_retention_with_real_clients(broker_factory, topic_name):
    broker = broker_factory()
    create_topic(broker.bootstrap, topic_name, 1, {"segment.bytes": "2048"})
    results = produce_values(broker.bootstrap, topic_name, [b"x" * 200 for _ in range(60)])
    assert [e for e, _ in results if e] == []
    assert watermarks(broker.bootstrap, topic_name) == (0, 60)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deleted = admin.delete_records([TopicPartition(topic_name, 0, 25)])
    for _, future in deleted.items():
        assert future.result(timeout=30).low_watermark == 25
    assert watermarks(broker.bootstrap, topic_name) == (25, 60)
    assert first_offset_read(broker.bootstrap, topic_name, 25) == 25
    below = first_offset_read(broker.bootstrap, topic_name, 3)
    # librdkafka reports the broker's OFFSET_OUT_OF_RANGE as _AUTO_OFFSET_RESET with "error".
    assert isinstance(below, KafkaError) and below.code() in (
        KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET), below
    assert "out of range" in below.str().lower(), below
    # Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    with pytest.raises(Exception) as excinfo:
        for _, future in admin.delete_records([TopicPartition(topic_name, 0, 1000)]).items():
            future.result(timeout=30)
    assert "OFFSET_OUT_OF_RANGE" in str(excinfo.value) or "out of range" in str(excinfo.value).lower()

    # The log start offset survives a restart, clean or not.
    broker.restart()
    assert watermarks(broker.bootstrap, topic_name) == (25, 60)
    broker.kill()
    broker.start()
    assert watermarks(broker.bootstrap, topic_name) == (25, 60)

    # retention.ms: every sealed segment is old enough; only the active one stays.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    for _, future in admin.incremental_alter_configs([resource]).items():
        future.result(timeout=30)
    directory = partition_dirs(broker.data_dir, topic_name)[0]
    wait_until(lambda: len(list(directory.glob("*.log"))) == 1, timeout=15,
               what="retention to delete every sealed segment")
    segments = sorted(p.name for p in directory.glob("*.log"))
    low = int(segments[0][:-4])
    assert low > 25, segments
    assert watermarks(broker.bootstrap, topic_name) == (low, 60)
    broker.restart()
    assert watermarks(broker.bootstrap, topic_name) == (low, 60)


def test_retention_bytes_keeps_the_newest_data(broker_factory, topic_name):
    broker = broker_factory()
    create_topic(broker.bootstrap, topic_name, 1, {"segment.bytes": "2048", "retention.bytes": "4096"})
    produce_values(broker.bootstrap, topic_name, [b"y" * 200 for _ in range(80)])
    low = wait_until(lambda: (lambda w: w[0] or None)(watermarks(broker.bootstrap, topic_name)),
                     timeout=15, what="retention.bytes to delete old segments")
    directory = partition_dirs(broker.data_dir, topic_name)[0]
    size = sum(p.stat().st_size for p in directory.glob("*.log"))
    assert size >= 4096, "retention.bytes keeps at least that much"
    assert size < 4096 + 2 * 2048 + 1024
    assert read_partition(directory)[0][0] <= low


# ---- a full disk ----------------------------------------------------------------------------

def test_full_disk_refuses_writes_keeps_reads_and_recovers(tmp_path, topic_name):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode}); "
                    "the full-disk test needs root and CAP_SYS_ADMIN")
    # The data dir is the mount itself, so that the broker's log (beside it) stays readable.
    broker = Broker(mount_point, ["--shards", "1"])
    try:
        broker.start()
        create_topic(broker.bootstrap, topic_name, 1)
        before = produce_values(broker.bootstrap, topic_name, [f"before-{i}".encode() for i in range(20)])
        assert [e for e, _ in before if e] == []

        # Fill the file system to the last byte.
        filler = mount_point / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for size in (1 << 20, 65536, 4096, 512, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError:
                        break
        finally:
            os.close(fd)

        failed = produce_values(broker.bootstrap, topic_name, [b"z" * 8192 for _ in range(10)],
                                extra={"retries": 0, "message.timeout.ms": 10000})
        codes = [e.code() for e, _ in failed if e is not None]
        assert codes, f"no produce failed on a full disk: {failed}"
        assert set(codes) == {KafkaError.KAFKA_STORAGE_ERROR}, codes
        # Still up and serving what was written.
        assert broker.process.poll() is None
        assert first_offset_read(broker.bootstrap, topic_name, 0) == 0
        kept = len(before) + sum(1 for e, _ in failed if e is None)
        assert watermarks(broker.bootstrap, topic_name) == (0, kept)

        filler.unlink()
        after = produce_values(broker.bootstrap, topic_name, [f"after-{i}".encode() for i in range(20)])
        assert [e for e, _ in after if e] == []
        assert [o for _, o in after] == list(range(kept, kept + 20))
        broker.stop()
        records = read_partition(partition_dirs(broker.data_dir, topic_name)[0])
        assert [o for o, _ in records] == list(range(kept + 20))
        values = [v for _, v in records]
        assert values[:20] == [f"before-{i}".encode() for i in range(20)]
        assert values[-20:] == [f"after-{i}".encode() for i in range(20)]

        # And it restarts cleanly from what is on disk.
        broker.start()
        assert watermarks(broker.bootstrap, topic_name) == (0, kept + 20)
        broker.stop()
    finally:
        broker.kill()
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
