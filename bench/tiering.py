#!/usr/bin/env python3
"""Measurements for bench/tiering.sh, one subcommand each, each printing one JSON line:

- `produce`: creates the topic (not yet tiered: remote.storage.enable=false, unless
  --tiered) and fills it flat out with confluent-kafka, acks=1, 1 KiB values spread over the
  partitions.
- `enable-tiering`: IncrementalAlterConfigs remote.storage.enable=true and
  local.retention.bytes=1, so the broker finds every sealed segment waiting at once and the
  upload figure is the uploader's own pace, not the producer's.
- `await-uploads`: follows the broker log's `uploaded segment` lines and the partition
  directories until every sealed segment is remote and gone from the local disk. Upload
  throughput is the uploaded bytes over the span from the first upload's start (its log
  time less its elapsed_ms) to the last upload's log time. Writes the `.log` sizes to
  --sizes-file for the reference.
- `consume`: reads the whole topic from offset 0 (assign, OFFSET_BEGINNING) and times it,
  also up to the end of the remote part of each partition.
- `ref-up`, `ref-down`: the reference in the same run against the same S3 server: files of
  the sizes the broker uploaded, put with boto3 (one PUT up to the broker's multipart
  threshold, multipart in parts of the broker's part size, two in flight, above it) by as
  many threads as the broker has uploads in flight; read back whole (GET), and read back in
  the broker's cold-read shape (1 MiB range GETs, one object after another per thread).
  Taken right after the broker's upload and right after its cold read respectively, so that
  each ratio compares figures measured next to each other on a shared machine.
- `report`: the markdown tables from the collected JSON lines, medians over repeats.
- `create-bucket`, `drop-bucket`: a bucket per round, dropped after it (moto keeps objects in
  its memory or in temporary files).
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

UPLOADED = re.compile(
    r"^(\S+)\s+INFO\s.*uploaded segment topic=(\S+) partition=(\d+) base_offset=(\d+) "
    r"last_offset=(\d+) bytes=(\d+) elapsed_ms=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MIB = 1 << 20


def emit(record):
    print(json.dumps(record), flush=True)


def mb_per_s(size_bytes, seconds):
    return round(size_bytes / 1e6 / seconds, 1) if seconds > 0 else None


# ---- produce / enable-tiering ---------------------------------------------------------------

def cmd_produce(args):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    config = {"remote.storage.enable": "false", "segment.bytes": str(args.segment_bytes)}
    if args.tiered:
        config.update({"remote.storage.enable": "true", "local.retention.bytes": "1"})
    topic = NewTopic(args.topic, args.partitions, 1, config=config)
    admin.create_topics([topic])[args.topic].result(timeout=30)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "1",
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "compression.type": "none",
        "queue.buffering.max.messages": 500000,
        "queue.buffering.max.kbytes": 1 << 20,
        "max.in.flight.requests.per.connection": 5,
    })
    value = b"x" * args.message_bytes
    messages = args.total_bytes // args.message_bytes
    errors = [0]

    def delivered(error, _message):
        if error is not None:
            errors[0] += 1

    started = time.perf_counter()
    sent = 0
    while sent < messages:
        try:
            producer.produce(args.topic, value, partition=sent % args.partitions, on_delivery=delivered)
            sent += 1
        except BufferError:
            producer.poll(0.005)
            continue
        if sent % 1024 == 0:
            producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - started
    if left or errors[0]:
        sys.exit(f"produce: {left} messages undelivered, {errors[0]} delivery errors")
    emit({"messages": messages, "value_bytes": messages * args.message_bytes,
          "seconds": round(elapsed, 2), "mb_per_s": mb_per_s(messages * args.message_bytes, elapsed)})


def cmd_enable_tiering(args):
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ResourceType)

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, args.topic, incremental_configs=[
        ConfigEntry("remote.storage.enable", "true", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("local.retention.bytes", "1", incremental_operation=AlterConfigOpType.SET),
    ])
    started = time.time()
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    emit({"enabled_at": started})


# ---- await-uploads ----------------------------------------------------------------------------

def log_time(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def uploaded_segments(log_path, topic):
    segments = []
    with open(log_path, errors="replace") as log:
        for line in log:
            match = UPLOADED.match(ANSI.sub("", line))
            if match and match.group(2) == topic:
                stamp, _, partition, base, last, size, elapsed_ms = match.groups()
                segments.append({"at": log_time(stamp), "partition": int(partition),
                                 "base_offset": int(base), "last_offset": int(last),
                                 "bytes": int(size), "elapsed_ms": int(elapsed_ms)})
    return segments


def local_logs(data_dir, topic, partition):
    """Base offsets of the partition's local `.log` segments, oldest first."""
    directory = Path(data_dir) / f"{topic}-{partition}"
    return sorted(int(p.stem) for p in directory.glob("*.log"))


