"""Go: Debian's sarama 1.22.1 (2019), built in GOPATH mode by scripts/test, configured for the
newest protocol it knows (2.1). Produce (gzip, acks=all), consume, offsets and topic admin."""

import json
import os
import subprocess
from pathlib import Path

import pytest

BINARY = Path(os.environ.get("TIDELOG_SARAMA_BIN", "/nonexistent"))
pytestmark = pytest.mark.skipif(not BINARY.exists(), reason="the sarama scenarios binary was not built")


def run(scenario, broker, topic, codec="gzip"):
    result = subprocess.run([str(BINARY), scenario, broker.bootstrap, topic],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "CODEC": codec})
    return result


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.matrix("sarama (Go)", "produce acks=all")
@pytest.mark.matrix("sarama (Go)", "produce and consume: keys, values, headers, offsets")
@pytest.mark.matrix("sarama (Go)", "old protocol versions (client from 2019, protocol 2.1)")
def test_produce_and_consume(broker, topic_name, codec, request):
    request.node.add_marker(pytest.mark.matrix("sarama (Go)", f"produce and consume: compression {codec}"))
    result = run("produce-consume", broker, topic_name, codec)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["offsets"] == list(range(20))
    assert seen["records"] == [[str(i), f"k{i}", f"v{i}", f"n={i}"] for i in range(20)]
    assert (seen["oldest"], seen["newest"]) == (0, 20)


@pytest.mark.matrix("sarama (Go)", "metadata")
@pytest.mark.matrix("sarama (Go)", "create, list, describe and delete topics (kafka-topics)")
@pytest.mark.matrix("sarama (Go)", "add partitions (kafka-topics --alter)")
def test_topic_administration(broker, topic_name):
    result = run("admin", broker, topic_name)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"partitions": 3, "exists_error": True, "grown": 4, "deleted": True}


@pytest.mark.matrix("sarama (Go)", "describe and alter topic configs (kafka-configs)")
def test_describe_config(broker, topic_name):
    result = run("describe-config", broker, topic_name)
    if result.returncode != 0 and "describe config" in result.stderr:
        # The broker closes the connection, as Kafka 4 does for a removed version.
        assert "unsupported version 0 of DescribeConfigs" in broker.log()
        pytest.skip("sarama 1.22 sends DescribeConfigs v0, which Kafka 4 removed (KIP-896)")
    assert result.returncode == 0, result.stderr
