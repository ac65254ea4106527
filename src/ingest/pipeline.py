"""One SOURCE through ``dialect → parse → timeconv → lineproto → sink``, chunk by chunk.

Every data row is counted exactly once: as a point handed to the sink, or as a reject (file,
line, reason). Rows near a DST change wait for the next chunk when a chunk ends among them.

With a ``Shard`` (``--shard K/N``) a wide file's value columns are split between N processes:
each one reads, checks and converts every row as a whole load would (so rows are accepted,
rejected, held back at a DST change and their interval inferred identically in every shard),
and encodes, compares and rolls up only its own columns. A rejected row is therefore rejected by
every shard; shard 0 lists it (errors file, stderr), the others count it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
from numpy.typing import NDArray

from ingest.dialect import Dialect, DialectError, sniff
from ingest.existing import SeriesKey
from ingest.lineproto import encode, line_prefix
from ingest.parse import ParsedChunk, Reject, parse_chunk, split_long
from ingest.rollup import Collector
from ingest.sources import Source
from ingest.timeconv import TimeConverter

BOM = b"\xef\xbb\xbf"
# the --errors-file header: file, line number, why it was rejected, the row's text (cut at 200)
ERRORS_COLUMNS = ("source", "line", "reason", "text")


class Sink(Protocol):
    def submit(self, body: bytes, lines: int) -> None: ...


class Checker(Protocol):
    """Compares a chunk's points with the stored ones before they are written
    (``existing.Existing``)."""

    def compare(
        self,
        source: str,
        key: SeriesKey,
        utc: NDArray[np.int64],
        text: NDArray[np.uint8],
        value_start: NDArray[np.int64],
        value_len: NDArray[np.int64],
        line: NDArray[np.int64],
    ) -> Future[None]: ...


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count`` loading one file together: it owns the value columns
    ``j`` (0-based, the time column not counted) with ``j % count == index``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 0 <= K < N; ValueError with what is wrong."""
        k, sep, n = text.strip().partition("/")
        if not sep or not k.strip().isdigit() or not n.strip().isdigit():
            hint = (
                " ($(JOB_INDEX) is replaced by the pod's index only inside an Indexed Job: "
                "python -m ingest submit --shards N)"
                if "JOB_INDEX" in text or "$" in text
                else ""
            )
            raise ValueError(f"--shard wants K/N (e.g. 0/4), got {text!r}{hint}")
        shard = cls(int(k), int(n))
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError(
                f"--shard {text}: want 0 <= K < N (N processes numbered 0 to N-1), got "
                f"K={shard.index}, N={shard.count}"
            )
        return shard

    @property
    def text(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def lists_rejects(self) -> bool:
        """Every shard rejects the same rows; shard 0 lists them."""
        return self.index == 0

    def owns(self, column: int) -> bool:
        return column % self.count == self.index


@dataclass(frozen=True)
class Options:
    series: str | None = None
    fmt: str = "auto"
    tz: str = "Europe/Zurich"
    label: str = "instant"
    step: int | None = None
    batch_size: int = 5000
    tags: dict[str, str] = field(default_factory=dict)
    max_errors: int = 0
    shard: Shard | None = None


@dataclass
class SeriesStats:
    name: str
    unit: str | None
    key: SeriesKey
    points: int = 0
    first: int | None = None
    last: int | None = None

    def add(self, seconds: NDArray[np.int64]) -> None:
        if not len(seconds):
            return
        self.points += len(seconds)
        lo, hi = int(seconds.min()), int(seconds.max())
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)


class RejectLog:
    """Counts rejects across sources; writes each to the errors file, keeps a few to print.
    ``listed`` False (a shard other than 0): counts only; the errors file keeps its header."""

    def __init__(self, out: IO[str] | None, keep: int = 20, *, listed: bool = True) -> None:
        self.count = 0
        self.kept: list[tuple[str, Reject]] = []
        self.listed = listed
        self._keep = keep
        self._csv = csv.writer(out) if out is not None else None
        if self._csv is not None:
            self._csv.writerow(ERRORS_COLUMNS)

    def add(self, source: str, reject: Reject) -> None:
        self.count += 1
        if not self.listed:
            return
        if len(self.kept) < self._keep:
            self.kept.append((source, reject))
        if self._csv is not None:
            self._csv.writerow([source, reject.line, reject.reason, reject.text])


@dataclass
class SourceResult:
    source: str
    dialect: Dialect | None = None
    rows_read: int = 0
    rows_rejected: int = 0
    series: list[SeriesStats] = field(default_factory=list)
    stopped: bool = False  # writing stopped because rejects passed --max-errors
    columns: int = 0  # value columns of the file (a shard loads some of them)


