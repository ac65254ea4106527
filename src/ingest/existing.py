"""Points already stored where a load is about to write: counted, compared, optionally refused
(ADR 0012).

A point is its series key (measurement, tag set, field ``value``) and its instant; writing one that
exists replaces its value (ADR 0010). Before a chunk's batches are sent, ``Existing.compare``
asks InfluxDB what it holds **for that series key and the chunk's time range only**: Flux
``range |> filter`` on measurement, field and tag values, pushed down to the storage engine. Per
series key, the first and last stored instants are asked once (``first()``/``last()``, pushed down
too); a chunk outside them needs no query, so loading new data costs two round trips per series.
A chunk inside them is read back once, at the raw read rate (about 2 M points/s).

The comparison is exact, as stored: InfluxDB parses the line-protocol text to a float64 and Flux
prints it back as the shortest text that round-trips. Equal texts are therefore equal values;
the others are parsed on both sides (correctly rounded) and compared bit for bit (``-0`` differs
from ``0``).

"Same series key" is the whole tag set: the query keeps only the answer's table whose tag columns
are exactly this key's, so a series loaded earlier with an extra ``--tag`` (another key) holds no
existing point. Instants are the stored ones (after ``--label``, ``--step`` and the DST hold-back),
so what is compared is exactly what the chunk writes.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from ingest.writer import RETRYABLE, Target, _message, _retry_after, retry_delay

MODES = ("report", "refuse", "unchecked")
QUERY = (
    "from(bucket: p_bucket)\n"
    "  |> range(start: p_start, stop: p_stop)\n"
    '  |> filter(fn: (r) => r._measurement == p_measurement and r._field == "value"{tags})\n'
    "{select}"
    '  |> drop(columns: ["_start", "_stop", "_measurement", "_field"])\n'
)
SELECTS = {"points": "", "first": "  |> first()\n", "last": "  |> last()\n"}
EVER = (0, 9_000_000_000)  # 1970 (the ingest writes nothing earlier) to 2255
CSV_HEAD = ["", "result", "table", "_time", "_value"]


class CheckError(RuntimeError):
    """The database could not be asked (unreachable, or the token may not read the bucket)."""


class Overlap(RuntimeError):
    """Two sources of one run write the same series over the same time range."""


@dataclass(frozen=True)
class SeriesKey:
    """A series as stored: measurement and tags (sorted, empty values dropped, as in line
    protocol)."""

    measurement: str
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, measurement: str, tags: Mapping[str, str]) -> SeriesKey:
        return cls(measurement, tuple((k, tags[k]) for k in sorted(tags) if tags[k]))

    def __str__(self) -> str:
        return ",".join([self.measurement, *(f"{k}={v}" for k, v in self.tags)])


@dataclass(frozen=True)
class Change:
    """One stored point the load changes (or would change)."""

    series: SeriesKey
    source: str
    line: int
    time: int  # UTC seconds
    stored: float
    new: str  # the value text as written

    def describe(self) -> str:
        return (
            f"{self.series} at {iso(self.time)} ({self.source} line {self.line}): "
            f"stored {self.stored!r}, file {self.new}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "series": self.series.measurement,
            "tags": dict(self.series.tags),
            "time": iso(self.time),
            "source": self.source,
            "line": self.line,
            "stored": self.stored,
            "new": float(self.new),
        }


@dataclass
class Tally:
    existing: int = 0
    changed: int = 0


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flux_string(text: str) -> str:
    """A Flux string literal holding ``text`` exactly (no interpolation, no escape left open)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


def series_query(key: SeriesKey, select: str = "points") -> tuple[str, dict[str, str]]:
    """Flux text and string parameters for ``key``'s stored points in [p_start, p_stop), or
    only the first or last of them (``select``; pushed down to storage like the range read).

    Values are parameters; tag *keys* cannot be (Flux has no dynamic record access), so they are
    written as escaped string literals (``r["unit"]``)."""
    tags = "".join(f" and r[{flux_string(k)}] == p_tag{i}" for i, (k, _) in enumerate(key.tags))
    params = {"p_measurement": key.measurement}
    params.update({f"p_tag{i}": v for i, (_, v) in enumerate(key.tags)})
    return QUERY.format(tags=tags, select=SELECTS[select]), params


def _option(name: str, kind: str, value: str) -> dict[str, object]:
    return {
        "type": "OptionStatement",
        "assignment": {
            "type": "VariableAssignment",
            "id": {"type": "Identifier", "name": name},
            "init": {"type": kind, "value": value},
        },
    }


Texts = NDArray[np.bytes_]  # value texts, one per point


