"""Shared fixtures for the real-client compatibility suites.

Each test gets a broker of its own: the real `tidelog` binary (TIDELOG_BIN) on a free
loopback port with a fresh data directory, stopped with SIGTERM (and checked to exit 0) at the
end. Tests tag themselves with `@pytest.mark.matrix(client, scenario)`; at the end of a full
run the outcomes become the compatibility matrix in compat-tests/README.md.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Record timestamps of the suites: a whole second one hour ago. Recent on purpose: records
# older than retention.ms (7 days by default) are deleted by time retention, as in Kafka.
BASE_TS = (int(time.time()) - 3600) * 1000
BIN = os.environ.get("TIDELOG_BIN", str(REPO / "target" / "debug" / "tidelog"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout=30.0, interval=0.05, what="condition"):
    """Polls `condition` until it returns a truthy value, or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Broker:
    def __init__(self, data_dir, args=()):
        self.port = free_port()
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.log_path = self.data_dir.parent / f"broker-{self.port}.log"
        self.process = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        address = self.bootstrap
        command = [BIN, "--listen", address, "--advertised", address,
                   "--data-dir", str(self.data_dir), *self.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDELOG_")}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        log.close()

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

    def stop(self):
        """SIGTERM; the broker must exit 0 within a few seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"broker did not stop within 15s after SIGTERM:\n{self.log()}")
        assert code == 0, f"broker exited with {code} after SIGTERM:\n{self.log()}"

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


@pytest.fixture
def broker_factory():
    brokers = []
    with tempfile.TemporaryDirectory(prefix="tidelog-compat-") as root:
        def make(*args, start=True):
            broker = Broker(Path(root) / f"data{len(brokers)}", args)
            brokers.append(broker)
            return broker.start() if start else broker

        yield make
        failures = []
        for broker in brokers:
            try:
                broker.stop()
            except AssertionError as error:
                failures.append(str(error))
            finally:
                broker.kill()
        if failures:
            pytest.fail("\n".join(failures))


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture
def topic_name(request):
    """A topic name unique to the test."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    return "t-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:200]


# ---- the compatibility matrix -------------------------------------------------------------

MATRIX_PATH = Path(__file__).resolve().parent / "README.md"

_NO_ADMIN = "kcat has no admin commands"
_GROUP_ADMIN = "consumer group admin: list, describe, delete, list and alter offsets (kafka-consumer-groups)"
# Cells a client cannot do at all, with why (checked against each client's API).
NOT_SUPPORTED = {
    ("kcat", "create, list, describe and delete topics (kafka-topics)"): _NO_ADMIN,
    ("kcat", "add partitions (kafka-topics --alter)"): _NO_ADMIN,
    ("kcat", "describe and alter topic configs (kafka-configs)"): _NO_ADMIN,
    ("kcat", "describe cluster"): _NO_ADMIN + " (-L lists the brokers: see metadata)",
    ("kcat", "DeleteRecords"): _NO_ADMIN,
    ("kcat", "DescribeLogDirs"): _NO_ADMIN,
    ("kcat", _GROUP_ADMIN): _NO_ADMIN,
    ("confluent-kafka", "DescribeLogDirs"): "confluent-kafka 2.16's AdminClient has no describe_log_dirs",
    ("confluent-kafka", "consumer group admin: delete committed offsets (OffsetDelete)"):
        "confluent-kafka 2.16's AdminClient has no delete_consumer_group_offsets",
    ("aiokafka", "DescribeLogDirs"): "aiokafka's admin client has no describe_log_dirs",
    ("kafkajs", "DescribeLogDirs"): "kafkajs has no DescribeLogDirs",
    ("kafkajs", "consume with assign and seek"): "kafkajs consumers have no assign(): they always join a group",
    ("kafkajs", "produce and consume: compression snappy"): "kafkajs ships only gzip; other codecs are third-party plugins",
    ("kafkajs", "produce and consume: compression lz4"): "kafkajs ships only gzip; other codecs are third-party plugins",
    ("kafkajs", "produce and consume: compression zstd"): "kafkajs ships only gzip; other codecs are third-party plugins",
}
_outcomes = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "matrix(client, scenario): a cell of the compatibility matrix")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    markers = list(item.iter_markers("matrix"))
    if not markers:
        return
    if not (report.when == "call" or (report.when == "setup" and report.outcome != "passed")):
        return
    if hasattr(report, "wasxfail"):
        reason = report.wasxfail.removeprefix("reason: ")
        state = ("passes (marked expected to fail: " + reason + ")" if report.outcome == "passed"
                 else "expected to fail: " + reason)
    elif report.outcome == "passed":
        state = "pass"
    elif report.outcome == "skipped":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        state = "not supported: " + reason.removeprefix("Skipped: ")
    else:
        state = "FAIL"
    for marker in markers:
        key = tuple(marker.args)
        previous = _outcomes.get(key)
        # A scenario covered by several tests shows its worst outcome.
        if previous is None or previous == "pass" or state == "FAIL":
            _outcomes[key] = state


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("TIDELOG_WRITE_MATRIX") != "1" or not _outcomes:
        return
    clients = sorted({c for c, _ in _outcomes})
    scenarios = sorted({s for _, s in _outcomes})
    lines = [
        "# Compatibility matrix",
        "",
        "Generated by the compatibility suites (`scripts/test`); do not edit by hand.",
        "Each cell is the outcome of the tests tagged with that client and scenario in the last run:",
        "`pass`, `FAIL`, `expected to fail: <reason>` (a feature of another open issue), or",
        "`not supported: <reason>` (the client cannot do it). `-` means no test covers it.",
        "",
        "| scenario | " + " | ".join(clients) + " |",
        "|---|" + "---|" * len(clients),
    ]
    for scenario in scenarios:
        cells = [_outcomes.get((client, scenario))
                 or ("not supported: " + NOT_SUPPORTED[(client, scenario)] if (client, scenario) in NOT_SUPPORTED
                     else "-")
                 for client in clients]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Client versions: see `compat-tests/requirements.txt`, `compat-tests/kafkajs/package.json`",
        "and `scripts/test` (kcat is Debian's, on librdkafka 2.0.2).",
        "",
        "Also run by `scripts/test`, outside this table: the Rust client rskafka 0.6",
        "(`tests/rskafka_client.rs`: topic creation, produce with every codec, fetch, ListOffsets),",
        "and the broker's own protocol-level tests in `tests/`.",
        "The Go column is Debian's sarama 1.22.1 (2019), set to protocol 2.1, the newest it knows.",
        "",
    ]
    MATRIX_PATH.write_text("\n".join(lines))
