"""Consumer groups with real clients: rebalances under load (classic eager, classic cooperative
and KIP-848 group.protocol=consumer), committed offsets across SIGTERM restarts and SIGKILL,
static membership, the kafka-consumer-groups work through the admin clients, kafka-python,
aiokafka and kcat groups, and the errors a user sees.

The basics (one consumer subscribes, commits, resumes; simple admin calls) are in
test_pending_features.py; this file covers what those do not.

Delivery guarantee checked by the rebalance tests: exactly once per group. Each consumer
processes what poll() returns before it polls again, commits synchronously after processing
(periodically) and in its revocation callback; a rebalance only takes effect inside poll(), so
everything processed is committed before another member can be given the partition. With that
discipline Kafka consumes every acknowledged message exactly once per group, across eager,
cooperative and KIP-848 rebalances; a duplicate or a lost message is a broker bug (a commit
dropped or not visible to the next owner, a partition given to two members at once).
"""

import asyncio
import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions,
                             ConsumerGroupType, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until

# The same strings as test_pending_features.py and test_java.py: one matrix row each.
GROUP_ADMIN = "consumer group admin: list, describe, delete, list and alter offsets (kafka-consumer-groups)"
REBALANCE = "consumer groups: rebalance with members joining and leaving"
KIP_848 = "consumer groups (KIP-848 group.protocol=consumer)"
STATIC = "consumer groups: static membership"
DURABLE = "consumer groups: offsets survive broker restart and SIGKILL"
OFFSET_DELETE = "consumer group admin: delete committed offsets (OffsetDelete)"
ERRORS = "consumer groups: errors a client sees (expired member, unknown group, full group)"

# Rebalances start at once (Kafka waits 3 s for more members of a new group), KIP-848 members
# heartbeat every 500 ms instead of 5 s, and sessions as short as 1 s are allowed.
GROUP_FLAGS = ("--group-initial-rebalance-delay-ms", "0",
               "--group-consumer-heartbeat-interval-ms", "500",
               "--group-min-session-timeout-ms", "1000")

# classic-eager: range assignor, every member gives up everything on each rebalance.
# classic-cooperative: cooperative-sticky (KIP-429), incremental revocation over two rounds.
# consumer: KIP-848, the broker assigns; librdkafka refuses session/heartbeat/assignor settings.
PROTOCOLS = ["classic-eager", "classic-cooperative", "consumer"]


@pytest.fixture
def running():
    """Group members and producers a test started; stopped at teardown if a failure left them
    running (before the broker stops: this fixture is requested after broker_factory)."""
    threads = []
    yield threads
    for thread in threads:
        thread.stopping.set()
    for thread in threads:
        thread.join(30)


def group_broker(broker_factory, *extra):
    return broker_factory(*GROUP_FLAGS, *extra)


