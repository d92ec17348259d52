"""Tiered storage (issue 5) against the real binary and real clients: sealed segments go to a
real S3-compatible server (moto, on loopback) or to a file:// directory, leave the local disk,
and are read back byte for byte by confluent-kafka consumers.

The object store is inspected without the broker: boto3 (straight to moto, never through the
proxy) or the file system list the objects, the manifest is parsed here, and the remote `.log`
objects are checked batch by batch (CRC-32C, dense offsets, values) by test_durability's parser.

Not part of the compatibility matrix: tiering is a broker feature, not a client cell.
"""

import json
import os
import random
import re
import socket
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import BASE_TS, BIN, Broker, wait_until
from s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TcpProxy, moto_s3  # noqa: F401 (fixture)
from test_confluent_kafka import create_topic, produce
from test_durability import read_partition

UPLOAD_INTERVAL_ARGS = ["--tier-upload-interval-ms", "200"]
SEGMENT_BYTES = 16384
# local.retention.bytes=1: every sealed segment leaves the local disk once it is remote.
TIERED_TOPIC = {"remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
                "local.retention.bytes": "1"}
# Producer batches well under segment.bytes, so that each segment holds several.
PRODUCER = {"acks": "all", "linger.ms": 5, "batch.size": 8192, "compression.type": "none"}
S3_PREFIX = "tidelog/tiered"
SEGMENT_OBJECT = re.compile(r"(\d{20})-([^./]+)\.(log|index|timeindex)")
EARLIEST, EARLIEST_LOCAL = -2, -4


# ---- object stores, inspected without the broker -----------------------------------------

class S3Objects:
    """The objects under s3://bucket/prefix on the moto server, keys relative to the prefix."""

    def __init__(self, server, bucket, prefix=S3_PREFIX):
        self.server = server
        self.bucket = bucket
        self.prefix = prefix
        self.client = server.client()

    def broker_args(self, endpoint=None, credential_flags=True):
        args = ["--tier-url", f"s3://{self.bucket}/{self.prefix}",
                "--tier-endpoint", endpoint or self.server.endpoint, "--tier-region", REGION]
        if credential_flags:
            args += ["--tier-access-key-id", ACCESS_KEY_ID, "--tier-secret-access-key", SECRET_ACCESS_KEY]
        return args

    def keys(self):
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + "/"):
            keys += [o["Key"][len(self.prefix) + 1:] for o in page.get("Contents", [])]
        return set(keys)

    def read(self, key):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None


class FileObjects:
    """The objects of a file:// store: files under `root`, keys relative to it."""

    def __init__(self, root):
        self.root = root

    def keys(self):
        # object_store's LocalFileSystem writes `<name>#<n>` and renames it into place.
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_file() and "#" not in p.name}

    def read(self, key):
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None


def start_tiered_broker(broker_factory, request, backend, *extra_args):
    """A broker tiering to a fresh bucket (s3) or to the default file://<data-dir>/tiered."""
    if backend == "s3":
        server = request.getfixturevalue("moto_s3")
        store = S3Objects(server, server.new_bucket())
        return broker_factory(*UPLOAD_INTERVAL_ARGS, *store.broker_args(), *extra_args), store
    broker = broker_factory(*UPLOAD_INTERVAL_ARGS, *extra_args)
    return broker, FileObjects(broker.data_dir / "tiered")


def topic_dir(store, topic):
    """`<topic>-<topic id hex>` of the topic's objects, or None while there are none."""
    pattern = re.compile(re.escape(topic) + r"-[0-9a-f]{32}")
    dirs = {key.split("/")[0] for key in store.keys() if pattern.fullmatch(key.split("/")[0])}
    assert len(dirs) <= 1, f"objects of {topic} under several topic ids: {sorted(dirs)}"
    return dirs.pop() if dirs else None


def read_manifest(store, tdir, partition):
    data = store.read(f"{tdir}/{partition}/manifest.json")
    return None if data is None else json.loads(data)


def segment_key(tdir, partition, segment, extension):
    return f"{tdir}/{partition}/{segment['base_offset']:020d}-{segment['unique_id']}.{extension}"