def cmd_await_uploads(args):
    deadline = time.time() + args.timeout_s
    while True:
        segments = uploaded_segments(args.log, args.topic)
        remote_end = {p: 0 for p in range(args.partitions)}
        for segment in segments:
            remote_end[segment["partition"]] = max(remote_end[segment["partition"]],
                                                   segment["last_offset"] + 1)
        local = {p: local_logs(args.data_dir, args.topic, p) for p in range(args.partitions)}
        # Done: each partition keeps only its active segment, and the remote log ends where
        # that segment begins.
        if all(len(local[p]) == 1 and remote_end[p] == local[p][0] for p in local):
            if not segments:
                sys.exit("await-uploads: no partition has a sealed segment; produce more than"
                         " partitions x segment.bytes")
            break
        if time.time() > deadline:
            sys.exit(f"await-uploads: timed out; remote end offsets {remote_end}, local segments {local}")
        time.sleep(0.05)
    local_gone_at = time.time()
    first_start = min(s["at"] - s["elapsed_ms"] / 1000 for s in segments)
    last_end = max(s["at"] for s in segments)
    total_bytes = sum(s["bytes"] for s in segments)
    elapsed_ms = sum(s["elapsed_ms"] for s in segments)
    Path(args.sizes_file).write_text(json.dumps([s["bytes"] for s in segments]))
    # Idle time of an upload slot: from one upload's end to the start of the partition's next.
    gaps_ms = []
    for partition in range(args.partitions):
        mine = sorted((s for s in segments if s["partition"] == partition), key=lambda s: s["at"])
        gaps_ms += [round(1000 * (b["at"] - b["elapsed_ms"] / 1000 - a["at"])) for a, b in zip(mine, mine[1:])]
    gaps_ms.sort()
    record = {
        "segments": len(segments),
        "bytes": total_bytes,
        "seconds": round(last_end - first_start, 2),
        "mb_per_s": mb_per_s(total_bytes, last_end - first_start),
        # What one upload achieves alone, averaged over segments: bytes over summed upload times.
        "per_upload_mb_per_s": mb_per_s(total_bytes, elapsed_ms / 1000),
        "upload_ms_p50": sorted(s["elapsed_ms"] for s in segments)[len(segments) // 2],
        "upload_ms_max": max(s["elapsed_ms"] for s in segments),
        "uploads_in_flight_avg": round(elapsed_ms / 1000 / (last_end - first_start), 2),
        "next_upload_gap_ms_p50": gaps_ms[len(gaps_ms) // 2] if gaps_ms else None,
        "remote_end_offsets": remote_end,
        "local_gone_s": round(local_gone_at - first_start, 2),
    }
    if args.enabled_at:
        record["first_upload_after_enable_s"] = round(first_start - args.enabled_at, 2)
    emit(record)


# ---- consume ----------------------------------------------------------------------------------

def cmd_consume(args):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    remote_end = {int(p): o for p, o in json.loads(args.remote_end_offsets).items()}
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"tiering-bench-{os.getpid()}",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 10485760,
        "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 1 << 20,
        "receive.message.max.bytes": 52428800 + (1 << 20),
    })
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)])
    expected = args.expect_messages
    count = 0
    value_bytes = 0
    next_offset = {p: 0 for p in range(args.partitions)}
    remote_left = {p for p in range(args.partitions) if remote_end.get(p, 0) > 0}
    remote_done_at = None
    remote_value_bytes = 0
    started = time.perf_counter()
    deadline = started + args.timeout_s
    while count < expected:
        if time.perf_counter() > deadline:
            sys.exit(f"consume: timed out after {count} of {expected} messages; next offsets {next_offset}")
        # Never more than is left: consume() waits out its timeout for a short batch.
        for message in consumer.consume(num_messages=min(10000, expected - count), timeout=1.0):
            if message.error() is not None:
                sys.exit(f"consume: {message.error()}")
            partition, offset = message.partition(), message.offset()
            if offset != next_offset[partition]:
                sys.exit(f"consume: partition {partition}: offset {offset}, expected {next_offset[partition]}")
            next_offset[partition] = offset + 1
            count += 1
            value_bytes += len(message.value())
            if partition in remote_left and offset + 1 >= remote_end[partition]:
                remote_left.discard(partition)
                if not remote_left:
                    remote_done_at = time.perf_counter()
                    remote_value_bytes = value_bytes
    elapsed = time.perf_counter() - started
    consumer.close()
    remote_messages = sum(remote_end.values())
    record = {"messages": count, "expected": expected, "value_bytes": value_bytes,
              "seconds": round(elapsed, 2), "mb_per_s": mb_per_s(value_bytes, elapsed),
              "remote_messages": remote_messages}
    if remote_done_at is not None:
        # Messages of local partitions read meanwhile count too: they share the time.
        record["remote_seconds"] = round(remote_done_at - started, 2)
        record["remote_value_mb_per_s"] = mb_per_s(remote_value_bytes, remote_done_at - started)
        # The remote segments' own bytes (record batches as stored) over the same time: the
        # figure comparable with a plain GET of objects of those sizes.
        record["remote_log_mb_per_s"] = mb_per_s(args.remote_bytes, remote_done_at - started)
    emit(record)


