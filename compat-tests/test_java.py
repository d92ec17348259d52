"""The Java client, kafka-clients 4.3.0 (compat-tests/java/, compiled by scripts/test): producer
and consumer scenarios, and stand-ins for the CLI tools with the tools' own flags, each checked
by reading its effect back."""

import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BASE_TS

CLASSPATH = os.environ.get("TIDELOG_JAVA_CLASSPATH")
pytestmark = pytest.mark.skipif(not CLASSPATH or shutil.which("java") is None,
                                reason="the Java scenarios were not compiled (scripts/test does it)")
CLIENT = "Java kafka-clients 4.3"


def java(main, *args, input=None, check=True, timeout=120):
    result = subprocess.run(["java", f"-Dtidelog.base.ts={BASE_TS}", "-cp", CLASSPATH, main, *args], input=input,
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{main} {args}:\n{result.stdout}\n{result.stderr}"
    return result


def tool(main, broker, *args, **kwargs):
    return java(main, "--bootstrap-server", broker.bootstrap, *args, **kwargs).stdout.splitlines()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_producer_codecs_and_consumer(broker, topic_name, codec, request):
    request.node.add_marker(pytest.mark.matrix(CLIENT, f"produce and consume: compression {codec}"))
    request.node.add_marker(pytest.mark.matrix(CLIENT, "produce and consume: keys, values, headers, offsets"))
    request.node.add_marker(pytest.mark.matrix(CLIENT, "ApiVersions exchange: never throttled, no reconnect storm"))
    out = java("ClientScenarios", "produce-consume", broker.bootstrap, topic_name, codec, "all", "false").stdout
    assert f"OK produce-consume {codec}" in out


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_producer_acks(broker, topic_name, acks, request):
    request.node.add_marker(pytest.mark.matrix(CLIENT, f"produce acks={acks}"))
    out = java("ClientScenarios", "produce-consume", broker.bootstrap, topic_name, "lz4", acks, "false").stdout
    assert "OK produce-consume" in out


@pytest.mark.matrix(CLIENT, "idempotent producing")
def test_idempotent_producer_the_java_default(broker, topic_name):
    java("ClientScenarios", "produce-consume", broker.bootstrap, topic_name, "none", "all", "true")


@pytest.mark.matrix(CLIENT, "consume with assign and seek")
@pytest.mark.matrix(CLIENT, "consumer pause/resume and read_committed")
@pytest.mark.matrix(CLIENT, "timestamps and ListOffsets by time")
def test_consumer_operations(broker, topic_name):
    assert "OK consumer-ops" in java("ClientScenarios", "consumer-ops", broker.bootstrap, topic_name).stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_group_consumer_commit_and_resume(broker, topic_name, protocol, request):
    request.node.add_marker(pytest.mark.matrix(CLIENT, f"consumer groups (group.protocol={protocol}): commit and resume"))
    java("ClientScenarios", "group", broker.bootstrap, topic_name, protocol, timeout=90)


@pytest.mark.xfail(reason="transactions are not implemented yet (InitProducerId with a transactional id)", strict=False)
@pytest.mark.matrix(CLIENT, "transactions")
def test_transactions(broker, topic_name):
    java("ClientScenarios", "transactions", broker.bootstrap, topic_name, timeout=90)


@pytest.mark.matrix(CLIENT, "create, list, describe and delete topics (kafka-topics)")
@pytest.mark.matrix(CLIENT, "add partitions (kafka-topics --alter)")
@pytest.mark.matrix(CLIENT, "metadata")
def test_kafka_topics(broker, topic_name):
    assert tool("KafkaTopics", broker, "--create", "--topic", topic_name, "--partitions", "3",
                "--replication-factor", "1", "--config", "retention.ms=60000") == [f"Created topic {topic_name}."]
    assert topic_name in tool("KafkaTopics", broker, "--list")
    described = tool("KafkaTopics", broker, "--describe", "--topic", topic_name)
    head = described[0].split("\t")
    assert head[0] == f"Topic: {topic_name}" and head[2:] == [
        "PartitionCount: 3", "ReplicationFactor: 1", "Configs: retention.ms=60000"]
    assert described[1:] == [f"\tTopic: {topic_name}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(3)]
    tool("KafkaTopics", broker, "--alter", "--topic", topic_name, "--partitions", "5")
    assert "PartitionCount: 5" in tool("KafkaTopics", broker, "--describe", "--topic", topic_name)[0]
    failed = java("KafkaTopics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic_name, check=False)
    assert failed.returncode != 0 and "TopicExistsException" in failed.stderr
    tool("KafkaTopics", broker, "--delete", "--topic", topic_name)
    assert topic_name not in tool("KafkaTopics", broker, "--list")


@pytest.mark.matrix(CLIENT, "describe and alter topic configs (kafka-configs)")
def test_kafka_configs_topic(broker, topic_name):
    tool("KafkaTopics", broker, "--create", "--topic", topic_name)
    tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name, "--alter",
         "--add-config", "retention.ms=120000,cleanup.policy=compact")
    described = tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name, "--describe")
    assert described == [f"Dynamic configs for topic {topic_name} are:",
                         "  cleanup.policy=compact sensitive=false source=DYNAMIC_TOPIC_CONFIG",
                         "  retention.ms=120000 sensitive=false source=DYNAMIC_TOPIC_CONFIG"]
    tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name, "--alter",
         "--delete-config", "cleanup.policy")
    everything = tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name,
                      "--describe", "--all")
    assert "  cleanup.policy=delete sensitive=false source=DEFAULT_CONFIG" in everything
    assert "  retention.ms=120000 sensitive=false source=DYNAMIC_TOPIC_CONFIG" in everything