def unreferenced_objects(store, tdir, partition):
    """Objects of the partition that its manifest does not list: orphans."""
    manifest = read_manifest(store, tdir, partition) or {"segments": []}
    listed = {segment_key(tdir, partition, s, ext)
              for s in manifest["segments"] for ext in ("log", "index", "timeindex")}
    listed.add(f"{tdir}/{partition}/manifest.json")
    return sorted(k for k in store.keys() if k.startswith(f"{tdir}/{partition}/") and k not in listed)


def local_bases(broker, topic, partition):
    """Base offsets of the local segments: any of .log, .index, .timeindex left counts."""
    directory = broker.data_dir / f"{topic}-{partition}"
    return sorted({int(p.stem) for p in directory.glob("*")
                   if re.fullmatch(r"\d{20}\.(log|index|timeindex)", p.name)})


def local_records_after_crash(directory, scratch):
    """[(segment file name, [(offset, value)])] of a partition directory left by a crash, each
    segment checked by test_durability's parser (CRCs, dense within the segment) on a copy in
    which only the last segment may end in a torn batch (cut off here, as recovery does)."""
    segments = []
    logs = sorted(directory.glob("*.log"))
    for path in logs:
        data = path.read_bytes()
        if path == logs[-1]:
            complete = 0
            while len(data) - complete >= 61:
                batch_length, = struct.unpack_from(">i", data, complete + 8)
                if complete + 12 + batch_length > len(data):
                    break
                complete += 12 + batch_length
            data = data[:complete]
        (scratch / path.stem).mkdir(parents=True)
        (scratch / path.stem / path.name).write_bytes(data)
        segments.append((path.name, read_partition(scratch / path.stem)))
    return segments


def full_log(broker):
    return broker.log_path.read_text(errors="replace")


def wait_until_tiered(store, broker, topic, partitions, timeout=180):
    """Waits until every sealed segment is in the manifest and gone from local disk: one local
    segment left (the active one), starting where the manifest ends. Returns (topic dir,
    {partition: manifest})."""
    last = {}

    def tiered():
        tdir = topic_dir(store, topic)
        last["dir"] = tdir
        if tdir is None:
            return False
        manifests = {}
        for partition in range(partitions):
            local = local_bases(broker, topic, partition)
            manifest = read_manifest(store, tdir, partition)
            last[partition] = (local[:5], len(local), manifest and manifest["segments"][-2:])
            if (len(local) != 1 or not manifest or not manifest["segments"]
                    or manifest["segments"][-1]["last_offset"] + 1 != local[0]):
                return False
            manifests[partition] = manifest
        return tdir, manifests

    try:
        return wait_until(tiered, timeout=timeout, interval=0.2, what=f"{topic} to be tiered")
    except AssertionError as error:
        raise AssertionError(f"{error}; last seen (local bases, count, manifest tail): {last}\n"
                             f"broker log:\n{broker.log()}") from None


def check_remote_partition(store, tdir, partition, manifest, expected, scratch):
    """The manifest is dense from the first expected offset, each listed segment's three objects
    exist, and the .log objects hold exactly the expected records (CRCs checked)."""
    segments = manifest["segments"]
    assert isinstance(manifest["version"], int), manifest
    assert segments[0]["base_offset"] == expected[0][0], segments[:2]
    for before, after in zip(segments, segments[1:]):
        assert after["base_offset"] == before["last_offset"] + 1, (before, after)
    keys = store.keys()
    by_offset = {offset: (value, timestamp) for offset, _, value, timestamp in expected}
    scratch.mkdir(parents=True)
    for segment in segments:
        for extension in ("index", "timeindex"):
            assert segment_key(tdir, partition, segment, extension) in keys, (segment, extension)
        log = store.read(segment_key(tdir, partition, segment, "log"))
        assert log is not None, f"{segment} is in the manifest, its .log object is missing"
        assert segment["size_bytes"] == len(log), segment
        (scratch / f"{segment['base_offset']:020d}.log").write_bytes(log)
        timestamps = [by_offset[o][1] for o in range(segment["base_offset"], segment["last_offset"] + 1)]
        assert segment["max_timestamp_ms"] == max(timestamps), segment
    records = read_partition(scratch)
    remote_end = segments[-1]["last_offset"] + 1
    assert [o for o, _ in records] == list(range(segments[0]["base_offset"], remote_end))
    assert [v for _, v in records] == [by_offset[o][0] for o in range(segments[0]["base_offset"], remote_end)]


