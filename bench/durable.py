#!/usr/bin/env python3
"""Durable-produce load for bench/durable.sh: confluent-kafka (librdkafka) with acks=all and
1 KiB values, either flat out (--rate 0) or paced at --rate messages/s, measuring each
message's latency from produce() to its delivery report. Prints one JSON line."""

import argparse
import json
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=10)
    parser.add_argument("--rate", type=float, default=0, help="messages/s; 0 = as fast as possible")
    parser.add_argument("--message-bytes", type=int, default=1024)
    args = parser.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)])
    try:
        futures[args.topic].result(timeout=30)
    except Exception as error:  # already exists from an earlier phase
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 1,
        "batch.size": 16384,
        "compression.type": "none",
        "queue.buffering.max.messages": 200000,
        "max.in.flight.requests.per.connection": 5,
    })
    value = b"x" * args.message_bytes
    latencies = []
    errors = [0]

    def delivered(error, message, sent_at):
        if error is not None:
            errors[0] += 1
        else:
            latencies.append(time.perf_counter() - sent_at)

    started = time.perf_counter()
    deadline = started + args.duration_s
    sent = 0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        if args.rate > 0:
            due = started + sent / args.rate
            if now < due:
                producer.poll(min(due - now, 0.001))
                continue
        try:
            producer.produce(args.topic, value, partition=sent % args.partitions,
                             on_delivery=lambda e, m, t=time.perf_counter(): delivered(e, m, t))
            sent += 1
        except BufferError:
            producer.poll(0.001)
            continue
        if sent % 64 == 0:
            producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    latencies.sort()
    delivered_count = len(latencies)
    print(json.dumps({
        "partitions": args.partitions,
        "rate_target": args.rate,
        "messages": delivered_count,
        "errors": errors[0],
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(delivered_count / elapsed, 1),
        "mb_per_s": round(delivered_count * args.message_bytes / 1e6 / elapsed, 2),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "p999_ms": round(percentile(latencies, 0.999) * 1000, 2),
    }))


if __name__ == "__main__":
    main()