def admin(broker):
    """An AdminClient; keep it in a variable while its futures are pending (a dropped client
    never completes them)."""
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions):
    client = admin(broker)  # must outlive the future
    client.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def produce_to_partitions(broker, topic, per_partition, prefix="m"):
    """`per_partition` messages to each partition given, explicitly placed; returns their values."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    values = []
    for partition, count in per_partition.items():
        for i in range(count):
            value = f"{prefix}-p{partition}-{i}".encode()
            values.append(value)
            producer.produce(topic, value=value, partition=partition,
                             on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0
    assert errors == []
    return values


def consumer_config(broker, group, protocol, **extra):
    config = {"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False}
    if protocol == "consumer":
        config["group.protocol"] = "consumer"
    else:
        config.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
                       "partition.assignment.strategy":
                           "cooperative-sticky" if protocol == "classic-cooperative" else "range"})
    config.update(extra)
    return config


def poll_until(condition, timeout, what, details=lambda: "", broker=None):
    """wait_until, with what the test knows (and the broker's log) in the failure message."""
    try:
        return wait_until(condition, timeout=timeout, interval=0.1, what=what)
    except AssertionError as error:
        log = f"\nbroker log tail:\n{broker.log()[-3000:]}" if broker is not None else ""
        raise AssertionError(f"{error}\n{details()}{log}") from None


# ---- members that record what their rebalance callbacks said ------------------------------

class Ownership:
    """Which member holds which partitions, as the clients' own rebalance callbacks report it,
    in the order they happened (one lock, one clock). A partition given to a member while
    another still holds it is an overlap. Causality makes this sound: a member's revocation
    callback (with its commit) returns before the client acknowledges the revocation to the
    coordinator, and only then can the coordinator give the partition to someone else."""

    def __init__(self):
        self.lock = threading.Lock()
        self.owner = {}
        self.held = defaultdict(set)
        self.overlaps = []
        self.events = []

    def assign(self, member, partitions):
        with self.lock:
            now = time.monotonic()
            self.events.append((round(now, 3), member, "assign", sorted(partitions)))
            for p in partitions:
                other = self.owner.get(p)
                if other is not None and other != member:
                    self.overlaps.append(f"t={now:.3f}: partition {p} assigned to {member} while {other} holds it")
                self.owner[p] = member
                self.held[member].add(p)

    def release(self, member, partitions, kind):
        with self.lock:
            self.events.append((round(time.monotonic(), 3), member, kind, sorted(partitions)))
            for p in partitions:
                if self.owner.get(p) == member:
                    del self.owner[p]
                self.held[member].discard(p)

    def holdings(self):
        with self.lock:
            return {member: set(held) for member, held in self.held.items()}

    def balanced(self, members, partitions):
        """Each of `members` holds its equal share, together all `partitions`."""
        held = self.holdings()
        share = partitions // len(members)
        return (all(len(held.get(m, ())) == share for m in members)
                and set().union(*(held.get(m, set()) for m in members)) == set(range(partitions)))

    def describe(self):
        with self.lock:
            return f"holdings: {dict(self.held)}\nlast events: {self.events[-20:]}"


class Consumed:
    """Everything the members processed: (member, partition, offset, value)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records = []

    def add(self, member, message):
        with self.lock:
            self.records.append((member, message.partition(), message.offset(), message.value()))

    def values(self):
        with self.lock:
            return [r[3] for r in self.records]

    def count(self):
        with self.lock:
            return len(self.records)

    def by_member(self):
        with self.lock:
            return Counter(r[0] for r in self.records)


class GroupMember(threading.Thread):
    """A confluent-kafka group member in a thread of its own: polls, processes synchronously,
    commits every half second and in its revocation callback, reports its callbacks."""

    def __init__(self, name, config, topic, ownership, consumed):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.config = config
        self.topic = topic
        self.ownership = ownership
        self.consumed = consumed
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.positions = {}  # partition -> next offset to commit
        self.committed = {}  # partition -> what the last successful commit stored
        self.callbacks = []  # (monotonic time, kind, partitions)
        self.commit_errors = []  # (where, error)
        self.poll_errors = []
        self.lost = []
        self.failure = None
        self.closed = threading.Event()

    def uncommitted(self):
        """Partitions whose processed messages are not all committed yet."""
        with self.lock:
            return [p for p, offset in self.positions.items() if self.committed.get(p) != offset]

    def commit(self, partitions, where):
        """Commits what was processed of `partitions`, where not committed already (a commit of
        nothing new could only fail for nothing, e.g. REBALANCE_IN_PROGRESS while closing)."""
        with self.lock:
            offsets = [TopicPartition(self.topic, p, self.positions[p]) for p in partitions
                       if p in self.positions and self.committed.get(p) != self.positions[p]]
        if not offsets:
            return
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            self.commit_errors.append((where, error.args[0]))
            return
        failed = [(tp.partition, tp.error) for tp in result or [] if tp.error]
        if failed:
            self.commit_errors.append((where, failed))
        with self.lock:
            self.committed.update((tp.partition, tp.offset) for tp in result or offsets if not tp.error)

    def on_assign(self, consumer, partitions):
        ps = [tp.partition for tp in partitions]
        self.callbacks.append((time.monotonic(), "assign", ps))
        self.ownership.assign(self.member, ps)

    def on_revoke(self, consumer, partitions):
        ps = [tp.partition for tp in partitions]
        self.callbacks.append((time.monotonic(), "revoke", ps))
        self.commit(ps, "on_revoke")
        self.forget(ps)
        self.ownership.release(self.member, ps, "revoke")

    def on_lost(self, consumer, partitions):
        ps = [tp.partition for tp in partitions]
        self.callbacks.append((time.monotonic(), "lost", ps))
        self.lost.append(ps)
        self.forget(ps)
        self.ownership.release(self.member, ps, "lost")

    def forget(self, partitions):
        with self.lock:
            for p in partitions:
                self.positions.pop(p, None)
                self.committed.pop(p, None)

    def run(self):
        try:
            self.consumer = Consumer(self.config)
            self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                    on_lost=self.on_lost)
            last_commit = time.monotonic()
            while not self.stopping.is_set():
                message = self.consumer.poll(0.1)
                if message is not None:
                    if message.error():
                        self.poll_errors.append(message.error())
                    else:
                        self.consumed.add(self.member, message)
                        with self.lock:
                            self.positions[message.partition()] = message.offset() + 1
                if time.monotonic() - last_commit > 0.5:
                    self.commit(list(self.positions), "periodic")
                    last_commit = time.monotonic()
            self.commit(list(self.positions), "before close")
            self.consumer.close()  # serves the revocation callback, then leaves the group
            left = self.ownership.holdings().get(self.member, set())
            if left:
                self.ownership.release(self.member, left, "closed while holding")
        except Exception:  # noqa: BLE001 - reported by the test
            self.failure = traceback.format_exc()
        finally:
            self.closed.set()

    def stop(self, timeout=60):
        self.stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.member} did not close within {timeout}s"


class KeyedProducer(threading.Thread):
    """Produces keyed messages with unique values until stopped; keeps what was acknowledged."""

    def __init__(self, broker, topic):
        super().__init__(daemon=True)
        self.broker = broker
        self.topic = topic
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acked = []
        self.errors = []
        self.unflushed = None
        self.failure = None

    def report(self, err, msg):
        with self.lock:
            if err is None:
                self.acked.append(msg.value())
            else:
                self.errors.append(err)

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def run(self):
        try:
            # Idempotent: a retried produce must not put a value in the log twice.
            producer = Producer({"bootstrap.servers": self.broker.bootstrap, "enable.idempotence": True,
                                 "acks": "all", "linger.ms": 5})
            i = 0
            while not self.stopping.is_set():
                try:
                    producer.produce(self.topic, key=b"k%d" % (i % 101), value=b"v%d" % i, on_delivery=self.report)
                    i += 1
                except BufferError:
                    producer.poll(0.1)
                producer.poll(0)
                time.sleep(0.002)
            self.unflushed = producer.flush(60)
        except Exception:  # noqa: BLE001 - reported by the test
            self.failure = traceback.format_exc()

    def stop(self):
        self.stopping.set()
        self.join(90)
        assert not self.is_alive(), "the producer did not finish"
        assert self.failure is None, self.failure
        assert self.unflushed == 0 and self.errors == [], f"unflushed {self.unflushed}, errors {self.errors[:5]}"
        return list(self.acked)


def end_offsets(broker, topic, partitions):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "end-offsets"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def committed_offsets(broker, group, topic, partitions):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


def check_members(members):
    for m in members:
        assert m.failure is None, f"{m.member}: {m.failure}"
        assert m.lost == [], f"{m.member} lost partitions (session expired or fenced): {m.lost}"
        revoke_errors = [e for where, e in m.commit_errors if where != "periodic"]
        assert revoke_errors == [], f"{m.member}: commits at revocation/close failed: {m.commit_errors}"


# ---- 1. rebalances under load --------------------------------------------------------------

@pytest.mark.timeout(300)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_confluent_rebalance_under_load_consumes_each_message_once(broker_factory, running, topic_name, protocol,
                                                                     request):
    request.node.add_marker(pytest.mark.matrix("confluent-kafka", REBALANCE))
    if protocol == "consumer":
        request.node.add_marker(pytest.mark.matrix("confluent-kafka", KIP_848))
    partitions = 12
    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, partitions)
    group = "g-" + topic_name
    ownership, consumed = Ownership(), Consumed()
    members = {}

    def start(name):
        members[name] = GroupMember(name, consumer_config(broker, group, protocol), topic_name, ownership, consumed)
        running.append(members[name])
        members[name].start()

    def details():
        return (f"{ownership.describe()}\nconsumed {consumed.count()}, overlaps {ownership.overlaps[:5]}\n"
                + "\n".join(f"{m.member}: failure={m.failure} commit_errors={m.commit_errors[:3]} "
                            f"poll_errors={m.poll_errors[:3]}" for m in members.values()))

    def balanced(names):
        poll_until(lambda: ownership.balanced(names, partitions), 60, f"{names} to share the partitions evenly",
                   details, broker)

    def progress(names, count=50):
        """Each of `names` consumes `count` more messages: every member's share is being read."""
        start = consumed.by_member()
        poll_until(lambda: all(consumed.by_member()[n] >= start[n] + count for n in names), 60,
                   f"each of {names} to consume {count} more messages", details, broker)

    producer = KeyedProducer(broker, topic_name)
    running.append(producer)
    producer.start()
    try:
        poll_until(lambda: producer.acked_count() >= 200, 30, "the producer's first acknowledgements",
                   lambda: f"errors {producer.errors[:3]} failure {producer.failure}", broker)
        for name in ("a", "b", "c"):
            start(name)
        balanced(["a", "b", "c"])
        progress(["a", "b", "c"])
        start("d")
        balanced(["a", "b", "c", "d"])
        progress(["a", "b", "c", "d"])
        members["a"].stop()
        balanced(["b", "c", "d"])
        progress(["b", "c", "d"])
    finally:
        acked = producer.stop()

    acked_set = set(acked)
    poll_until(lambda: acked_set <= set(consumed.values()), 120, "every acknowledged message to be consumed",
               lambda: f"missing {len(acked_set - set(consumed.values()))} of {len(acked)}\n{details()}", broker)
    # Stop once the periodic commits have caught up: a member closing while the group is
    # rebalancing for the previous one cannot commit (REBALANCE_IN_PROGRESS, as in Kafka).
    poll_until(lambda: not any(members[n].uncommitted() for n in ("b", "c", "d")), 30,
               "the members to commit what they processed", details, broker)
    for name in ("b", "c", "d"):
        members[name].stop()
    check_members(members.values())
    assert ownership.overlaps == [], "a partition was assigned to two live members at once:\n" + \
        "\n".join(ownership.overlaps[:10]) + f"\n{ownership.describe()}"
    counts = Counter(consumed.values())
    duplicates = {v: n for v, n in counts.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} messages consumed more than once, e.g. {list(duplicates.items())[:5]}"
    unacknowledged = set(counts) - acked_set
    assert not unacknowledged, f"consumed values that were never acknowledged: {list(unacknowledged)[:5]}"
    # Every member that closed committed what it processed: the group's offsets are the ends of the
    # log (a partition no key hashed to has no committed offset).
    ends = end_offsets(broker, topic_name, partitions)
    committed = committed_offsets(broker, group, topic_name, partitions)
    assert {p: o for p, o in committed.items() if ends[p] > 0} == {p: o for p, o in ends.items() if o > 0}

    # Publish-subscribe: a second group reads everything again, each message once.
    ownership2, consumed2 = Ownership(), Consumed()
    reader = GroupMember("reader", consumer_config(broker, "g2-" + topic_name, protocol), topic_name,
                         ownership2, consumed2)
    running.append(reader)
    reader.start()
    poll_until(lambda: consumed2.count() >= len(acked), 120, "the second group to read every message",
               lambda: f"read {consumed2.count()} of {len(acked)}; {ownership2.describe()}", broker)
    reader.stop()
    check_members([reader])
    assert Counter(consumed2.values()) == Counter(acked)


# ---- 2. committed offsets across restarts ----------------------------------------------------

@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_committed_offsets_survive_restart_and_sigkill(broker_factory, topic_name, protocol, how, request):
    request.node.add_marker(pytest.mark.matrix("confluent-kafka", DURABLE))
    request.node.add_marker(pytest.mark.matrix("confluent-kafka",
                                               f"consumer groups (group.protocol={protocol}): commit and resume"))
    if protocol == "consumer":
        request.node.add_marker(pytest.mark.matrix("confluent-kafka", KIP_848))
    partitions = 4
    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, partitions)
    produce_to_partitions(broker, topic_name, {p: 50 for p in range(partitions)})
    group = "g-" + topic_name
    config = consumer_config(broker, group, "classic-eager" if protocol == "classic" else "consumer")
    committed = {p: 5 + 9 * p for p in range(partitions)}  # 5, 14, 23, 32

    first = Consumer(config)
    first.subscribe([topic_name])
    seen = []

    def assigned_everything():
        message = first.poll(0.1)
        if message is not None and message.error() is None:
            seen.append(message.offset())
        return len(first.assignment()) == partitions and len(seen) >= 20

    poll_until(assigned_everything, 60, "the first consumer to hold every partition and consume", broker=broker)
    first.commit(offsets=[TopicPartition(topic_name, p, o) for p, o in committed.items()], asynchronous=False)
    assert {tp.partition: tp.offset for tp in first.committed(
        [TopicPartition(topic_name, p) for p in range(partitions)], timeout=30)} == committed
    first.close()

    if how == "sigterm":
        broker.restart()
    else:
        broker.kill()
        broker.start()

    client = admin(broker)  # must outlive its futures
    listed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=60)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions if tp.topic == topic_name} == committed

    second = Consumer(config)
    second.subscribe([topic_name])
    first_seen = {}

    def saw_every_partition():
        message = second.poll(0.1)
        if message is not None and message.error() is None:
            first_seen.setdefault(message.partition(), message.offset())
        return len(first_seen) == partitions

    try:
        poll_until(saw_every_partition, 60, "a message from every partition after the restart",
                   lambda: f"first offsets so far: {first_seen}", broker)
    finally:
        second.close()
    assert first_seen == committed