def parse_answer(
    body: bytes, key: SeriesKey, *, whole: bool = True
) -> tuple[NDArray[np.int64], Texts]:
    """Instants (UTC seconds) and value texts (as InfluxDB prints them: the shortest text that
    parses back to the stored float64) of the answer's rows whose series is exactly ``key``.

    The answer is CSV without annotations: one block per column set, each with its header
    (``,result,table,_time,_value,<tags>``), blocks separated by an empty line. A block whose tag
    columns are not exactly ``key``'s tags belongs to another series key and is skipped. Points
    stored at fractional seconds are skipped too (the ingest writes whole seconds only), or,
    with ``whole=False``, kept at the second they fall in."""
    want = sorted(k for k, _ in key.tags)
    times: list[NDArray[np.int64]] = []
    values: list[Texts] = []
    for block in body.split(b"\r\n\r\n"):
        block = block.strip(b"\r\n")
        if not block:
            continue
        head, _, rows = block.partition(b"\r\n")
        cols = next(csv.reader([head.decode("utf-8", "replace")]))  # tag keys may be quoted
        if cols[:5] != CSV_HEAD:  # an error block, or a layout not asked for
            raise CheckError(f"unexpected answer from InfluxDB: {block[:300]!r}")
        if sorted(cols[5:]) != want or not rows:
            continue  # another series key: other tags, or more of them
        t, v = _rows_quoted(rows, whole) if b'"' in rows else _rows(rows + b"\r\n", whole)
        times.append(t)
        values.append(v)
    if not times:
        return np.zeros(0, np.int64), np.zeros(0, "S1")
    t_all, v_all = np.concatenate(times), np.concatenate(values)
    order = np.argsort(t_all, kind="stable")
    return t_all[order], v_all[order]


def _rows(rows: bytes, whole: bool) -> tuple[NDArray[np.int64], Texts]:
    """``,_result,<table>,<time>,<value>[,<tags>]\\r\\n`` lines, vectorised. The first four fields
    never hold a comma or a quote; tag values after the value may (quoted), they are not read."""
    a = np.frombuffer(rows, dtype=np.uint8)
    ends = np.flatnonzero(a == 10) - 1  # the \r of each line
    starts = np.concatenate([[0], ends[:-1] + 2])
    commas = np.concatenate([np.flatnonzero(a == 44), [len(a), len(a), len(a), len(a)]])
    first = np.searchsorted(commas, starts)  # the comma each line starts with
    t0, t1 = commas[first + 2] + 1, commas[first + 3]
    v0, v1 = t1 + 1, np.minimum(commas[first + 4], ends)
    ok = ((t1 - t0 == 20) if whole else (t1 - t0 >= 20)) & (a[np.maximum(t1 - 1, 0)] == ord("Z"))
    t0, v0, v1 = t0[ok], v0[ok], v1[ok]
    if not len(t0):
        return np.zeros(0, np.int64), np.zeros(0, "S1")
    stamp = _gather(a, t0, np.full(len(t0), 19, np.int64), 19)
    seconds = stamp.view("S19").ravel().astype("datetime64[s]").astype(np.int64)
    return seconds, texts_of(a, v0, v1 - v0)


def _rows_quoted(rows: bytes, whole: bool) -> tuple[NDArray[np.int64], Texts]:
    """The same, row by row, when a tag value is quoted (it holds a comma, quote or newline)."""
    t: list[int] = []
    v: list[bytes] = []
    for row in csv.reader(io.StringIO(rows.decode("utf-8"), newline="")):
        if len(row) < 5 or not row[3].endswith("Z"):
            continue
        if len(row[3]) == 20 or (not whole and len(row[3]) > 20):
            t.append(int(np.datetime64(row[3][:19], "s").astype(np.int64)))
            v.append(row[4].encode("ascii"))
    return np.array(t, np.int64), np.array(v, dtype="S") if v else np.zeros(0, "S1")


def _gather(
    a: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64], width: int
) -> NDArray[np.uint8]:
    """Rows of ``width`` bytes from ``a`` at ``start``, zero past each ``length`` (a window view
    of ``a`` indexed by row: one contiguous copy per row, no index matrix)."""
    padded = np.concatenate([a, np.zeros(width, np.uint8)])
    out: NDArray[np.uint8] = sliding_window_view(padded, width)[start]
    out[np.arange(width) >= length[:, None]] = 0
    return out


def texts_of(a: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64]) -> Texts:
    """The spans of ``a`` as an array of byte strings."""
    if not len(start):
        return np.zeros(0, "S1")
    width = max(1, int(length.max()))
    out: Texts = _gather(a, start, length, width).view(f"S{width}").ravel()
    return out


