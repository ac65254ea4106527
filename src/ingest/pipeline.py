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
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
from numpy.typing import NDArray

from ingest.dialect import Dialect, DialectError, sniff
from ingest.existing import SeriesKey
from ingest.lineproto import encode, line_prefix
from ingest.parse import ParsedChunk, Reject, parse_chunk, split_long
from ingest.pending import Pending
from ingest.rollup import Collector
from ingest.sources import Source
from ingest.timeconv import DEFAULT_ZONE, TimeConverter

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
                "python -m ops submit --shards N)"
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
    tz: str = DEFAULT_ZONE
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


# one buffer's rows by stream: the series name of a long file, "" for a wide file
Parts = list[tuple[str, ParsedChunk]]


def _open(name: str, chunks: Iterator[bytes], opts: Options) -> tuple[Dialect, bytes]:
    """The dialect, read from the first 64 KiB however small the blocks a stream delivers, and
    the bytes read after the header rows."""
    first = b""
    while len(first) < 1 << 16 and (block := next(chunks, None)) is not None:
        first += block
    if first.startswith(BOM):
        first = first[len(BOM) :]
    if not first.strip():
        raise DialectError(f"{name}: the file is empty")
    try:
        dialect = sniff(_decode_head(first), series=opts.series, fmt=opts.fmt)
    except DialectError as exc:
        raise DialectError(f"{name}: {exc}") from exc
    skip = 0
    for _ in range(dialect.header_rows):
        skip = first.index(b"\n", skip) + 1
    if dialect.format == "long" and opts.shard is not None:
        raise DialectError(
            f"{name}: --shard splits a wide file by its columns; this file is long "
            "(series, time, value): load it whole"
        )
    return dialect, first[skip:]


def _wide_stream(dialect: Dialect, opts: Options) -> _Stream:
    """The one stream of a swissgrid or wide file: the columns this process owns."""
    n = len(dialect.columns)
    owned = [j for j in range(n) if opts.shard is None or opts.shard.owns(j)]
    cols = [dialect.columns[j] for j in owned]
    keys = [SeriesKey.of(c.series, _tags(c.unit, opts.tags)) for c in cols]
    stats = [SeriesStats(c.series, c.unit, k) for c, k in zip(cols, keys, strict=True)]
    return _Stream(stats, keys, owned)


def _parse(buf: bytes, dialect: Dialect, line_no: int) -> tuple[Parts, list[Reject]]:
    """A buffer of whole lines parsed: per stream, and (long files) the rows without a series."""
    if dialect.format != "long":
        return [("", parse_chunk(buf, dialect, line_no))], []
    groups, split_rejects = split_long(buf, dialect.separator, line_no)
    return [
        (g.series, parse_chunk(g.chunk, dialect, line_no, g.lines)) for g in groups
    ], split_rejects


def _add_streams(
    streams: dict[str, _Stream], parts: Parts, opts: Options, source: str
) -> list[SeriesStats]:
    """Make the streams (and converters) ``parts`` needs; the stats of the new series."""
    new: list[SeriesStats] = []
    for name, parsed in parts:
        stream = streams.get(name)
        if stream is None:
            key = SeriesKey.of(name, _tags(None, opts.tags))
            stream = streams[name] = _Stream([SeriesStats(name, None, key)], [key], [0])
            new += stream.stats
        if stream.converter is None:
            stream.converter = _converter(parsed, opts, source)
    return new


def _hold_back(parts: Parts, streams: dict[str, _Stream]) -> int | None:
    """The first line that must wait for the next chunk, or None: rows near a DST change at the
    end of a chunk wait, in every series alike (pure: reads the converters, changes nothing)."""
    cut: int | None = None
    for name, parsed in parts:
        converter = streams[name].converter
        assert converter is not None
        ready = converter.safe_rows(parsed.seconds)
        if ready < len(parsed):
            held = int(parsed.line[ready])
            cut = held if cut is None else min(cut, held)
    return cut