@pytest.mark.matrix(CLIENT, "describe broker configs (kafka-configs --entity-type brokers)")
def test_kafka_configs_broker_describe(broker):
    described = tool("KafkaConfigs", broker, "--entity-type", "brokers", "--entity-name", "1", "--describe")
    assert "  num.partitions=1 sensitive=false source=STATIC_BROKER_CONFIG" in described
    assert "  node.id=1 sensitive=false source=STATIC_BROKER_CONFIG" in described


@pytest.mark.matrix(CLIENT, "alter broker configs (kafka-configs --entity-type brokers --alter)")
def test_kafka_configs_broker_alter(broker, topic_name):
    tool("KafkaTopics", broker, "--create", "--topic", topic_name)
    tool("KafkaConfigs", broker, "--entity-type", "brokers", "--entity-name", "1", "--alter",
         "--add-config", "log.retention.ms=86400000,log.segment.bytes=1048576")
    described = tool("KafkaConfigs", broker, "--entity-type", "brokers", "--entity-name", "1", "--describe")
    assert "  log.retention.ms=86400000 sensitive=false source=DYNAMIC_BROKER_CONFIG" in described
    # Topics without their own value inherit the broker's; a topic override still wins.
    tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name, "--alter",
         "--add-config", "segment.bytes=2097152")
    topic = tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name, "--describe", "--all")
    assert "  retention.ms=86400000 sensitive=false source=DYNAMIC_BROKER_CONFIG" in topic
    assert "  segment.bytes=2097152 sensitive=false source=DYNAMIC_TOPIC_CONFIG" in topic
    tool("KafkaConfigs", broker, "--entity-type", "brokers", "--entity-name", "1", "--alter",
         "--delete-config", "log.retention.ms")
    topic = tool("KafkaConfigs", broker, "--entity-type", "topics", "--entity-name", topic_name, "--describe", "--all")
    assert "  retention.ms=604800000 sensitive=false source=DEFAULT_CONFIG" in topic
    # Static settings (flags, environment, file) cannot change at run time.
    refused = java("KafkaConfigs", "--bootstrap-server", broker.bootstrap, "--entity-type", "brokers",
                   "--entity-name", "1", "--alter", "--add-config", "num.partitions=3", check=False)
    assert refused.returncode != 0 and "Cannot update num.partitions dynamically" in refused.stderr
    # They survive a restart: they are in the metadata log.
    broker.restart()
    described = tool("KafkaConfigs", broker, "--entity-type", "brokers", "--entity-name", "1", "--describe")
    assert "  log.segment.bytes=1048576 sensitive=false source=DYNAMIC_BROKER_CONFIG" in described


@pytest.mark.matrix(CLIENT, "console producer and consumer (keys, headers, from beginning)")
def test_console_producer_and_consumer(broker, topic_name):
    lines = "".join(f"h:{i},app:tidelog\tkey{i}:value {i}\n" for i in range(5))
    tool("KafkaConsoleProducer", broker, "--topic", topic_name, "--property", "parse.key=true",
         "--property", "key.separator=:", "--property", "parse.headers=true",
         "--producer-property", "enable.idempotence=false", input=lines)
    out = tool("KafkaConsoleConsumer", broker, "--topic", topic_name, "--from-beginning", "--max-messages", "5",
               "--property", "print.key=true", "--property", "print.offset=true",
               "--property", "print.headers=true", "--property", "print.partition=true")
    assert out == [f"Partition:0\tOffset:{i}\th:{i},app:tidelog\tkey{i}\tvalue {i}" for i in range(5)]
    from_three = tool("KafkaConsoleConsumer", broker, "--topic", topic_name, "--partition", "0", "--offset", "3",
                      "--max-messages", "2")
    assert from_three == ["value 3", "value 4"]


