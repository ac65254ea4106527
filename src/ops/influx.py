"""InfluxDB 2.x's backup and restore HTTP API, as ``influx backup`` and ``influx restore`` use it.

* ``GET /api/v2/backup/metadata``: one multipart/mixed answer with three parts, taken under a
  read lock of both metadata stores so that they agree: ``kv`` (the BoltDB file: organizations,
  buckets, users, tokens, the shard catalogue), ``sql`` (the SQLite file: notebooks,
  annotations) and ``buckets`` (JSON: every bucket with its retention policy, shard groups and
  shard IDs). Needs the operator token.
* ``GET /api/v2/backup/shards/{id}``: a tar of the shard's TSM files, snapshotted at that moment
  (the in-memory cache is written out first), gzip-encoded when asked. Operator token.
* ``POST /api/v2/restore/kv``: replaces the whole KV store **and deletes every shard's data**,
  then creates the (empty) shards the restored catalogue names; answers the restored operator
  token. ``POST /api/v2/restore/sql`` replaces the SQLite store.
* ``POST /api/v2/restore/bucketMetadata``: creates a bucket (fails when the name exists) with the
  backed-up retention policy and shard groups under new shard IDs; answers the mapping.
* ``POST /api/v2/restore/shards/{id}``: writes a tar from a shard backup into an existing shard.

Bodies are sent gzip-compressed (``Content-Encoding: gzip``), as the files are stored.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from ops.errors import InfluxError, UsageError

CHUNK = 1 << 20
GZIP_BODY = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}

OPERATOR_HINT = (
    "backup and restore need InfluxDB's operator token (the one made at onboarding, valid for "
    "every organization; in the chart the admin Secret's admin-token): an all-access token of one "
    "organization is not enough"
)


def describe(exc: httpx.TransportError) -> str:
    cause: BaseException = exc
    for _ in range(10):
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    return f"{type(exc).__name__}: {cause or exc}"


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:200]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return json.dumps(body)[:200]


@dataclass(frozen=True)
class Metadata:
    kv: bytes
    sql: bytes | None
    buckets: list[dict[str, Any]]


def split_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """The parts of a multipart body by their Content-Disposition name."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/") or not match:
        raise InfluxError(f"backup metadata is not multipart (Content-Type {content_type!r})")
    delimiter = b"\r\n--" + match.group(1).encode()
    pieces = (b"\r\n" + body).split(delimiter)
    parts: dict[str, bytes] = {}
    closed = False
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            closed = True
            break
        head, sep, content = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise InfluxError("backup metadata: a part without headers")
        name = re.search(rb'name="([^"]*)"', head)
        if name is None:
            raise InfluxError("backup metadata: a part without a name")
        parts[name.group(1).decode()] = content
    if not closed:
        raise InfluxError("backup metadata ended before its closing boundary (cut off?)")
    return parts