# ---- 3. static membership --------------------------------------------------------------------

@pytest.mark.timeout(180)
@pytest.mark.matrix("confluent-kafka", STATIC)
def test_confluent_static_member_restart_causes_no_rebalance(broker_factory, running, topic_name):
    partitions, session_timeout_s = 6, 10
    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, partitions)
    group = "g-" + topic_name
    ownership, consumed = Ownership(), Consumed()
    members = {}

    def start(name, instance):
        config = consumer_config(broker, group, "classic-eager", **{
            "group.instance.id": instance, "session.timeout.ms": session_timeout_s * 1000})
        members[name] = GroupMember(name, config, topic_name, ownership, consumed)
        running.append(members[name])
        members[name].start()

    details = ownership.describe
    # i0 first, so that it is the leader; the member restarted below is not.
    start("i0", "i0")
    poll_until(lambda: ownership.balanced(["i0"], partitions), 60, "i0 to hold every partition", details, broker)
    start("i1", "i1")
    start("i2", "i2")
    poll_until(lambda: ownership.balanced(["i0", "i1", "i2"], partitions), 60, "three members balanced",
               details, broker)
    before = ownership.holdings()["i2"]
    calls_before = {name: len(members[name].callbacks) for name in ("i0", "i1")}

    # librdkafka sends no LeaveGroup when a static member closes.
    members["i2"].stop()
    restarted_at = time.monotonic()
    start("i2-again", "i2")
    poll_until(lambda: ownership.holdings().get("i2-again"), session_timeout_s,
               "the restarted static member to get its partitions within session.timeout.ms", details, broker)
    assert ownership.holdings()["i2-again"] == before

    # Watch past the old instance's session timeout: had the coordinator kept (and then expired)
    # the old member, the others would rebalance now.
    deadline = restarted_at + session_timeout_s + 3
    while time.monotonic() < deadline:
        for name in ("i0", "i1"):
            new_calls = members[name].callbacks[calls_before[name]:]
            assert new_calls == [], f"{name} saw a rebalance after the static restart: {new_calls}\n{details()}"
        time.sleep(0.2)

    client = admin(broker)  # must outlive its futures
    described = client.describe_consumer_groups([group])[group].result(timeout=30)
    assert described.state == ConsumerGroupState.STABLE
    assert sorted(m.group_instance_id for m in described.members) == ["i0", "i1", "i2"]
    by_instance = {m.group_instance_id: {tp.partition for tp in m.assignment.topic_partitions}
                   for m in described.members}
    assert by_instance["i2"] == before
    for name in ("i0", "i1", "i2-again"):
        members[name].stop()
    check_members(members.values())
    assert ownership.overlaps == []