def changed(stored: Texts, new: Texts) -> NDArray[np.int64]:
    """Positions where ``new`` stores a different float64 than ``stored`` holds, bit for bit.

    Equal texts are equal values (InfluxDB parses the line-protocol text; the stored value prints
    back as the shortest text that parses to it). Only the others (``50.010`` against ``50.01``)
    are parsed, both sides, correctly rounded, and compared as bits: ``-0`` differs from ``0``."""
    maybe: NDArray[np.int64] = np.flatnonzero(stored != new)
    if not len(maybe):
        return maybe
    old_bits = stored[maybe].astype(np.float64).view(np.int64)
    new_bits = new[maybe].astype(np.float64).view(np.int64)
    out: NDArray[np.int64] = maybe[old_bits != new_bits]
    return out


@dataclass
class Existing:
    """Counts, per series key, the points of a load that are stored already and how many of them
    change value. ``compare`` must run before the chunk it describes is written.

    ``strict`` (``--existing refuse``): a database that cannot be read is an error; otherwise the
    check is dropped with a warning (``unreadable`` says why) and the load goes on.
    ``drain``: called before querying a range this run has already written (two sources with
    the same series and overlapping times), so that the answer includes those writes; ``None``
    makes such an overlap an ``Overlap`` error (a refusing run writes nothing before it has
    compared everything, so it cannot compare one source with another)."""

    target: Target
    strict: bool = False
    drain: Callable[[], None] | None = None
    retries: int = 6
    timeout: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 10.0
    on_retry: Callable[[str, float, int], None] | None = None
    on_unreadable: Callable[[str], None] | None = None
    keep: int = 5
    tallies: dict[SeriesKey, Tally] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    unreadable: str | None = None
    queries: int = 0
    seconds: float = 0.0  # waiting for and reading answers
    retried: int = 0
    _covered: dict[SeriesKey, list[tuple[int, int, str]]] = field(default_factory=dict)
    _bounds: dict[SeriesKey, tuple[int, int] | None] = field(default_factory=dict)
    _client: httpx.Client | None = None
    _pool: ThreadPoolExecutor | None = None

    @property
    def existing(self) -> int:
        return sum(t.existing for t in self.tallies.values())

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.tallies.values())

    def tally(self, key: SeriesKey) -> Tally:
        return self.tallies.setdefault(key, Tally())

    def compare(
        self,
        source: str,
        key: SeriesKey,
        utc: NDArray[np.int64],
        text: NDArray[np.uint8],
        value_start: NDArray[np.int64],
        value_len: NDArray[np.int64],
        line: NDArray[np.int64],
    ) -> Future[None]:
        """Count the points among ``utc`` (strictly increasing) already stored under ``key``,
        and those whose stored value differs from the value text about to be written.

        The query runs in a background thread (one: the counts need no lock), so the caller can
        parse the next chunk meanwhile; it must wait for the returned future before it writes
        these points. Ranges of one series never overlap within a source (its instants increase
        strictly), so earlier chunks may be written while this one is compared."""
        tally = self.tally(key)
        if not len(utc) or self.unreadable is not None:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        lo, hi = int(utc[0]), int(utc[-1])
        if self._overlap(key, lo, hi, source):
            self._bounds.pop(key, None)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="existing-check")
        return self._pool.submit(
            self._compare, tally, source, key, utc, text, value_start, value_len, line
        )

    def _compare(
        self,
        tally: Tally,
        source: str,
        key: SeriesKey,
        utc: NDArray[np.int64],
        text: NDArray[np.uint8],
        value_start: NDArray[np.int64],
        value_len: NDArray[np.int64],
        line: NDArray[np.int64],
    ) -> None:
        lo, hi = int(utc[0]), int(utc[-1])
        began = time.perf_counter()
        try:
            if key not in self._bounds:
                self._bounds[key] = self._stored_bounds(key)
            bounds = self._bounds[key]
            if bounds is None or hi < bounds[0] or lo > bounds[1]:
                return  # nothing stored there (the common case: new data)
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
            stored_t, stored_v = self._stored(key, "points", lo, hi + 1)
        finally:
            self.seconds += time.perf_counter() - began
        if self.unreadable is not None or not len(stored_t):
            return
        # both sides strictly increasing: where each of ours would sit among the stored ones
        at = np.minimum(np.searchsorted(stored_t, utc), len(stored_t) - 1)
        mine = np.flatnonzero(stored_t[at] == utc)
        if not len(mine):
            return
        theirs = at[mine]
        tally.existing += len(mine)
        differ = changed(stored_v[theirs], texts_of(text, value_start[mine], value_len[mine]))
        tally.changed += len(differ)
        for i in differ[: max(0, self.keep - len(self.changes))]:
            row = mine[i]
            start, length = int(value_start[row]), int(value_len[row])
            self.changes.append(
                Change(
                    key,
                    source,
                    int(line[row]),
                    int(utc[row]),
                    float(stored_v[theirs[i]]),
                    bytes(text[start : start + length]).decode("ascii"),
                )
            )

    def _overlap(self, key: SeriesKey, lo: int, hi: int, source: str) -> bool:
        """Note that [lo, hi] of ``key`` is about to be written; True when part of it was written
        earlier in this run (then it is drained first, so the database answers for it)."""
        ranges = self._covered.setdefault(key, [])
        hit = next((r for r in ranges if lo <= r[1] and hi >= r[0]), None)
        if hit is not None:
            if self._pool is not None:  # the checks queued so far, then the writes
                self._pool.submit(lambda: None).result()
            if self.drain is None:
                raise Overlap(
                    f"{hit[2]} and {source} both hold {key} between {iso(max(lo, hit[0]))} and "
                    f"{iso(min(hi, hit[1]))}: a refusing run cannot compare one source with "
                    "another; load them in separate runs"
                )
            self.drain()
            ranges.clear()  # written and waited for: the database answers for them now
        if ranges and ranges[-1][2] == source and ranges[-1][1] < lo:
            ranges[-1] = (ranges[-1][0], hi, source)
        else:
            ranges.append((lo, hi, source))
        return hit is not None

    def _stored_bounds(self, key: SeriesKey) -> tuple[int, int] | None:
        """First and last stored instant of ``key`` before this run writes to it (two pushed-down
        queries, once per series): chunks outside them need no query at all."""
        first, _ = self._stored(key, "first", *EVER)
        if not len(first):
            return None
        last, _ = self._stored(key, "last", *EVER)
        return int(first.min()), int(last.max()) if len(last) else int(first.max())

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.target.url,
                timeout=self.timeout,
                headers={
                    "Authorization": f"Token {self.target.token}",
                    # InfluxDB runs next to the ingest: gzip would cost both more CPU than it saves
                    "Accept-Encoding": "identity",
                },
            )
        return self._client

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _stored(
        self, key: SeriesKey, select: str, start: int, stop: int
    ) -> tuple[NDArray[np.int64], Texts]:
        text, params = series_query(key, select)
        extern = [_option("p_bucket", "StringLiteral", self.target.bucket)]
        extern += [_option(k, "StringLiteral", v) for k, v in params.items()]
        extern += [
            _option("p_start", "DateTimeLiteral", iso(start)),
            _option("p_stop", "DateTimeLiteral", iso(stop)),
        ]
        body = {
            "query": text,
            "type": "flux",
            "extern": {"type": "File", "package": None, "imports": None, "body": extern},
            "dialect": {"header": True, "annotations": [], "delimiter": ","},
        }
        attempt = 0
        self.queries += 1
        while True:
            wait: float | None = None
            try:
                resp = self._http().post(
                    "/api/v2/query", params={"org": self.target.org}, json=body
                )
            except httpx.TransportError as exc:
                problem = f"cannot reach InfluxDB at {self.target.url}: {exc or type(exc).__name__}"
            else:
                if resp.status_code == 200:
                    return parse_answer(resp.content, key, whole=select == "points")
                problem = f"InfluxDB answered {resp.status_code}: {_message(resp)}"
                if resp.status_code in (401, 403, 404):
                    self._cannot_read(problem)
                    return np.zeros(0, np.int64), np.zeros(0, "S1")
                if resp.status_code not in RETRYABLE:
                    raise CheckError(f"reading the stored points failed: {problem}")
                wait = _retry_after(resp)
            if attempt >= self.retries:
                raise CheckError(f"{problem} (gave up after {attempt + 1} attempts)")
            delay = retry_delay(attempt, self.backoff, self.max_backoff, wait)
            if self.on_retry is not None:
                self.on_retry(problem, delay, attempt + 1)
            time.sleep(delay)
            attempt += 1
            self.retried += 1

    def _cannot_read(self, problem: str) -> None:
        why = (
            f"cannot read bucket {self.target.bucket!r} to compare with the stored points "
            f"({problem}); the token needs read access to it as well as write"
        )
        if self.strict:
            raise CheckError(why)
        self.unreadable = why
        if self.on_unreadable is not None:
            self.on_unreadable(why)


__all__ = [
    "MODES",
    "Change",
    "CheckError",
    "Existing",
    "Overlap",
    "SeriesKey",
    "Tally",
]