# ---- reference: a plain copy with boto3 --------------------------------------------------------

def cmd_create_bucket(args):
    s3_client(args.endpoint, 1).create_bucket(Bucket=args.bucket)
    emit({"bucket": args.bucket})


def s3_client(endpoint, threads):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="tidelog-bench", aws_secret_access_key="tidelog-bench-secret",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=threads + 2,
                      retries={"max_attempts": 2, "mode": "standard"},
                      # object_store adds no CRC32 checksum to a PUT; neither does the reference.
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def run_threads(threads, keys, work):
    """`work(key)` for every key by `threads` threads; the keys are dealt round-robin so that
    each thread, like each of the broker's upload slots, goes through its objects in turn."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(lambda mine: [work(k) for k in mine], keys[t::threads])
                       for t in range(threads)]:
            future.result()
    return time.perf_counter() - started


def ref_objects(args):
    """(key, scratch file, size) of the reference objects: one per segment the broker uploaded."""
    sizes = json.loads(Path(args.sizes_file).read_text())
    return [(f"ref/{index:05d}.log", Path(args.scratch) / f"{index:05d}.log", size)
            for index, size in enumerate(sizes)]


def cmd_ref_up(args):
    objects = ref_objects(args)
    client = s3_client(args.endpoint, args.threads * args.parts_in_flight)
    client.create_bucket(Bucket=args.bucket)
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    block = os.urandom(MIB)
    for _, path, size in objects:
        with open(path, "wb") as out:
            for start in range(0, size, MIB):
                out.write(block[:min(MIB, size - start)])
    by_key = {key: (path, size) for key, path, size in objects}

    def put(key):
        path, size = by_key[key]
        if size <= args.multipart_threshold:
            with open(path, "rb") as body:
                client.put_object(Bucket=args.bucket, Key=key, Body=body)
            return
        upload_id = client.create_multipart_upload(Bucket=args.bucket, Key=key)["UploadId"]

        def upload_part(number, chunk):
            etag = client.upload_part(Bucket=args.bucket, Key=key, UploadId=upload_id,
                                      PartNumber=number, Body=chunk)["ETag"]
            return {"PartNumber": number, "ETag": etag}

        # As the broker: parts read in turn, up to --parts-in-flight of them being sent.
        pending = []
        with open(path, "rb") as source, \
                concurrent.futures.ThreadPoolExecutor(args.parts_in_flight) as pool:
            number = 1
            while chunk := source.read(args.part_bytes):
                if len(pending) >= args.parts_in_flight:
                    pending[-args.parts_in_flight].result()
                pending.append(pool.submit(upload_part, number, chunk))
                number += 1
            parts = [future.result() for future in pending]
        client.complete_multipart_upload(Bucket=args.bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})

    total = sum(size for _, _, size in objects)
    put_s = run_threads(args.threads, list(by_key), put)
    for _, path, _ in objects:
        path.unlink()
    emit({"objects": len(objects), "bytes": total, "threads": args.threads,
          "put_s": round(put_s, 2), "put_mb_per_s": mb_per_s(total, put_s)})


def cmd_ref_down(args):
    objects = ref_objects(args)
    client = s3_client(args.endpoint, args.threads)
    sizes = {key: size for key, _, size in objects}
    received = [0]
    lock = threading.Lock()

    def get(key):
        size = len(client.get_object(Bucket=args.bucket, Key=key)["Body"].read())
        with lock:
            received[0] += size

    def get_ranges(key):
        got = 0
        for start in range(0, sizes[key], args.range_bytes):
            end = min(start + args.range_bytes, sizes[key]) - 1
            got += len(client.get_object(Bucket=args.bucket, Key=key,
                                         Range=f"bytes={start}-{end}")["Body"].read())
        with lock:
            received[0] += got

    total = sum(sizes.values())
    get_s = run_threads(args.threads, list(sizes), get)
    whole_received, received[0] = received[0], 0
    range_s = run_threads(args.threads, list(sizes), get_ranges)
    if whole_received != total or received[0] != total:
        sys.exit(f"ref-down: read back {whole_received} and {received[0]} bytes of {total}")
    emit({"objects": len(objects), "bytes": total, "threads": args.threads,
          "get_s": round(get_s, 2), "get_mb_per_s": mb_per_s(total, get_s),
          "range_get_s": round(range_s, 2), "range_get_mb_per_s": mb_per_s(total, range_s)})


def cmd_drop_bucket(args):
    """Deletes the bucket and its objects: moto holds them in its memory or temporary files."""
    client = s3_client(args.endpoint, 1)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=args.bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=args.bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=args.bucket)


# ---- report -----------------------------------------------------------------------------------

def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def cmd_report(args):
    """The markdown tables of RESULTS-tiering.md from the JSON lines tiering.sh collected:
    per segment size, the median over repeats of each figure, and of each ratio (each
    repeat's broker figure over the reference taken next to it), with the ratios' range."""
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    runs = {}
    for row in rows:
        runs.setdefault(row["segment_mib"], {}).setdefault(row["repeat"], {})[row["phase"]] = row["result"]

    def fmt(value, digits=1):
        return "-" if value is None else f"{value:.{digits}f}"

    def ratio_cell(pairs):
        ratios = [a / b for a, b in pairs if a and b]
        if not ratios:
            return "-"
        cell = f"**{100 * median(ratios):.0f}%**"
        if len(ratios) > 1:
            cell += f" ({100 * min(ratios):.0f}–{100 * max(ratios):.0f}%)"
        return cell

    upload = ["| segment.bytes | segments | MB | broker MB/s | per upload MB/s | upload ms p50 / max"
              " | uploads in flight avg / gap ms p50 | plain PUT MB/s | broker / plain |",
              "|---|---|---|---|---|---|---|---|---|"]
    read = ["| segment.bytes | messages read | broker remote MB/s | whole topic MB/s (values)"
            " | again, cache warm: remote MB/s | plain GET MB/s | broker / GET"
            " | plain 1 MiB range GETs MB/s | broker / range GETs |",
            "|---|---|---|---|---|---|---|---|---|"]
    for mib in sorted(runs):
        reps = list(runs[mib].values())

        def med(phase, key):
            return median([r[phase].get(key) for r in reps if phase in r])

        def pairs(phase_a, key_a, phase_b, key_b):
            return [(r[phase_a].get(key_a), r[phase_b].get(key_b)) for r in reps
                    if phase_a in r and phase_b in r]

        read_counts = sorted({f"{r['cold']['messages']} / {r['cold']['expected']}" for r in reps if "cold" in r})
        upload.append(
            f"| {mib} MiB | {fmt(med('upload', 'segments'), 0)} | {fmt(med('upload', 'bytes') / 1e6, 0)}"
            f" | {fmt(med('upload', 'mb_per_s'))} | {fmt(med('upload', 'per_upload_mb_per_s'))}"
            f" | {fmt(med('upload', 'upload_ms_p50'), 0)} / {fmt(med('upload', 'upload_ms_max'), 0)}"
            f" | {fmt(med('upload', 'uploads_in_flight_avg'), 2)} of {fmt(med('ref_up', 'threads'), 0)}"
            f" / {fmt(med('upload', 'next_upload_gap_ms_p50'), 0)}"
            f" | {fmt(med('ref_up', 'put_mb_per_s'))}"
            f" | {ratio_cell(pairs('upload', 'mb_per_s', 'ref_up', 'put_mb_per_s'))} |")
        read.append(
            f"| {mib} MiB | {', '.join(read_counts)} | {fmt(med('cold', 'remote_log_mb_per_s'))}"
            f" | {fmt(med('cold', 'mb_per_s'))} | {fmt(med('warm', 'remote_log_mb_per_s'))}"
            f" | {fmt(med('ref_down', 'get_mb_per_s'))}"
            f" | {ratio_cell(pairs('cold', 'remote_log_mb_per_s', 'ref_down', 'get_mb_per_s'))}"
            f" | {fmt(med('ref_down', 'range_get_mb_per_s'))}"
            f" | {ratio_cell(pairs('cold', 'remote_log_mb_per_s', 'ref_down', 'range_get_mb_per_s'))} |")
    print("\n".join(["## Upload", "", args.upload_intro, "", *upload, "",
                     "## Cold read", "", args.read_intro, "", *read]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    produce = commands.add_parser("produce")
    produce.add_argument("--bootstrap", required=True)
    produce.add_argument("--topic", required=True)
    produce.add_argument("--partitions", type=int, required=True)
    produce.add_argument("--segment-bytes", type=int, required=True)
    produce.add_argument("--total-bytes", type=int, required=True)
    produce.add_argument("--message-bytes", type=int, default=1024)
    produce.add_argument("--tiered", action="store_true",
                         help="tiered from the start: segments go up while the producer runs")
    produce.set_defaults(run=cmd_produce)

    enable = commands.add_parser("enable-tiering")
    enable.add_argument("--bootstrap", required=True)
    enable.add_argument("--topic", required=True)
    enable.set_defaults(run=cmd_enable_tiering)

    await_uploads = commands.add_parser("await-uploads")
    await_uploads.add_argument("--log", required=True)
    await_uploads.add_argument("--data-dir", required=True)
    await_uploads.add_argument("--topic", required=True)
    await_uploads.add_argument("--partitions", type=int, required=True)
    await_uploads.add_argument("--sizes-file", required=True)
    await_uploads.add_argument("--enabled-at", type=float)
    await_uploads.add_argument("--timeout-s", type=float, default=300)
    await_uploads.set_defaults(run=cmd_await_uploads)

    consume = commands.add_parser("consume")
    consume.add_argument("--bootstrap", required=True)
    consume.add_argument("--topic", required=True)
    consume.add_argument("--partitions", type=int, required=True)
    consume.add_argument("--expect-messages", type=int, required=True)
    consume.add_argument("--remote-end-offsets", default="{}", help="JSON {partition: offset}")
    consume.add_argument("--remote-bytes", type=int, default=0, help="bytes of the remote .log objects")
    consume.add_argument("--timeout-s", type=float, default=300)
    consume.set_defaults(run=cmd_consume)

    create_bucket = commands.add_parser("create-bucket")
    create_bucket.add_argument("--endpoint", required=True)
    create_bucket.add_argument("--bucket", required=True)
    create_bucket.set_defaults(run=cmd_create_bucket)

    for name, run in (("ref-up", cmd_ref_up), ("ref-down", cmd_ref_down)):
        ref = commands.add_parser(name)
        ref.add_argument("--endpoint", required=True)
        ref.add_argument("--bucket", required=True)
        ref.add_argument("--sizes-file", required=True)
        ref.add_argument("--scratch", required=True)
        ref.add_argument("--threads", type=int, required=True)
        ref.add_argument("--multipart-threshold", type=int, default=8 * MIB)
        ref.add_argument("--part-bytes", type=int, default=8 * MIB)
        ref.add_argument("--parts-in-flight", type=int, default=2)
        ref.add_argument("--range-bytes", type=int, default=MIB)
        ref.set_defaults(run=run)

    drop_bucket = commands.add_parser("drop-bucket")
    drop_bucket.add_argument("--endpoint", required=True)
    drop_bucket.add_argument("--bucket", required=True)
    drop_bucket.set_defaults(run=cmd_drop_bucket)

    report = commands.add_parser("report")
    report.add_argument("--results", required=True, help="JSON lines: segment_mib, repeat, phase, result")
    report.add_argument("--upload-intro", default="")
    report.add_argument("--read-intro", default="")
    report.set_defaults(run=cmd_report)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