def _cut(parts: Parts, split_rejects: list[Reject], line: int) -> tuple[Parts, list[Reject]]:
    """What of ``parts`` and ``split_rejects`` lies before ``line``."""
    return (
        [(name, _before(parsed, line)) for name, parsed in parts],
        [r for r in split_rejects if r.line < line],
    )


@dataclass(frozen=True)
class _Points:
    """One series' converted points of a chunk: the rows ``good`` of ``parsed``, column ``col``."""

    key: SeriesKey
    stats: SeriesStats
    utc: NDArray[np.int64]
    parsed: ParsedChunk
    good: NDArray[np.int64]
    col: int

    @property
    def value_start(self) -> NDArray[np.int64]:
        spans: NDArray[np.int64] = self.parsed.value_start[self.good, self.col]
        return spans

    @property
    def value_len(self) -> NDArray[np.int64]:
        spans: NDArray[np.int64] = self.parsed.value_len[self.good, self.col]
        return spans


@dataclass
class Conversion:
    """What a chunk gives: rows counted, rejects in line order, line-protocol batches to write
    and the points they hold (for the statistics, the comparison and the rollup)."""

    rows: int
    rejects: list[Reject]
    batches: list[tuple[bytes, int]]
    points: list[_Points]


def _convert(
    parts: Parts,
    split_rejects: list[Reject],
    streams: dict[str, _Stream],
    absolute: bool,
    batch_size: int,
) -> Conversion:
    """A chunk to line protocol and rejects; no I/O (the converters remember the last instant,
    to order the rows of a DST fold across chunks)."""
    bad = list(split_rejects)
    rows = len(split_rejects)
    batches: list[tuple[bytes, int]] = []
    points: list[_Points] = []
    for name, parsed in parts:
        stream = streams[name]
        assert stream.converter is not None
        conv = stream.converter.convert(parsed.seconds, parsed.line, absolute)
        bad += parsed.rejects
        keep = np.ones(len(parsed), dtype=np.bool_)
        for i, reason in conv.rejects.items():
            keep[i] = False
            bad.append(Reject(int(parsed.line[i]), reason, ""))
        rows += len(parsed) + len(parsed.rejects)
        good = np.flatnonzero(keep)
        utc = conv.utc[good]
        for j, (prefix, col) in enumerate(zip(stream.prefixes, stream.columns, strict=True)):
            p = _Points(stream.keys[j], stream.stats[j], utc, parsed, good, col)
            batches += encode(prefix, parsed.text, p.value_start, p.value_len, utc).batches(
                batch_size
            )
            points.append(p)
    return Conversion(rows, sorted(bad, key=lambda r: r.line), batches, points)


class _Delivery:
    """Hands converted chunks on: rejects to the log, points to the statistics, the comparison
    with the stored points, the rollup and the sink, until the rejects pass --max-errors. A
    chunk is written once it has been compared: after the next chunk is parsed."""

    def __init__(
        self,
        result: SourceResult,
        sink: Sink,
        rejects: RejectLog,
        existing: Checker | None,
        windows: Collector | None,
        pending: Pending | None = None,
    ) -> None:
        self.result, self.sink, self.rejects = result, sink, rejects
        self.existing, self.windows, self.pending = existing, windows, pending
        self._deferred: tuple[list[Future[None]], list[tuple[bytes, int]]] = ([], [])

    def deliver(self, chunk: Conversion, max_errors: int) -> None:
        result = self.result
        for r in chunk.rejects:
            self.rejects.add(result.source, r)
        result.rows_read += chunk.rows
        result.rows_rejected += len(chunk.rejects)
        if self.rejects.count > max_errors:
            result.stopped = True
        if result.stopped:
            return
        for p in chunk.points:
            p.stats.add(p.utc)
        compared: list[Future[None]] = []
        if self.existing is not None:
            for p in chunk.points:
                compared.append(self.existing.compare(result.source, p.key, p.utc, p.parsed.text,
                                p.value_start, p.value_len, p.parsed.line[p.good]))  # fmt: skip
        if self.windows is not None:
            for p in chunk.points:
                self.windows.add(p.key.measurement, p.key.tags, p.utc, p.parsed.text,
                                 p.value_start, p.value_len)  # fmt: skip
        if self.pending is not None:  # markers before the chunk's raw writes (next flush)
            spans: dict[str, tuple[int, int]] = {}
            for p in chunk.points:
                if len(p.utc):
                    lo, hi = int(p.utc.min()), int(p.utc.max())
                    old = spans.get(p.key.measurement, (lo, hi))
                    spans[p.key.measurement] = (min(lo, old[0]), max(hi, old[1]))
            self.pending.cover(spans)
        self.flush()
        self._deferred = (compared, chunk.batches)

    def flush(self) -> None:
        """Write the deferred chunk's batches once its comparison is done."""
        compared, batches = self._deferred
        self._deferred = ([], [])
        for fut in compared:
            fut.result()
        for body, count in batches:
            self.sink.submit(body, count)