@pytest.mark.matrix(CLIENT, "console producer with the Java defaults (idempotence on)")
def test_console_producer_defaults(broker, topic_name):
    tool("KafkaConsoleProducer", broker, "--topic", topic_name, input="plain\n")
    assert tool("KafkaConsoleConsumer", broker, "--topic", topic_name, "--from-beginning",
                "--max-messages", "1") == ["plain"]


@pytest.mark.matrix(CLIENT, "get offsets by time (kafka-get-offsets)")
def test_kafka_get_offsets(broker, topic_name):
    java("ClientScenarios", "consumer-ops", broker.bootstrap, topic_name)  # 30 records, timestamps BASE + i
    assert tool("KafkaGetOffsets", broker, "--topic", topic_name, "--time", "-1") == [f"{topic_name}:0:30"]
    assert tool("KafkaGetOffsets", broker, "--topic", topic_name, "--time", "-2") == [f"{topic_name}:0:0"]
    assert tool("KafkaGetOffsets", broker, "--topic", topic_name, "--time", "-3") == [f"{topic_name}:0:29"]
    assert tool("KafkaGetOffsets", broker, "--topic", topic_name, "--time", str(BASE_TS + 17)) == [f"{topic_name}:0:17"]


@pytest.mark.matrix(CLIENT, "DeleteRecords")
def test_kafka_delete_records(broker, topic_name, tmp_path):
    java("ClientScenarios", "consumer-ops", broker.bootstrap, topic_name)
    spec = tmp_path / "offsets.json"
    spec.write_text(json.dumps({"partitions": [{"topic": topic_name, "partition": 0, "offset": 7}]}))
    assert tool("KafkaDeleteRecords", broker, "--offset-json-file", str(spec)) == [
        f"partition: {topic_name}-0\tlow_watermark: 7"]
    assert tool("KafkaGetOffsets", broker, "--topic", topic_name, "--time", "-2") == [f"{topic_name}:0:7"]


@pytest.mark.timeout(180)
@pytest.mark.matrix(CLIENT, "consumer group admin: list, describe, delete, list and alter offsets (kafka-consumer-groups)")
def test_kafka_consumer_groups(broker, topic_name):
    java("ClientScenarios", "consumer-ops", broker.bootstrap, topic_name)  # 30 records
    group = "g-" + topic_name
    tool("KafkaConsoleConsumer", broker, "--topic", topic_name, "--group", group, "--from-beginning",
         "--max-messages", "10")
    assert group in tool("KafkaConsumerGroups", broker, "--list")
    described = tool("KafkaConsumerGroups", broker, "--describe", "--group", group)
    current, end, lag = described[1].split("\t")[3:]
    assert int(end) == 30 and int(current) + int(lag) == 30
    for flag, expected in (("--to-earliest", 0), ("--to-latest", 30)):
        tool("KafkaConsumerGroups", broker, "--reset-offsets", "--group", group, "--topic", topic_name, flag, "--execute")
        assert tool("KafkaConsumerGroups", broker, "--describe", "--group", group)[1].split("\t")[3] == str(expected)
    tool("KafkaConsumerGroups", broker, "--reset-offsets", "--group", group, "--topic", topic_name,
         "--to-offset", "12", "--execute")
    assert tool("KafkaConsumerGroups", broker, "--describe", "--group", group)[1].split("\t")[3] == "12"
    at = datetime.datetime.fromtimestamp((BASE_TS + 20) / 1000, datetime.timezone.utc)
    tool("KafkaConsumerGroups", broker, "--reset-offsets", "--group", group, "--topic", topic_name,
         "--to-datetime", at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "--execute")
    assert tool("KafkaConsumerGroups", broker, "--describe", "--group", group)[1].split("\t")[3] == "20"
    tool("KafkaConsumerGroups", broker, "--delete-offsets", "--group", group, "--topic", topic_name)
    assert tool("KafkaConsumerGroups", broker, "--describe", "--group", group) == [
        "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG"]
    tool("KafkaConsumerGroups", broker, "--delete", "--group", group)
    assert group not in tool("KafkaConsumerGroups", broker, "--list")