class Influx:
    """A client of one InfluxDB with one (operator) token."""

    def __init__(self, url: str, token: str, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Influx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def use_token(self, token: str) -> None:
        self.token = token
        self.http.headers["Authorization"] = f"Token {token}"

    # ---- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {describe(exc)}") from exc
        self.check(response, f"{method} {path}")
        return response

    def check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        message = _message(response)
        if status in (401, 403):
            raise UsageError(f"InfluxDB refused the token ({status} on {what}: {message}); "
                             f"{OPERATOR_HINT}")  # fmt: skip
        if 400 <= status < 500:
            raise UsageError(f"InfluxDB answered {status} to {what}: {message}")
        raise InfluxError(f"InfluxDB answered {status} to {what}: {message}")

    def post_gzip(self, path: str, body: Iterator[bytes]) -> httpx.Response:
        """POST of a gzip-compressed body, as the backup stores it."""
        return self.request("POST", path, content=body, headers=GZIP_BODY)

    def first_id(self, path: str, params: dict[str, str], key: str) -> str | None:
        """The ID of the first item of list ``key`` that GET ``path`` answers; None when the
        list is empty or the answer is 404."""
        try:
            response = self.http.get(path, params=params)
        except httpx.TransportError as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {describe(exc)}") from exc
        if response.status_code == 404:
            return None
        self.check(response, f"GET {path}")
        items = response.json().get(key) or []
        return str(items[0]["id"]) if items else None

    # ---- what the commands need -----------------------------------------------------------

    def version(self, wait_seconds: float | None = None) -> str:
        """The server's version from /health; refuses what is not InfluxDB 2.1 or newer.

        Waits up to ``wait_seconds`` for InfluxDB to answer at all: a scheduled backup may start
        while InfluxDB restarts, and a new pod's first packets may meet a NetworkPolicy that the
        node has not opened to its address yet (seen in the e2e cluster: refused for a moment)."""
        if wait_seconds is None:
            wait_seconds = float(os.environ.get("OPS_WAIT_SECONDS", "60"))
        deadline = time.monotonic() + wait_seconds
        delay = 0.5
        while True:
            try:
                response = httpx.get(f"{self.url}/health", timeout=10.0)
                break
            except httpx.TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise InfluxError(
                        f"InfluxDB at {self.url} unreachable for {wait_seconds:g}s: {describe(exc)}"
                    ) from exc
                print(f"ops: InfluxDB at {self.url} not reachable yet ({describe(exc)}); "
                      f"retrying in {delay:g}s", file=sys.stderr, flush=True)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("name") != "influxdb":
            raise UsageError(f"{self.url}/health is not InfluxDB's ({response.status_code})")
        if response.status_code != 200:
            raise InfluxError(f"InfluxDB at {self.url} is not healthy: {body.get('message')}")
        version = str(body.get("version", ""))
        found = re.match(r"v?(\d+)\.(\d+)", version)
        if not found or (int(found.group(1)), int(found.group(2))) < (2, 1):
            raise UsageError(
                f"InfluxDB at {self.url} is {version or 'of unknown version'}: backup and restore "
                "of metadata need InfluxDB 2.1 or newer (2.x)"
            )
        if int(found.group(1)) != 2:
            raise UsageError(f"InfluxDB at {self.url} is {version}, not 2.x")
        return version

    def metadata(self) -> Metadata:
        response = self.request("GET", "/api/v2/backup/metadata")
        parts = split_multipart(response.content, response.headers.get("content-type", ""))
        if "kv" not in parts or "buckets" not in parts:
            raise InfluxError(f"backup metadata lacks parts: it has {sorted(parts)}")
        try:
            buckets = json.loads(parts["buckets"])
        except ValueError as exc:
            raise InfluxError(f"backup metadata: the bucket manifest is not JSON: {exc}") from exc
        if not isinstance(buckets, list):
            raise InfluxError("backup metadata: the bucket manifest is not a list")
        return Metadata(parts["kv"], parts.get("sql"), buckets)

    @contextmanager
    def shard(self, shard_id: int) -> Iterator[tuple[str, Iterator[bytes]] | None]:
        """The shard's snapshot as (Content-Encoding, raw chunks); None when it is gone (404:
        removed by retention or a deletion since the metadata was taken)."""
        headers = {"Accept-Encoding": "gzip", "Gzip-Compression-Level": "speedy"}
        path = f"/api/v2/backup/shards/{shard_id}"
        try:
            with self.http.stream("GET", path, headers=headers) as response:
                if response.status_code == 404:
                    yield None
                    return
                if response.status_code >= 400:
                    response.read()
                    self.check(response, f"GET {path}")
                encoding = response.headers.get("content-encoding", "").lower()
                yield encoding, response.iter_raw(CHUNK)
        except httpx.TransportError as exc:
            raise InfluxError(f"InfluxDB at {self.url} failed on {path}: {describe(exc)}") from exc

    def restore_kv(self, body: Iterator[bytes]) -> str | None:
        """Replaces the KV store; the restored operator token (None if hashed)."""
        response = self.post_gzip("/api/v2/restore/kv", body)
        try:
            token = response.json().get("token")
        except (ValueError, AttributeError):
            token = None
        return str(token) if token else None

    def restore_sql(self, body: Iterator[bytes]) -> None:
        self.post_gzip("/api/v2/restore/sql", body)

    def restore_bucket(self, manifest: dict[str, Any]) -> tuple[str, dict[int, int]]:
        """Creates a bucket from a bucket manifest; its ID and old -> new shard IDs."""
        response = self.request("POST", "/api/v2/restore/bucketMetadata", json=manifest)
        body = response.json()
        mapping = {int(m["oldId"]): int(m["newId"]) for m in body.get("shardMappings") or []}
        return str(body["id"]), mapping

    def restore_shard(self, shard_id: int, body: Iterator[bytes]) -> None:
        self.post_gzip(f"/api/v2/restore/shards/{shard_id}", body)

    def org_id(self, name: str) -> str | None:
        return self.first_id("/api/v2/orgs", {"org": name}, "orgs")

    def bucket_id(self, org_id: str, name: str) -> str | None:
        return self.first_id("/api/v2/buckets", {"orgID": org_id, "name": name}, "buckets")

    def delete_bucket(self, bucket_id: str) -> None:
        self.request("DELETE", f"/api/v2/buckets/{bucket_id}")


def shard_ids(bucket: dict[str, Any]) -> list[int]:
    """Every shard of a bucket manifest (shard groups not deleted)."""
    found = []
    for policy in bucket.get("retentionPolicies") or []:
        for group in policy.get("shardGroups") or []:
            if group.get("deletedAt"):
                continue
            found += [int(s["id"]) for s in group.get("shards") or []]
    return found