# ---- 4. the kafka-consumer-groups work through the AdminClient ------------------------------

def alter_error(client, group, offsets):
    """The error code alter_consumer_group_offsets reports (raised or per partition), or None."""
    try:
        result = client.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)])[group].result(
            timeout=30)
    except KafkaException as error:
        return error.args[0].code()
    errors = [tp.error.code() for tp in result.topic_partitions if tp.error]
    return errors[0] if errors else None


def group_offsets(client, group):
    result = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}


def listed_groups(client, **filters):
    result = client.list_consumer_groups(**filters).result(timeout=30)
    assert result.errors == [], result.errors
    return {g.group_id: g for g in result.valid}


def joined(consumer, partitions, timeout=60, broker=None):
    """Polls `consumer` until it holds `partitions` partitions (what it reads is dropped)."""
    def holds():
        consumer.poll(0.1)
        return len(consumer.assignment()) == partitions

    poll_until(holds, timeout, f"the consumer to hold {partitions} partitions",
               lambda: f"it holds {consumer.assignment()}", broker)


@pytest.mark.timeout(180)
@pytest.mark.matrix("confluent-kafka", GROUP_ADMIN)
@pytest.mark.matrix("confluent-kafka", KIP_848)
def test_confluent_group_admin_states_members_offsets_and_deletion(broker_factory, topic_name):
    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, 2)
    produce_to_partitions(broker, topic_name, {0: 10, 1: 10})
    client = admin(broker)
    active, empty, modern = "active-" + topic_name, "empty-" + topic_name, "kip848-" + topic_name

    # An active classic group: one member holding both partitions, with committed offsets.
    member = Consumer(consumer_config(broker, active, "classic-eager", **{"client.id": "admin-test-member"}))
    member.subscribe([topic_name])
    # A KIP-848 group with one member.
    modern_member = Consumer(consumer_config(broker, modern, "consumer"))
    modern_member.subscribe([topic_name])
    try:
        joined(member, 2, broker=broker)
        joined(modern_member, 2, broker=broker)
        member.commit(offsets=[TopicPartition(topic_name, 0, 4), TopicPartition(topic_name, 1, 6)], asynchronous=False)
        # An empty group: offsets committed by a consumer that never joined (as the admin tools do).
        outsider = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": empty, "enable.auto.commit": False})
        outsider.commit(offsets=[TopicPartition(topic_name, 0, 3), TopicPartition(topic_name, 1, 7)],
                        asynchronous=False)
        outsider.close()

        def keep_members_polling():
            member.poll(0)
            modern_member.poll(0)

        # kafka-consumer-groups --list, with --state and --type filters.
        keep_members_polling()
        everything = listed_groups(client)
        assert {active, empty, modern} <= set(everything)
        assert everything[active].state == ConsumerGroupState.STABLE
        assert everything[empty].state == ConsumerGroupState.EMPTY
        stable = listed_groups(client, states={ConsumerGroupState.STABLE})
        assert active in stable and modern in stable and empty not in stable
        empty_only = listed_groups(client, states={ConsumerGroupState.EMPTY})
        assert empty in empty_only and active not in empty_only
        classic = listed_groups(client, types={ConsumerGroupType.CLASSIC})
        assert active in classic and modern not in classic
        consumer_type = listed_groups(client, types={ConsumerGroupType.CONSUMER})
        assert modern in consumer_type and active not in consumer_type

        # kafka-consumer-groups --describe (--members, --state): classic and KIP-848 groups.
        keep_members_polling()
        described = client.describe_consumer_groups([active, empty, modern])
        d_active = described[active].result(timeout=30)
        assert (d_active.state, d_active.type, d_active.is_simple_consumer_group) == (
            ConsumerGroupState.STABLE, ConsumerGroupType.CLASSIC, False)
        assert d_active.partition_assignor == "range"
        assert [m.client_id for m in d_active.members] == ["admin-test-member"]
        assert sorted(tp.partition for tp in d_active.members[0].assignment.topic_partitions) == [0, 1]
        d_empty = described[empty].result(timeout=30)
        assert d_empty.state == ConsumerGroupState.EMPTY and d_empty.members == []
        d_modern = described[modern].result(timeout=30)
        assert (d_modern.state, d_modern.type) == (ConsumerGroupState.STABLE, ConsumerGroupType.CONSUMER)
        assert len(d_modern.members) == 1 and d_modern.partition_assignor
        assert sorted(tp.partition for tp in d_modern.members[0].assignment.topic_partitions) == [0, 1]

        # --describe --offsets, then --reset-offsets on the empty group.
        assert group_offsets(client, active) == {(topic_name, 0): 4, (topic_name, 1): 6}
        assert group_offsets(client, empty) == {(topic_name, 0): 3, (topic_name, 1): 7}
        assert alter_error(client, empty, [TopicPartition(topic_name, 0, 1), TopicPartition(topic_name, 1, 0)]) is None
        assert group_offsets(client, empty) == {(topic_name, 0): 1, (topic_name, 1): 0}
        # An admin commit (no member id, generation -1) to a group with members: UNKNOWN_MEMBER_ID,
        # as Kafka answers; the offsets stay.
        keep_members_polling()
        assert alter_error(client, active, [TopicPartition(topic_name, 0, 0)]) == KafkaError.UNKNOWN_MEMBER_ID
        assert group_offsets(client, active) == {(topic_name, 0): 4, (topic_name, 1): 6}

        # --delete: refused while the group has members, done when it is empty.
        keep_members_polling()
        with pytest.raises(KafkaException) as refused:
            client.delete_consumer_groups([active])[active].result(timeout=30)
        assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
        client.delete_consumer_groups([empty])[empty].result(timeout=30)
        assert empty not in listed_groups(client)
        assert active in listed_groups(client)
    finally:
        member.close()
        modern_member.close()
    # Once its member has left, the group is empty and can be deleted with its offsets.
    poll_until(lambda: listed_groups(client).get(active) and
               listed_groups(client)[active].state == ConsumerGroupState.EMPTY, 30, "the group to become empty",
               broker=broker)
    client.delete_consumer_groups([active])[active].result(timeout=30)
    assert active not in listed_groups(client)
    assert group_offsets(client, active) == {}


