"""A loopback proxy in front of the real influxd that misbehaves on purpose, request by request.

Each `Rule` matches requests (writes to one bucket, Flux queries of one kind, ...) and either
refuses them with a status and ``Retry-After`` (the first ``times`` of them, every ``every``-th,
or for as long as a throttle window lasts) or **holds** the first one (the ``nth``) until the test
releases it, so that a test can kill the client at a known point (the held request is then
dropped, never forwarded: it did not happen), or **pauses** it: held the same way, then
forwarded once released, so that a test can order the requests of concurrent clients.
Everything no rule refuses is forwarded unchanged.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_FROM = re.compile(r'from\(bucket: "((?:[^"\\]|\\.)*)"\)')
_EVERY = re.compile(r"aggregateWindow\(every: (\w+), fn: (\w+)")


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    params: dict[str, str]
    body: bytes

    @property
    def kind(self) -> str:
        """`write`, `query` or `other`."""
        if self.path == "/api/v2/write":
            return "write"
        if self.path == "/api/v2/query":
            return "query"
        return "other"

    @property
    def flux(self) -> str:
        if self.kind != "query":
            return ""
        try:
            return str(json.loads(self.body).get("query", ""))
        except ValueError:
            return ""

    @property
    def bucket(self) -> str | None:
        """The bucket a write goes to or a query reads (literal `from(bucket: "...")` or the
        `p_bucket` parameter)."""
        if self.kind == "write":
            return self.params.get("bucket")
        if self.kind == "query":
            m = _FROM.search(self.flux)
            if m:
                return m[1]
            try:
                params = json.loads(self.body).get("params") or {}
            except ValueError:
                return None
            value = params.get("p_bucket")
            return str(value) if value is not None else None
        return None

    @property
    def window(self) -> tuple[str, str] | None:
        """(every, fn) of a query's aggregateWindow, e.g. ("60s", "count")."""
        m = _EVERY.search(self.flux)
        return (m[1], m[2]) if m else None


@dataclass(eq=False)
class Rule:
    """What to do with the requests ``match`` picks.

    - ``hold``: the ``nth`` match (the first by default) waits until ``release`` is set, then is
      dropped (no answer); ``held`` is set while it waits.
    - ``pause``: as ``hold``, but the request is forwarded once released (a delay the test
      ends); ``forwarded`` is set once influxd answered it.
    - otherwise refused with ``status`` and ``Retry-After: retry_after``: every ``every``-th
      match, at most ``times`` of them (None: no limit); with ``window``, a refusal starts a
      throttle that refuses every match arriving within ``retry_after`` seconds of it, the way a
      rate limiter treats a client that retries too early.
    """

    match: Callable[[Request], bool]
    status: int = 429
    times: int | None = None
    every: int = 1
    retry_after: float = 0.2
    window: bool = False
    hold: bool = False
    pause: bool = False
    nth: int = 1
    matched: int = 0
    refused: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    forwarded: threading.Event = field(default_factory=threading.Event)
    _until: float = 0.0

    def decide(self, now: float) -> str:
        """`forward`, `refuse` or `hold` for one more matching request (under the proxy's lock)."""
        self.matched += 1
        if self.hold or self.pause:
            return "hold" if self.matched == self.nth else "forward"
        if self.window and now < self._until:
            self.refused += 1
            return "refuse"
        if self.matched % self.every or (self.times is not None and self.refused >= self.times):
            return "forward"
        self.refused += 1
        self._until = now + self.retry_after
        return "refuse"


class Proxy:
    def __init__(self, upstream: str, *rules: Rule) -> None:
        self.upstream = urlparse(upstream)
        self.rules = list(rules)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str | None, int]] = []  # kind, bucket, status answered
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        for rule in self.rules:
            rule.release.set()
        self._server.shutdown()
        self._server.server_close()

    def decide(self, request: Request) -> tuple[str, Rule | None]:
        with self.lock:
            now = time.monotonic()
            for rule in self.rules:
                if rule.match(request):
                    action = rule.decide(now)
                    if action != "forward":
                        return action, rule
            return "forward", None


@contextmanager
def running(upstream: str, *rules: Rule) -> Iterator[Proxy]:
    proxy = Proxy(upstream, *rules).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _record(self, request: Request, status: int) -> None:
            with proxy.lock:
                proxy.seen.append((request.kind, request.bucket, status))

        def _forward(self, request: Request) -> None:
            up = proxy.upstream
            conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            body = request.body if self.command != "GET" else None
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()
            self._record(request, resp.status)

        def _refuse(self, request: Request, rule: Rule) -> None:
            code = "too many requests" if rule.status == 429 else "unavailable"
            msg = json.dumps({"code": code, "message": "slow down"}).encode()
            self.send_response(rule.status)
            self.send_header("Retry-After", f"{rule.retry_after:g}")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            self._record(request, rule.status)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            body = self.rfile.read(length) if length else b""
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            request = Request(self.command, url.path, params, body)
            action, rule = proxy.decide(request)
            if action == "hold" and rule is not None:
                rule.held.set()
                rule.release.wait()
                if rule.pause:
                    self._forward(request)
                    rule.forwarded.set()
                    return
                self.close_connection = True  # dropped: the request never reached influxd
                return
            if action == "refuse" and rule is not None:
                self._refuse(request, rule)
                return
            self._forward(request)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    return Handler