# ---- clients --------------------------------------------------------------------------------

def workload(rng, total_bytes, first_seq, timestamps=True):
    """Keyed messages whose values are unique (a sequence number, then random bytes)."""
    messages = []
    size = 0
    seq = first_seq
    while size < total_bytes:
        value = f"{seq:08d}:".encode() + rng.randbytes(rng.randrange(300, 1500))
        message = {"key": f"key-{seq % 40}".encode(), "value": value}
        if timestamps:
            message["timestamp"] = BASE_TS + seq
        messages.append(message)
        size += len(value)
        seq += 1
    return messages


def acked_records(delivered, partition=0):
    """[(offset, key, value, timestamp)] of one partition's acknowledged messages, by offset."""
    return sorted((m.offset(), m.key(), m.value(), m.timestamp()[1])
                  for m in delivered if m.partition() == partition)


def consume(broker, topic, partition, count, start=OFFSET_BEGINNING, timeout=120):
    """The first `count` records a fresh consumer assigned at `start` gets, as
    [(offset, key, value, timestamp)]."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"tiering-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "error",
                         "fetch.wait.max.ms": 100})
    records = []
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while len(records) < count:
            assert time.monotonic() < deadline, (
                f"consumed {len(records)} of {count} records of {topic}-{partition} in {timeout}s; "
                f"last offset {records[-1][0] if records else None}\nbroker log:\n{broker.log()}")
            for message in consumer.consume(500, 0.5):
                assert message.error() is None, (
                    f"{message.error()} after {len(records)} records, the last at offset "
                    f"{records[-1][0] if records else None}")
                records.append((message.offset(), message.key(), message.value(), message.timestamp()[1]))
    finally:
        consumer.close()
    return records[:count]


def watermarks(broker, topic, partition=0):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "tiering-watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def _uvarint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uvarint(data, pos):
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _skip_tagged_fields(data, pos):
    count, pos = _read_uvarint(data, pos)
    for _ in range(count):
        _, pos = _read_uvarint(data, pos)
        size, pos = _read_uvarint(data, pos)
        pos += size
    return pos


def list_offset(broker, topic, partition, timestamp):
    """The offset a ListOffsets v9 request answers for one partition, sent by hand: none of the
    Python clients can ask for earliest-local (-4, KIP-405; v8+). Fails on an error code."""
    name = topic.encode()
    client_id = b"tidelog-tiering-test"
    correlation_id = 9
    request = (struct.pack(">hhih", 2, 9, correlation_id, len(client_id)) + client_id + b"\0"
               + struct.pack(">ib", -1, 0)  # replica_id, isolation_level
               + _uvarint(2) + _uvarint(len(name) + 1) + name
               + _uvarint(2) + struct.pack(">iiq", partition, -1, timestamp) + b"\0"  # partition
               + b"\0"  # topic's tagged fields
               + b"\0")  # request's tagged fields
    with socket.create_connection(("127.0.0.1", broker.port), timeout=15) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        response = b""
        while len(response) < 4 or len(response) < 4 + struct.unpack_from(">i", response)[0]:
            chunk = sock.recv(65536)
            assert chunk, "the broker closed the connection without answering ListOffsets"
            response += chunk
    data = response[4:]
    assert struct.unpack_from(">i", data)[0] == correlation_id
    pos = _skip_tagged_fields(data, 4)
    pos += 4  # throttle_time_ms
    topic_count, pos = _read_uvarint(data, pos)
    assert topic_count - 1 == 1, topic_count
    name_length, pos = _read_uvarint(data, pos)
    assert data[pos:pos + name_length - 1] == name
    pos += name_length - 1
    partition_count, pos = _read_uvarint(data, pos)
    assert partition_count - 1 == 1, partition_count
    index, error_code, _timestamp, offset, _epoch = struct.unpack_from(">ihqqi", data, pos)
    assert index == partition
    assert error_code == 0, f"ListOffsets {timestamp} of {topic}-{partition}: error {error_code}"
    return offset


# ---- sealed segments go remote and are read back ------------------------------------------

@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["s3", "file"])
def test_segments_go_remote_and_read_back_byte_for_byte(broker_factory, request, tmp_path, topic_name, backend):
    seed = int(os.environ.get("TIDELOG_TIER_SEED", random.randrange(1 << 30)))
    print(f"tiering seed {seed} (TIDELOG_TIER_SEED={seed} reproduces the values)")
    rng = random.Random(seed)
    partitions = 2
    broker, store = start_tiered_broker(broker_factory, request, backend)
    create_topic(broker, topic_name, partitions, TIERED_TOPIC)
    delivered = produce(broker, topic_name, workload(rng, 2_000_000, 0), **PRODUCER)
    expected = {p: acked_records(delivered, p) for p in range(partitions)}
    for p, records in expected.items():
        assert [o for o, *_ in records] == list(range(len(records))), f"partition {p}: offsets not dense"
        assert len(records) > 200, f"partition {p} got only {len(records)} records (seed {seed})"

    tdir, manifests = wait_until_tiered(store, broker, topic_name, partitions)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic_id = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=30).topic_id
    mask = (1 << 64) - 1
    assert tdir == f"{topic_name}-{topic_id.get_most_significant_bits() & mask:016x}" \
                   f"{topic_id.get_least_significant_bits() & mask:016x}"
    for p in range(partitions):
        check_remote_partition(store, tdir, p, manifests[p], expected[p], tmp_path / f"remote-{p}")
        assert unreferenced_objects(store, tdir, p) == []
        active = local_bases(broker, topic_name, p)[0]
        assert list_offset(broker, topic_name, p, EARLIEST) == 0
        assert list_offset(broker, topic_name, p, EARLIEST_LOCAL) == active > 0
        assert watermarks(broker, topic_name, p) == (0, len(expected[p]))

    for attempt in ("running", "restarted"):
        # After a restart the manifest is the truth for what is remote.
        for p in range(partitions):
            got = consume(broker, topic_name, p, len(expected[p]))
            assert got == expected[p], f"partition {p} read back differently ({attempt}, seed {seed})"
            assert watermarks(broker, topic_name, p) == (0, len(expected[p]))
        if attempt == "running":
            broker.restart()
            assert list_offset(broker, topic_name, 0, EARLIEST) == 0


# ---- faults ---------------------------------------------------------------------------------

@pytest.mark.timeout(900)
def test_unreachable_object_store_delays_tiering_only(broker_factory, moto_s3, topic_name):
    rng = random.Random(5)
    store = S3Objects(moto_s3, moto_s3.new_bucket())
    proxy = TcpProxy(("127.0.0.1", moto_s3.port)).on()
    try:
        broker = broker_factory(*UPLOAD_INTERVAL_ARGS, *store.broker_args(endpoint=proxy.endpoint))
        create_topic(broker, topic_name, 1, TIERED_TOPIC)
        before = acked_records(produce(broker, topic_name, workload(rng, 300_000, 0), **PRODUCER))
        tdir, _ = wait_until_tiered(store, broker, topic_name, 1)

        proxy.off()
        during = acked_records(produce(broker, topic_name, workload(rng, 600_000, len(before)), **PRODUCER))
        assert during[0][0] == len(before)
        # Local data is fetched as usual while the store is away.
        assert consume(broker, topic_name, 0, len(during), start=during[0][0], timeout=60) == during
        wait_until(lambda: "upload failed" in full_log(broker), timeout=300, interval=0.5,
                   what="the broker to log 'upload failed'")
        # Nothing left the local disk that is not remote: local data starts where the remote ends.
        manifest = read_manifest(store, tdir, 0)
        local = local_bases(broker, topic_name, 0)
        assert len(local) > 2, f"sealed segments should wait locally: {local}"
        assert local[0] <= manifest["segments"][-1]["last_offset"] + 1, (local[:3], manifest["segments"][-1])
        assert broker.process.poll() is None

        proxy.on()
        wait_until_tiered(store, broker, topic_name, 1, timeout=400)
        got = consume(broker, topic_name, 0, len(before) + len(during))
        assert got == before + during
        assert unreferenced_objects(store, tdir, 0) == []
        broker.stop()  # while the store is reachable: shutdown is not this test's subject
    finally:
        proxy.off()


class EnvBroker(Broker):
    """A Broker whose process gets `env` on top of conftest's (which passes no TIDELOG_*)."""

    def __init__(self, data_dir, args=(), env=None):
        super().__init__(data_dir, args)
        self.env = dict(env or {})

    def start(self):
        command = [BIN, "--listen", self.bootstrap, "--advertised", self.bootstrap,
                   "--data-dir", str(self.data_dir), *self.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDELOG_")} | self.env
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)

        def accepting():
            if self.process.poll() is not None:
                raise AssertionError(f"broker exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_until(accepting, timeout=30, what="the broker to accept connections")
        return self


@pytest.mark.timeout(600)
def test_crash_between_upload_and_manifest_update_leaves_no_hole(tmp_path, moto_s3, topic_name):
    rng = random.Random(4)
    store = S3Objects(moto_s3, moto_s3.new_bucket())
    broker = EnvBroker(tmp_path / "data", [*UPLOAD_INTERVAL_ARGS, *store.broker_args()],
                       env={"TIDELOG_FAILPOINT": "tier-after-upload"})
    broker.start()
    try:
        create_topic(broker, topic_name, 1, TIERED_TOPIC)
        # No retries: an acknowledged message was written exactly once.
        producer = Producer({"bootstrap.servers": broker.bootstrap, **PRODUCER, "retries": 0,
                             "message.timeout.ms": 5000, "log_level": 3})
        sent = set()
        acked = {}

        def delivered(error, message):
            if error is None:
                acked[message.offset()] = message.value()

        seq = 0
        deadline = time.monotonic() + 60
        while broker.process.poll() is None:
            assert time.monotonic() < deadline, f"the failpoint never fired in 60s:\n{broker.log()}"
            for message in workload(rng, 20_000, seq):
                producer.produce(topic_name, partition=0, on_delivery=delivered, **message)
                sent.add(message["value"])
                seq += 1
            producer.flush(10)
        producer.flush(10)
        assert broker.process.returncode != 0, "the failpoint should abort the broker"
        assert acked, "nothing was acknowledged before the crash"
        # What the crash left on local disk holds every acknowledged message, densely: checked
        # here, without the broker, so that a hole later is known to be tiering's.
        segments = local_records_after_crash(broker.data_dir / f"{topic_name}-0", tmp_path / "after-crash")
        on_disk = {o: v for _, records in segments for o, v in records}
        lost = sorted(o for o, v in acked.items() if on_disk.get(o) != v)
        assert lost == [], f"acknowledged messages not on local disk after the crash: offsets {lost[:10]}"
        # A crash during a roll may leave a gap on disk (the new segment's file exists, the old
        # one's last, unacknowledged writes do not): allowed here, as long as no acknowledged
        # offset is in it (checked above); recovery must close it (checked after the restart).
        holes = []
        for (name, records), (next_name, _) in zip(segments, segments[1:]):
            end = records[-1][0] + 1 if records else int(name[:-4])
            if int(next_name[:-4]) != end:
                holes.append((end, int(next_name[:-4])))
        assert not [o for o in acked for (start, stop) in holes if start <= o < stop], holes
        tdir = topic_dir(store, topic_name)
        assert tdir is not None and unreferenced_objects(store, tdir, 0), (
            "the crash should leave objects that no manifest lists: "
            f"{sorted(store.keys())}\n{broker.log()}")

        broker.env = {}
        broker.start()
        after = produce(broker, topic_name, workload(rng, 200_000, seq), **PRODUCER)
        for message in after:
            acked[message.offset()] = message.value()
            sent.add(message.value())
        wait_until_tiered(store, broker, topic_name, 1)
        low, high = watermarks(broker, topic_name)
        print(f"sent {len(sent)}, acknowledged {len(acked)} ({len(after)} after the restart), "
              f"high watermark {high}")
        assert low == 0 and list_offset(broker, topic_name, 0, EARLIEST) == 0
        records = consume(broker, topic_name, 0, high)
        assert [o for o, *_ in records] == list(range(high))
        values = [v for _, _, v, _ in records]
        assert len(set(values)) == len(values), "a message is there twice"
        assert set(values) <= sent
        by_offset = {o: v for o, _, v, _ in records}
        lost = [o for o, v in acked.items() if by_offset.get(o) != v]
        assert lost == [], f"acknowledged messages missing or changed at offsets {lost[:10]}"
        wait_until(lambda: unreferenced_objects(store, tdir, 0) == [], timeout=120, interval=0.5,
                   what=f"orphans to be cleaned up: {unreferenced_objects(store, tdir, 0)}")
        broker.stop()
    finally:
        broker.kill()


# ---- retention and deletion --------------------------------------------------------------------

RETENTION_MS = 15000


@pytest.mark.timeout(600)
def test_remote_retention_deletes_expired_segments(broker_factory, moto_s3, topic_name):
    rng = random.Random(6)
    store = S3Objects(moto_s3, moto_s3.new_bucket())
    broker = broker_factory(*UPLOAD_INTERVAL_ARGS, *store.broker_args())
    create_topic(broker, topic_name, 1, {**TIERED_TOPIC, "retention.ms": str(RETENTION_MS)})
    # Timestamps of now (the producer's): the data expires RETENTION_MS after it was written.
    written_at = time.monotonic()
    first = acked_records(produce(broker, topic_name, workload(rng, 200_000, 0, timestamps=False), **PRODUCER))
    tdir, manifests = wait_until_tiered(store, broker, topic_name, 1)
    old = manifests[0]
    old_bases = {s["base_offset"] for s in old["segments"]}
    old_keys = {segment_key(tdir, 0, s, ext) for s in old["segments"] for ext in ("log", "index", "timeindex")}
    assert old_keys <= store.keys()
    if time.monotonic() - written_at < RETENTION_MS / 1000 - 3:
        assert list_offset(broker, topic_name, 0, EARLIEST) == 0

    def expired():
        manifest = read_manifest(store, tdir, 0) or {"segments": []}
        return (list_offset(broker, topic_name, 0, EARLIEST) > 0
                and not old_keys & store.keys()
                and not old_bases & {s["base_offset"] for s in manifest["segments"]})

    wait_until(expired, timeout=120, interval=0.5, what="remote retention to delete the expired segments")
    manifest = read_manifest(store, tdir, 0)
    if manifest is not None:
        assert manifest["version"] > old["version"]
    earliest = list_offset(broker, topic_name, 0, EARLIEST)
    assert earliest >= old["segments"][-1]["last_offset"] + 1
    assert list_offset(broker, topic_name, 0, EARLIEST_LOCAL) >= earliest

    # A consumer from the beginning starts at the new earliest offset. Retention goes up first,
    # so that nothing more expires while it reads (the new data would, RETENTION_MS later).
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("retention.ms", str(24 * 3600 * 1000), incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    second = acked_records(produce(broker, topic_name, workload(rng, 20_000, len(first), timestamps=False),
                                   **PRODUCER))
    earliest = list_offset(broker, topic_name, 0, EARLIEST)
    assert 0 < earliest <= second[0][0]
    kept = [r for r in first + second if r[0] >= earliest]
    got = consume(broker, topic_name, 0, len(kept))
    assert got[0][0] == earliest
    assert got == kept


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["s3", "file"])
def test_delete_topic_deletes_its_remote_objects(broker_factory, request, tmp_path, monkeypatch, topic_name,
                                                 backend):
    rng = random.Random(7)
    if backend == "s3":
        # Credentials from the usual AWS_* variables this time, not flags.
        server = request.getfixturevalue("moto_s3")
        store = S3Objects(server, server.new_bucket())
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        args = store.broker_args(credential_flags=False)
    else:
        store = FileObjects(tmp_path / "objects")
        args = ["--tier-url", f"file://{store.root}"]
    broker = broker_factory(*UPLOAD_INTERVAL_ARGS, *args)
    kept_topic = topic_name + "-kept"
    for topic in (topic_name, kept_topic):
        create_topic(broker, topic, 2, TIERED_TOPIC)
        produce(broker, topic, workload(rng, 200_000, 0), **PRODUCER)
        wait_until_tiered(store, broker, topic, 2)
    kept_dir = topic_dir(store, kept_topic)
    kept_keys = {k for k in store.keys() if k.startswith(kept_dir + "/")}

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic_name])[topic_name].result(timeout=30)
    wait_until(lambda: topic_dir(store, topic_name) is None, timeout=120, interval=0.5,
               what=f"the remote objects of {topic_name} to be deleted")
    assert {k for k in store.keys() if k.startswith(kept_dir + "/")} == kept_keys
    assert list_offset(broker, kept_topic, 0, EARLIEST) == 0