@pytest.mark.timeout(120)
@pytest.mark.matrix("kafka-python", OFFSET_DELETE)
def test_kafka_python_offset_delete(broker_factory, topic_name):
    """confluent-kafka 2.16's AdminClient has no delete_consumer_group_offsets: kafka-python's
    delete_group_offsets sends OffsetDelete."""
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupSubscribedToTopicError, NoError

    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, 2)
    active, empty = "active-" + topic_name, "empty-" + topic_name
    member = Consumer(consumer_config(broker, active, "classic-eager"))
    member.subscribe([topic_name])
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        joined(member, 2, broker=broker)
        member.commit(offsets=[TopicPartition(topic_name, 0, 0), TopicPartition(topic_name, 1, 0)], asynchronous=False)
        outsider = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": empty, "enable.auto.commit": False})
        outsider.commit(offsets=[TopicPartition(topic_name, 0, 0), TopicPartition(topic_name, 1, 0)],
                        asynchronous=False)
        outsider.close()
        tp0, tp1 = KTopicPartition(topic_name, 0), KTopicPartition(topic_name, 1)

        member.poll(0)
        # A group whose members subscribe to the topic keeps its offsets: GROUP_SUBSCRIBED_TO_TOPIC.
        assert kadmin.delete_group_offsets(active, [tp0]) == {tp0: GroupSubscribedToTopicError}
        assert set(kadmin.list_group_offsets(active)[active]) == {tp0, tp1}
        # An empty group: deleted for that partition only.
        assert kadmin.delete_group_offsets(empty, [tp0]) == {tp0: NoError}
        assert set(kadmin.list_group_offsets(empty)[empty]) == {tp1}
    finally:
        kadmin.close()
        member.close()