def _infer_step(seconds: NDArray[np.int64]) -> int:
    diffs = np.diff(seconds[:20000])
    diffs = diffs[diffs > 0]
    if len(diffs) >= 3:
        values, counts = np.unique(diffs, return_counts=True)
        best = int(counts.argmax())
        if counts[best] >= 0.9 * len(diffs):
            return int(values[best])
    raise DialectError("cannot infer the interval from the first rows: pass --step (e.g. 15m)")


def _decode_head(block: bytes) -> str:
    head = block[: 1 << 16]
    cut = head.rfind(b"\n")
    head = head[: cut + 1] if cut >= 0 and len(block) > len(head) else head
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return head.decode("latin-1")


def _tags(unit: str | None, extra: dict[str, str]) -> dict[str, str]:
    return {**({"unit": unit} if unit else {}), **extra}


@dataclass
class _Stream:
    """One converter's worth of rows: a whole swissgrid/wide file, or one series of a long one.
    ``columns``: the parsed value column of each key (a shard's own columns of a wide file)."""

    stats: list[SeriesStats]
    keys: list[SeriesKey]
    columns: list[int]
    converter: TimeConverter | None = None
    prefixes: list[bytes] = field(default_factory=list)
    pending_stats: list[tuple[int, NDArray[np.int64]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefixes = [line_prefix(k.measurement, dict(k.tags)) for k in self.keys]


def _converter(parsed: ParsedChunk, opts: Options, source: str) -> TimeConverter:
    step = opts.step
    if step is None and opts.label == "end":
        try:
            step = _infer_step(parsed.seconds)
        except DialectError as exc:
            raise DialectError(f"{source}: {exc}") from exc
    return TimeConverter(opts.tz, opts.label, step)


def _line_offset(buf: bytes, n: int) -> int:
    """Byte offset of the n-th (0-based) line of ``buf``."""
    if n == 0:
        return 0
    newlines = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
    return int(newlines[n - 1]) + 1


def _before(parsed: ParsedChunk, line: int) -> ParsedChunk:
    """The rows and rejects of ``parsed`` on lines before ``line``."""
    out = parsed.take(parsed.line < line)
    out.rejects = [r for r in parsed.rejects if r.line < line]
    return out


def run_source(
    source: Source,
    opts: Options,
    sink: Sink,
    rejects: RejectLog,
    on_rows: Callable[[int], None] = lambda _n: None,
    existing: Checker | None = None,
    windows: Collector | None = None,
) -> SourceResult:
    """Ingest one source into ``sink``. Writing stops (scanning goes on, so every
    bad row is reported) once the rejects across all sources pass ``opts.max_errors``.
    ``existing`` compares each chunk's points with the stored ones just before the chunk is
    handed to ``sink`` (so exactly the points written are compared, after the DST hold-back);
    ``windows`` collects the finest rollup windows of the points written."""
    result = SourceResult(source.name)
    chunks = iter(source.chunks)
    # the dialect is read from the first 64 KiB, however small the blocks a stream delivers
    first = b""
    while len(first) < 1 << 16 and (block := next(chunks, None)) is not None:
        first += block
    if first.startswith(BOM):
        first = first[len(BOM) :]
    if not first.strip():
        raise DialectError(f"{source.name}: the file is empty")
    try:
        dialect = sniff(_decode_head(first), series=opts.series, fmt=opts.fmt)
    except DialectError as exc:
        raise DialectError(f"{source.name}: {exc}") from exc
    result.dialect = dialect
    skip = 0
    for _ in range(dialect.header_rows):
        skip = first.index(b"\n", skip) + 1
    long = dialect.format == "long"
    if long and opts.shard is not None:
        raise DialectError(
            f"{source.name}: --shard splits a wide file by its columns; this file is long "
            "(series, time, value): load it whole"
        )
    streams: dict[str, _Stream] = {}
    if not long:
        result.columns = len(dialect.columns)
        owned = [j for j in range(len(dialect.columns)) if opts.shard is None or opts.shard.owns(j)]
        cols = [dialect.columns[j] for j in owned]
        keys = [SeriesKey.of(c.series, _tags(c.unit, opts.tags)) for c in cols]
        streams[""] = _Stream(
            [SeriesStats(c.series, c.unit, k) for c, k in zip(cols, keys, strict=True)],
            keys,
            owned,
        )
        result.series = streams[""].stats
    line_no = dialect.header_rows + 1
    carry = first[skip:]
    deferred: tuple[list[Future[None]], list[tuple[bytes, int]]] = ([], [])
    pending = next(chunks, None)
    while True:
        final = pending is None
        buf, carry = carry, b""
        if not buf and final:
            break
        if long:
            groups, split_rejects = split_long(buf, dialect.separator, line_no)
            parts = [(g.series, parse_chunk(g.chunk, dialect, line_no, g.lines)) for g in groups]
        else:
            split_rejects = []
            parts = [("", parse_chunk(buf, dialect, line_no))]
        # a DST zone at the end of the chunk waits for the next one, in every series alike
        cut_line: int | None = None
        for name, parsed in parts:
            stream = streams.get(name)
            if stream is None:
                key = SeriesKey.of(name, _tags(None, opts.tags))
                stream = streams[name] = _Stream([SeriesStats(name, None, key)], [key], [0])
                result.series.extend(stream.stats)
            if stream.converter is None:
                stream.converter = _converter(parsed, opts, source.name)
            if not final and not dialect.layout.absolute:
                ready = stream.converter.safe_rows(parsed.seconds)
                if ready < len(parsed):
                    held = int(parsed.line[ready])
                    cut_line = held if cut_line is None else min(cut_line, held)
        next_line = line_no + buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
        if cut_line is not None:
            if cut_line == line_no:
                # the whole buffer waits: read more before deciding
                carry = buf + (pending or b"")
                pending = next(chunks, None)
                continue
            offset = _line_offset(buf, cut_line - line_no)
            carry, next_line = buf[offset:], cut_line
            parts = [(name, _before(parsed, cut_line)) for name, parsed in parts]
            split_rejects = [r for r in split_rejects if r.line < cut_line]
        bad = list(split_rejects)
        rows = len(split_rejects)
        batches: list[tuple[bytes, int]] = []
        checks: list[tuple[SeriesKey, NDArray[np.int64], ParsedChunk, NDArray[np.int64], int]] = []
        for name, parsed in parts:
            stream = streams[name]
            assert stream.converter is not None
            conv = stream.converter.convert(parsed.seconds, parsed.line, dialect.layout.absolute)
            bad += parsed.rejects
            keep = np.ones(len(parsed), dtype=np.bool_)
            for i, reason in conv.rejects.items():
                keep[i] = False
                bad.append(Reject(int(parsed.line[i]), reason, ""))
            rows += len(parsed) + len(parsed.rejects)
            good = np.flatnonzero(keep)
            utc = conv.utc[good]
            for j, (prefix, col) in enumerate(zip(stream.prefixes, stream.columns, strict=True)):
                lines = encode(
                    prefix,
                    parsed.text,
                    parsed.value_start[good, col],
                    parsed.value_len[good, col],
                    utc,
                )
                batches += lines.batches(opts.batch_size)
                stream.pending_stats.append((j, utc))
                checks.append((stream.keys[j], utc, parsed, good, col))
        for r in sorted(bad, key=lambda r: r.line):
            rejects.add(source.name, r)
        result.rows_read += rows
        result.rows_rejected += len(bad)
        if rejects.count > opts.max_errors:
            result.stopped = True
        for stream in streams.values():
            if not result.stopped:
                for j, utc in stream.pending_stats:
                    stream.stats[j].add(utc)
            stream.pending_stats.clear()
        if not result.stopped:
            compared = (
                [
                    existing.compare(
                        source.name,
                        key,
                        utc,
                        parsed.text,
                        parsed.value_start[good, col],
                        parsed.value_len[good, col],
                        parsed.line[good],
                    )
                    for key, utc, parsed, good, col in checks
                ]
                if existing is not None
                else []
            )
            if windows is not None:
                for key, utc, parsed, good, col in checks:
                    windows.add(
                        key.measurement,
                        key.tags,
                        utc,
                        parsed.text,
                        parsed.value_start[good, col],
                        parsed.value_len[good, col],
                    )
            # this chunk is written once it has been compared: after the next chunk is parsed
            _submit(sink, deferred)
            deferred = (compared, batches)
        on_rows(rows)
        line_no = next_line
        if final and not carry:
            break
        if pending is not None:
            carry += pending
            pending = next(chunks, None)
    _submit(sink, deferred)
    return result


def _submit(sink: Sink, chunk: tuple[list[Future[None]], list[tuple[bytes, int]]]) -> None:
    """Write a chunk's batches once its comparison with the stored points is done."""
    compared, batches = chunk
    for fut in compared:
        fut.result()
    for body, count in batches:
        sink.submit(body, count)
