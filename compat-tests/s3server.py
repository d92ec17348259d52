"""A real S3-compatible server on loopback for the tiering tests, and a TCP proxy that can be
switched off to make it unreachable.

`moto_s3` (session fixture): moto's server mode (`python -m moto.server`) in a process of its
own on a free loopback port; `MotoS3.new_bucket()` gives each test a bucket of its own.
Credentials are dummies: moto accepts any.

`TcpProxy`: forwards a loopback port to another address. `off()` closes the listening socket
(new connections are refused) and cuts every open connection, so a client with pooled
keep-alive connections loses them too; `on()` listens on the same port again.
"""

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import free_port, wait_until

ACCESS_KEY_ID = "tidelog-test"
SECRET_ACCESS_KEY = "tidelog-test-secret"
REGION = "us-east-1"


class MotoS3:
    def __init__(self, log_dir):
        self.port = free_port()
        self.log_path = Path(log_dir) / f"moto-{self.port}.log"
        self.process = None
        self._bucket_numbers = itertools.count()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=log, env=os.environ.copy())
        log.close()

        def accepting():
            if self.process.poll() is not None:
                raise AssertionError(f"moto server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        # moto imports every AWS service it mocks: a cold start takes a few seconds.
        wait_until(accepting, timeout=90, interval=0.1, what="the moto server to accept connections")
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def client(self, endpoint=None):
        """A boto3 S3 client, path-style, to this server (or to `endpoint`, e.g. a proxy)."""
        return boto3.client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"},
                          retries={"max_attempts": 2, "mode": "standard"},
                          connect_timeout=5, read_timeout=30))

    def new_bucket(self):
        name = f"tidelog-tier-{os.getpid()}-{next(self._bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_s3():
    with tempfile.TemporaryDirectory(prefix="tidelog-moto-") as log_dir:
        server = MotoS3(log_dir).start()
        try:
            yield server
        finally:
            server.stop()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target` (host, port) while on."""

    ACCEPT_POLL_S = 0.1

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._accepting = None  # (stop event, accept thread) while on
        self._sockets = set()  # both ends of every open connection

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def on(self):
        with self._lock:
            if self._accepting is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            listener.settimeout(self.ACCEPT_POLL_S)
            stop = threading.Event()
            thread = threading.Thread(target=self._accept, args=(listener, stop), daemon=True)
            self._accepting = (stop, thread)
            thread.start()
        return self

    def off(self):
        """Refuses new connections and cuts the open ones; returns once the port is closed."""
        with self._lock:
            accepting, self._accepting = self._accepting, None
            sockets, self._sockets = self._sockets, set()
        if accepting is not None:
            stop, thread = accepting
            stop.set()
            # The accept thread closes the listener itself: closing a socket that another
            # thread is using could let a new socket reuse its file descriptor.
            thread.join(timeout=5)
            assert not thread.is_alive(), "proxy accept thread did not stop"
        for sock in sockets:
            _shutdown(sock)

    close = off

    def _accept(self, listener, stop):
        try:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except socket.timeout:
                    continue
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    if stop.is_set():
                        client.close()
                        upstream.close()
                        continue
                    self._sockets.update((client, upstream))
                connection = _Connection(client, upstream, self._forget)
                for source, destination in ((client, upstream), (upstream, client)):
                    threading.Thread(target=connection.pump, args=(source, destination),
                                     daemon=True).start()
        finally:
            listener.close()

    def _forget(self, *sockets):
        with self._lock:
            self._sockets.difference_update(sockets)


class _Connection:
    """One proxied connection: two pumps; half-closes are passed on, and both sockets are
    closed when both directions have ended."""

    def __init__(self, client, upstream, forget):
        self.sockets = (client, upstream)
        self.forget = forget
        self.lock = threading.Lock()
        self.pumps_left = 2

    def pump(self, source, destination):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    destination.shutdown(socket.SHUT_WR)
                    break
                destination.sendall(data)
        except OSError:
            for sock in self.sockets:
                _shutdown(sock)
        with self.lock:
            self.pumps_left -= 1
            last = self.pumps_left == 0
        if last:
            self.forget(*self.sockets)
            for sock in self.sockets:
                sock.close()


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