# ---- 5. the other clients' groups --------------------------------------------------------------

@pytest.mark.timeout(180)
@pytest.mark.matrix("kafka-python", REBALANCE)
def test_kafka_python_group_members_join_and_leave(broker_factory, topic_name):
    """Commit after each batch, before the next poll: kafka-python rebalances only inside poll(),
    so what a member processed is committed before the partition can move."""
    from kafka import KafkaConsumer

    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, 4)
    group = "g-" + topic_name
    lock = threading.Lock()
    consumed, assignments, failures, commit_errors = [], {}, [], []
    stops = {}

    def member(name):
        try:
            consumer = KafkaConsumer(topic_name, bootstrap_servers=broker.bootstrap, group_id=group,
                                     auto_offset_reset="earliest", enable_auto_commit=False,
                                     session_timeout_ms=10000, heartbeat_interval_ms=1000)
            try:
                while not stops[name].is_set():
                    batch = consumer.poll(timeout_ms=200)
                    with lock:
                        for records in batch.values():
                            consumed.extend((name, r.partition, r.offset) for r in records)
                    if batch:
                        try:
                            consumer.commit()
                        except Exception as error:  # noqa: BLE001
                            commit_errors.append((name, repr(error)))
                    with lock:
                        assignments[name] = {tp.partition for tp in consumer.assignment()}
            finally:
                consumer.close()
                with lock:
                    assignments.pop(name, None)
        except Exception:  # noqa: BLE001
            failures.append(traceback.format_exc())

    def start(name):
        stops[name] = threading.Event()
        thread = threading.Thread(target=member, args=(name,), daemon=True)
        thread.start()
        return thread

    def holds(expected):
        with lock:
            return {n: len(ps) for n, ps in assignments.items()} == expected

    def consumed_count():
        with lock:
            return len(consumed)

    def details():
        with lock:
            return f"assignments {assignments}, consumed {len(consumed)}, failures {failures}, commits {commit_errors}"

    produce_to_partitions(broker, topic_name, {p: 10 for p in range(4)}, prefix="one")
    first = start("first")
    poll_until(lambda: holds({"first": 4}) and consumed_count() >= 40, 60, "the first member alone", details, broker)
    second = start("second")
    poll_until(lambda: holds({"first": 2, "second": 2}), 60, "two members with two partitions each", details, broker)
    produce_to_partitions(broker, topic_name, {p: 10 for p in range(4)}, prefix="two")
    poll_until(lambda: consumed_count() >= 80, 60, "the second batch", details, broker)
    stops["second"].set()
    second.join(60)
    poll_until(lambda: holds({"first": 4}), 60, "the first member to take everything back", details, broker)
    produce_to_partitions(broker, topic_name, {p: 10 for p in range(4)}, prefix="three")
    poll_until(lambda: consumed_count() >= 120, 60, "the third batch", details, broker)
    stops["first"].set()
    first.join(60)
    assert failures == []
    offsets = Counter((p, o) for _, p, o in consumed)
    assert sorted(offsets) == [(p, o) for p in range(4) for o in range(30)], details()
    assert max(offsets.values()) == 1, f"consumed twice: {[k for k, n in offsets.items() if n > 1]}; {details()}"
    assert any(name == "second" for name, _, _ in consumed)


