"""The tokens Job's wait for InfluxDB (ops.tokens_job, `Influx.wait_ready`)
against real HTTP servers on loopback, no mocks.

On a fresh cluster the Job can start before its connection reaches InfluxDB: a ClusterIP that
kube-proxy has not programmed yet was answered by a machine-level proxy with HTTP 404, and a
client that keeps its keep-alive connection keeps asking that proxy forever. Here a tiny server
plays that proxy: it answers the first connections itself (404, or 503 like a gateway without
upstream) and then forwards every request of later connections to the real influxd.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from ops import tokens_job as tokens
from tests.conftest import InfluxServer

Answer = tuple[int, str, bytes]  # status, content type, body


class Connections:
    """Counts the TCP connections a server accepted (each handler instance is one)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.count += 1
            return self.count


@contextmanager
def serve(answer: Callable[[int, http.server.BaseHTTPRequestHandler], Answer]) -> Iterator[str]:
    """An HTTP/1.1 keep-alive server on a free loopback port; ``answer(connection_number,
    request)`` makes each response. Yields the base URL."""
    connections = Connections()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Go's and nginx's servers do

        def setup(self) -> None:
            super().setup()
            self.connection_number = connections.next()

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length) if length else b""
            status, content_type, body = answer(self.connection_number, self)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = handle_one

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def forward(influx: InfluxServer, request: http.server.BaseHTTPRequestHandler) -> Answer:
    """Pass one request on to the real influxd, as a proxy with a working upstream does."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization",)}
    if request.headers.get("Content-Type"):
        headers["Content-Type"] = request.headers["Content-Type"]
    upstream = httpx.request(
        request.command,
        influx.url + request.path,
        headers=headers,
        content=getattr(request, "body", b""),
        timeout=10,
    )
    return upstream.status_code, upstream.headers.get("content-type", ""), upstream.content


NOT_FOUND: Answer = (404, "text/plain; charset=utf-8", b"404 page not found\n")
NO_UPSTREAM: Answer = (503, "text/html", b"<html><body>503 Service Unavailable</body></html>")


@pytest.mark.parametrize("first_answer", [NOT_FOUND, NO_UPSTREAM], ids=["404", "503"])
def test_each_attempt_uses_a_new_connection(
    influx: InfluxServer, first_answer: Answer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first two connections get the proxy's answer, later ones reach InfluxDB: the wait
    ends, and the client then works through the same address."""

    def answer(connection: int, request: http.server.BaseHTTPRequestHandler) -> Answer:
        return first_answer if connection <= 2 else forward(influx, request)

    with serve(answer) as url:
        client = tokens.Influx(url, influx.token)
        try:
            client.wait_ready(time.monotonic() + 60, interval=0.2)
            org_id, bucket_id = client.org_and_bucket(influx.org, influx.bucket)
        finally:
            client.close()
    assert org_id
    assert bucket_id
    log = capsys.readouterr().err
    if first_answer is NOT_FOUND:
        assert "not InfluxDB" in log, log
    else:
        assert "not ready" in log, log


def test_a_wrong_endpoint_is_named_as_such_when_the_wait_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(lambda _, __: NOT_FOUND) as url:
        client = tokens.Influx(url, "unused")
        with pytest.raises(TimeoutError) as raised:
            client.wait_ready(time.monotonic() + 2, interval=0.2)
        client.close()
    message = str(raised.value)
    assert f"{url}/health" in message
    assert "404" in message
    assert "not InfluxDB" in message
    assert "404 page not found" in message, "the body says who answered"
    assert "not InfluxDB" in capsys.readouterr().err


@pytest.mark.parametrize(
    "answer",
    [
        (200, "text/html", b"<html><body>Welcome to nginx!</body></html>"),
        (200, "application/json", b'{"status": "UP"}'),
    ],
    ids=["html", "other-json"],
)
def test_a_200_that_is_not_influxdb_is_a_wrong_endpoint(answer: Answer) -> None:
    with serve(lambda _, __: answer) as url:
        client = tokens.Influx(url, "unused")
        with pytest.raises(TimeoutError, match="not InfluxDB"):
            client.wait_ready(time.monotonic() + 1, interval=0.2)
        client.close()


def test_nothing_listening_is_not_ready_not_a_wrong_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        client = tokens.Influx(f"http://127.0.0.1:{port}", "unused")
        with pytest.raises(TimeoutError) as raised:
            client.wait_ready(time.monotonic() + 1, interval=0.2)
        client.close()
    message = str(raised.value)
    assert "not ready" in message
    assert "refused" in message.lower()
    assert "not InfluxDB" not in message


def test_influxdb_itself_is_recognised(influx: InfluxServer) -> None:
    client = tokens.Influx(influx.url, influx.token)
    try:
        client.wait_ready(time.monotonic() + 30, interval=0.2)
    finally:
        client.close()


def test_a_stored_token_is_kept_when_influxdb_cannot_say(influx: InfluxServer, bucket: str) -> None:
    """Checking a stored token uses it; a 503 then says nothing about the token. Replacing it
    anyway would revoke the token the running API pods hold: the run fails instead (exit 1, the
    Job retries) and the Secret keeps its token."""
    from tests.ops.test_tokens_job import MemorySecrets

    spec = tokens.parse_specs(
        '[{"secret": "api", "key": "token", "action": "read", "purpose": "api"}]'
    )[0]
    secrets = MemorySecrets()
    description = spec.description("gridts", bucket)
    direct = tokens.Influx(influx.url, influx.token)
    try:
        org_id, bucket_id = direct.org_and_bucket(influx.org, bucket)
        buckets = {bucket: bucket_id}
        tokens.ensure(direct, secrets, spec, org_id, buckets, description, "gridts", bucket)
    finally:
        direct.close()
    stored = dict(secrets.data)

    def answer(_: int, request: http.server.BaseHTTPRequestHandler) -> Answer:
        if request.headers.get("Authorization") != f"Token {influx.token}":
            return NO_UPSTREAM  # every use of the stored token meets an overloaded proxy
        return forward(influx, request)

    with serve(answer) as url:
        flaky = tokens.Influx(url, influx.token)
        try:
            with pytest.raises(httpx.HTTPStatusError):
                tokens.ensure(flaky, secrets, spec, org_id, buckets, description, "gridts", bucket)
        finally:
            flaky.close()
    assert secrets.data == stored
    assert secrets.writes == 1
