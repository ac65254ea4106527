"""Line-protocol batches to InfluxDB: gzip, several requests in flight, retries with backoff.

Worker threads compress and POST (zlib and sockets release the GIL, so this overlaps with
parsing). Retries cover 429, 5xx and connection errors with exponential backoff and full jitter,
honouring ``Retry-After``. Memory is bounded: ``submit`` blocks while ``2 * concurrency`` batches
are queued or in flight. Writes are idempotent (a point is its series and instant), so a retried
or re-run batch never doubles anything.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx

RETRYABLE = {429, 500, 502, 503, 504}


class WriteError(RuntimeError):
    """InfluxDB refused the data or stayed unreachable through every retry."""


@dataclass(frozen=True)
class Target:
    url: str
    org: str
    bucket: str
    token: str


def gzip_batch(body: bytes) -> bytes:
    # level 1: most of the size win for a fraction of the CPU of the default level
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    return c.compress(body) + c.flush()


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def retry_delay(
    attempt: int,
    backoff: float,
    max_backoff: float,
    retry_after: float | None,
    *,
    jitter: bool = True,
) -> float:
    """Seconds to wait before retry ``attempt`` + 1: exponential backoff (with full jitter, or
    its upper bound), and at least InfluxDB's ``Retry-After`` (capped at 60 s) when it named one:
    a rate limiter refuses a client that comes back earlier."""
    bound = min(max_backoff, backoff * 2**attempt)
    delay = random.uniform(0, bound) if jitter else bound  # noqa: S311
    return max(delay, min(retry_after, 60.0)) if retry_after is not None else delay


def _message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    except ValueError:
        pass
    return resp.text[:300]


class Writer:
    def __init__(
        self,
        target: Target,
        *,
        concurrency: int = 4,
        retries: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        timeout: float = 30.0,
        on_retry: Callable[[str, float, int], None] | None = None,
    ) -> None:
        """``on_retry(problem, delay_seconds, attempt)`` is called, from a writer thread, before
        each wait for a retry: an operator watching the logs sees why the ingest is slow."""
        self.target = target
        self._on_retry = on_retry
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="influx-write")
        self._slots = threading.BoundedSemaphore(2 * concurrency)
        self._local = threading.local()
        self._timeout = timeout
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []
        self._futures: list[Future[None]] = []
        self._error: WriteError | None = None
        self.points_written = 0
        self.retried = 0

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self.target.url,
                timeout=self._timeout,
                headers={
                    "Authorization": f"Token {self.target.token}",
                    "Content-Type": "text/plain; charset=utf-8",
                    "Content-Encoding": "gzip",
                },
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def submit(self, body: bytes, lines: int, *, compressed: bool = False) -> None:
        """Queue one batch (line protocol, or gzip of it when ``compressed``); raises the first
        write error as soon as one has happened."""
        if self._error:
            raise self._error
        self._slots.acquire()
        fut = self._pool.submit(self._send, body, lines, compressed)
        fut.add_done_callback(lambda _f: self._slots.release())
        self._futures = [f for f in self._futures if not f.done()] + [fut]

    def _send(self, body: bytes, lines: int, compressed: bool = False) -> None:
        if self._error:
            return
        payload = body if compressed else gzip_batch(body)
        params = {
            "org": self.target.org,
            "bucket": self.target.bucket,
            "precision": "s",
        }
        attempt = 0
        while True:
            wait: float | None = None
            try:
                resp = self._client().post("/api/v2/write", params=params, content=payload)
            except httpx.TransportError as exc:
                problem = f"cannot reach InfluxDB at {self.target.url}: {exc or type(exc).__name__}"
            else:
                if resp.status_code == 204:
                    with self._lock:
                        self.points_written += lines
                    return
                problem = f"InfluxDB answered {resp.status_code}: {_message(resp)}"
                if resp.status_code not in RETRYABLE:
                    self._fail(problem)
                    return
                wait = _retry_after(resp)
            if attempt >= self.retries or self._error:
                self._fail(f"{problem} (gave up after {attempt + 1} attempts)")
                return
            delay = retry_delay(attempt, self.backoff, self.max_backoff, wait)
            if self._on_retry is not None:
                self._on_retry(problem, delay, attempt + 1)
            time.sleep(delay)
            attempt += 1
            with self._lock:
                self.retried += 1

    def _fail(self, message: str) -> None:
        with self._lock:
            if self._error is None:
                self._error = WriteError(message)

    def drain(self) -> None:
        """Wait until every batch queued so far is stored; raise the first error, if any."""
        for fut in list(self._futures):
            fut.result()
        if self._error:
            raise self._error

    def close(self) -> None:
        """Wait for every queued batch; raise the first error, if any."""
        for fut in self._futures:
            fut.result()
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.close()
        if self._error:
            raise self._error