@pytest.mark.timeout(180)
@pytest.mark.matrix("aiokafka", REBALANCE)
def test_aiokafka_group_members_join_and_leave(broker_factory, topic_name):
    """aiokafka rebalances in a background task: commit in on_partitions_revoked (what was returned
    by getmany is processed before the loop yields) and after each batch."""
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
    from aiokafka.errors import CommitFailedError, IllegalStateError

    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, 4)
    group = "g-" + topic_name
    consumed, assignments, commit_errors = [], {}, []

    class CommitOnRevoke(ConsumerRebalanceListener):
        def __init__(self, name, consumer):
            self.name, self.consumer = name, consumer

        async def on_partitions_revoked(self, revoked):
            if revoked:
                try:
                    await self.consumer.commit()
                except Exception as error:  # noqa: BLE001
                    commit_errors.append((self.name, "on revoke", repr(error)))

        async def on_partitions_assigned(self, assigned):
            pass

    async def member(name, stop):
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                                    enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=1000)
        consumer.subscribe([topic_name], listener=CommitOnRevoke(name, consumer))
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    consumed.extend((name, m.partition, m.offset) for m in messages)
                if batch:
                    try:
                        await consumer.commit()
                    except (CommitFailedError, IllegalStateError):
                        pass  # the partitions moved: the revocation listener committed them
                assignments[name] = {tp.partition for tp in consumer.assignment()}
        finally:
            await consumer.stop()
            assignments.pop(name, None)

    tasks = {}

    async def until(condition, what):
        deadline = time.monotonic() + 60
        while not condition():
            for name, task in tasks.items():
                if task.done() and task.exception() is not None:
                    raise AssertionError(f"member {name} failed while waiting for {what}") from task.exception()
            assert time.monotonic() < deadline, f"timed out waiting for {what}: assignments {assignments}, " \
                                                f"consumed {len(consumed)}, commit errors {commit_errors}"
            await asyncio.sleep(0.1)

    def holds(expected):
        return {n: len(ps) for n, ps in assignments.items()} == expected

    async def scenario():
        loop = asyncio.get_running_loop()

        async def produce(prefix):
            await loop.run_in_executor(None, produce_to_partitions, broker, topic_name,
                                       {p: 10 for p in range(4)}, prefix)

        await produce("one")
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        first = tasks["first"] = asyncio.create_task(member("first", stop_first))
        await until(lambda: holds({"first": 4}) and len(consumed) >= 40, "the first member alone")
        second = tasks["second"] = asyncio.create_task(member("second", stop_second))
        await until(lambda: holds({"first": 2, "second": 2}), "two members with two partitions each")
        await produce("two")
        await until(lambda: len(consumed) >= 80, "the second batch")
        stop_second.set()
        await second
        await until(lambda: holds({"first": 4}), "the first member to take everything back")
        await produce("three")
        await until(lambda: len(consumed) >= 120, "the third batch")
        stop_first.set()
        await first

    asyncio.run(asyncio.wait_for(scenario(), timeout=170))
    offsets = Counter((p, o) for _, p, o in consumed)
    assert sorted(offsets) == [(p, o) for p in range(4) for o in range(30)]
    assert max(offsets.values()) == 1, f"consumed twice: {[k for k, n in offsets.items() if n > 1]}"
    assert commit_errors == []
    assert any(name == "second" for name, _, _ in consumed)


@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.matrix("kcat", "balanced consumer group (-G)")
def test_kcat_two_balanced_consumers_share_the_partitions(broker_factory, topic_name, tmp_path):
    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, 4)
    group = "g-" + topic_name
    client = admin(broker)
    outputs = [tmp_path / "kcat0.out", tmp_path / "kcat1.out"]
    processes = []
    for path in outputs:
        with open(path, "w") as out, open(path.with_suffix(".err"), "w") as err:
            processes.append(subprocess.Popen(
                ["kcat", "-b", broker.bootstrap, "-G", group, "-o", "beginning", "-u", "-q",
                 "-f", "%p %o %s\\n", topic_name],
                stdout=out, stderr=err))
    try:
        def stable_with_two():
            d = client.describe_consumer_groups([group])[group].result(timeout=30)
            sizes = sorted(len(m.assignment.topic_partitions) for m in d.members)
            return d.state == ConsumerGroupState.STABLE and sizes == [2, 2] and d

        described = poll_until(stable_with_two, 60, "two kcat members with two partitions each",
                               lambda: "\n".join(p.with_suffix(".err").read_text() for p in outputs), broker)
        by_client = sorted(sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members)
        values = produce_to_partitions(broker, topic_name, {p: 25 for p in range(4)})

        def lines():
            return [[line.split(" ", 2) for line in path.read_text().splitlines() if line] for path in outputs]

        poll_until(lambda: sum(map(len, lines())) >= 100, 60, "kcat to print 100 messages",
                   lambda: f"printed {[len(x) for x in lines()]}", broker)
        got = lines()
        everything = Counter(value for out in got for _, _, value in out)
        assert everything == Counter(v.decode() for v in values)
        partitions_per_process = sorted(sorted({int(p) for p, _, _ in out}) for out in got)
        assert partitions_per_process == by_client, "each kcat reads the partitions the group gave it"
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


# ---- 6. errors a user sees -------------------------------------------------------------------