class _Reader:
    """The bytes after the header as buffers of whole lines, a chunk at a time; what a buffer
    holds back is read again at the front of the next one."""

    def __init__(self, body: bytes, chunks: Iterator[bytes], line_no: int) -> None:
        self.carry, self.chunks, self.line_no = body, chunks, line_no
        self.pending = next(chunks, None)

    @property
    def final(self) -> bool:
        return self.pending is None

    def buffer(self) -> bytes | None:
        """The next buffer; None at the end."""
        buf, self.carry = self.carry, b""
        return None if not buf and self.final else buf

    def wait(self, buf: bytes) -> None:
        """All of ``buf`` waits: read it again with the next chunk."""
        self.carry = buf + (self.pending or b"")
        self.pending = next(self.chunks, None)

    def advance(self, buf: bytes, cut: int | None) -> None:
        """``buf`` was used up to line ``cut`` (all of it when None)."""
        if cut is None:
            self.line_no += buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
        else:
            self.carry = buf[_line_offset(buf, cut - self.line_no) :]
            self.line_no = cut
        if self.pending is not None:
            self.carry += self.pending
            self.pending = next(self.chunks, None)


def run_source(
    source: Source,
    opts: Options,
    sink: Sink,
    rejects: RejectLog,
    on_rows: Callable[[int], None] = lambda _n: None,
    existing: Checker | None = None,
    windows: Collector | None = None,
    pending: Pending | None = None,
) -> SourceResult:
    """Ingest one source into ``sink``. Writing stops (scanning goes on, so every
    bad row is reported) once the rejects across all sources pass ``opts.max_errors``.
    ``existing`` compares each chunk's points with the stored ones just before the chunk is
    handed to ``sink`` (so exactly the points written are compared, after the DST hold-back);
    ``windows`` collects the finest rollup windows of the points written; ``pending`` writes the
    pending-rollup markers of a chunk's series before the chunk is handed to ``sink``."""
    chunks = iter(source.chunks)
    dialect, body = _open(source.name, chunks, opts)
    result = SourceResult(source.name, dialect)
    streams: dict[str, _Stream] = {}
    if dialect.format != "long":
        streams[""] = _wide_stream(dialect, opts)
        result.series, result.columns = streams[""].stats, len(dialect.columns)
    delivery = _Delivery(result, sink, rejects, existing, windows, pending)
    reader = _Reader(body, chunks, dialect.header_rows + 1)
    while (buf := reader.buffer()) is not None:
        parts, split_rejects = _parse(buf, dialect, reader.line_no)
        result.series += _add_streams(streams, parts, opts, source.name)
        hold = not reader.final and not dialect.layout.absolute
        cut = _hold_back(parts, streams) if hold else None
        if cut == reader.line_no:
            reader.wait(buf)  # the whole buffer waits: read more before deciding
            continue
        if cut is not None:
            parts, split_rejects = _cut(parts, split_rejects, cut)
        chunk = _convert(parts, split_rejects, streams, dialect.layout.absolute, opts.batch_size)
        delivery.deliver(chunk, opts.max_errors)
        on_rows(chunk.rows)
        reader.advance(buf, cut)
    delivery.flush()
    return result