EXPIRED_MEMBER = r"""
import json, os, sys
from confluent_kafka import Consumer, KafkaException, TopicPartition
bootstrap, group, topic = sys.argv[1:4]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "session.timeout.ms": 3000, "heartbeat.interval.ms": 500})
assigned = []
consumer.subscribe([topic], on_assign=lambda c, ps: assigned.extend(tp.partition for tp in ps))
while not assigned:
    consumer.poll(0.1)
print(json.dumps({"assigned": assigned}), flush=True)
sys.stdin.readline()  # the parent stops this process here until the session has expired
try:
    result = consumer.commit(offsets=[TopicPartition(topic, p, 7) for p in assigned], asynchronous=False)
    errors = [tp.error for tp in result if tp.error]
    print(json.dumps({"error": errors[0].code() if errors else None,
                      "name": errors[0].name() if errors else None}), flush=True)
except KafkaException as error:
    print(json.dumps({"error": error.args[0].code(), "name": error.args[0].name()}), flush=True)
os._exit(0)
"""


@pytest.mark.timeout(120)
@pytest.mark.matrix("confluent-kafka", ERRORS)
def test_confluent_commit_after_session_expiry_fails(broker_factory, topic_name):
    """A member frozen (SIGSTOP) past session.timeout.ms is removed by the coordinator; its
    commit afterwards fails and does not change the group's offsets."""
    broker = group_broker(broker_factory)
    create_topic(broker, topic_name, 2)
    group = "g-" + topic_name
    survivor = Consumer(consumer_config(broker, group, "classic-eager"))
    survivor.subscribe([topic_name])
    joined(survivor, 2, broker=broker)
    child = subprocess.Popen([sys.executable, "-c", EXPIRED_MEMBER, broker.bootstrap, group, topic_name],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()
    try:
        # The survivor keeps polling, so that the rebalance for the newcomer completes.
        def child_joined():
            survivor.poll(0.1)
            return len(survivor.assignment()) == 1 and not lines.empty()

        poll_until(child_joined, 60, "the second member to join", lambda: f"survivor holds {survivor.assignment()}",
                   broker)
        child_partitions = json.loads(lines.get())["assigned"]
        assert len(child_partitions) == 1
        child.send_signal(signal.SIGSTOP)
        # The coordinator expires the frozen member (3 s session) and gives the survivor everything.
        poll_until(lambda: survivor.poll(0.1) is None and len(survivor.assignment()) == 2, 30,
                   "the coordinator to expire the frozen member", broker=broker)
        child.send_signal(signal.SIGCONT)
        child.stdin.write("commit\n")
        child.stdin.flush()
        try:
            result = json.loads(lines.get(timeout=60))
        except queue.Empty:
            child.kill()
            raise AssertionError(f"the expired member's commit did not return within 60s: {child.stderr.read()}")
        # librdkafka reports the broker's UNKNOWN_MEMBER_ID (or ILLEGAL_GENERATION for a stale
        # generation), or _ASSIGNMENT_LOST when it noticed the expiry itself first.
        assert result.get("error") in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION,
                                       KafkaError._ASSIGNMENT_LOST), f"commit after expiry answered {result}"
        offsets = committed_offsets(broker, group, topic_name, 2)
        assert offsets[child_partitions[0]] != 7, "a commit from an expired member was stored"
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
        child.wait(10)
        survivor.close()


@pytest.mark.timeout(60)
@pytest.mark.matrix("confluent-kafka", ERRORS)
def test_confluent_describe_unknown_group(broker_factory):
    """Kafka before 4.0 describes a group that does not exist as Dead with no members; 4.0
    (KIP-1043, ConsumerGroupDescribe and DescribeGroups v6) answers GROUP_ID_NOT_FOUND.
    Either is what a client shows for it; anything else is not."""
    broker = group_broker(broker_factory)
    client = admin(broker)  # must outlive its futures
    future = client.describe_consumer_groups(["no-such-group"])["no-such-group"]
    try:
        described = future.result(timeout=30)
    except KafkaException as error:
        assert error.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, error
    else:
        assert described.state == ConsumerGroupState.DEAD and described.members == [], described


@pytest.mark.timeout(120)
@pytest.mark.matrix("confluent-kafka", ERRORS)
def test_confluent_group_max_size(broker_factory, running, topic_name):
    """--group-max-size 2: a third member is refused with GROUP_MAX_SIZE_REACHED and the two
    members keep their partitions."""
    broker = group_broker(broker_factory, "--group-max-size", "2")
    create_topic(broker, topic_name, 2)
    group = "g-" + topic_name
    ownership, consumed = Ownership(), Consumed()
    members = [GroupMember(name, consumer_config(broker, group, "classic-eager"), topic_name, ownership, consumed)
               for name in ("a", "b")]
    for m in members:
        running.append(m)
        m.start()
    poll_until(lambda: ownership.balanced(["a", "b"], 2), 60, "two members", ownership.describe, broker)
    events = len(ownership.events)
    third = Consumer(consumer_config(broker, group, "classic-eager"))
    third.subscribe([topic_name])
    errors = []
    try:
        def refused():
            message = third.poll(0.2)
            if message is not None and message.error():
                errors.append(message.error())
            return any(e.code() == KafkaError.GROUP_MAX_SIZE_REACHED or "GROUP_MAX_SIZE" in str(e) for e in errors)

        poll_until(refused, 30, "the third member to be refused", lambda: f"errors: {errors}", broker)
        assert third.assignment() == []
        # Kafka refuses the member without a rebalance of the full group.
        assert ownership.events[events:] == [], f"the group rebalanced for the refused member: {ownership.events}"
    finally:
        third.close()
    for m in members:
        m.stop()
    check_members(members)
