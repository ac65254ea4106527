"""One SOURCE through ``dialect → parse → timeconv → lineproto → sink``, chunk by chunk.

Every data row is counted exactly once: as a point handed to the sink, or as a reject (file,
line, reason). Rows near a DST change wait for the next chunk when a chunk ends among them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
from numpy.typing import NDArray

from ingest.dialect import Dialect, DialectError, sniff
from ingest.lineproto import encode, line_prefix
from ingest.parse import Reject, parse_chunk
from ingest.sources import Source
from ingest.timeconv import TimeConverter

BOM = b"\xef\xbb\xbf"


class Sink(Protocol):
    def submit(self, body: bytes, lines: int) -> None: ...


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


@dataclass
class SeriesStats:
    name: str
    unit: str | None
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
    """Counts rejects across sources; writes each to the errors file, keeps a few to print."""

    def __init__(self, out: IO[str] | None, keep: int = 20) -> None:
        self.count = 0
        self.kept: list[tuple[str, Reject]] = []
        self._keep = keep
        self._csv = csv.writer(out) if out is not None else None
        if self._csv is not None:
            self._csv.writerow(["source", "line", "reason", "text"])

    def add(self, source: str, reject: Reject) -> None:
        self.count += 1
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


def run_source(
    source: Source,
    opts: Options,
    sink: Sink | None,
    rejects: RejectLog,
    on_rows: Callable[[int], None] = lambda _n: None,
) -> SourceResult:
    """Ingest one source; ``sink`` None parses only. Writing stops (scanning goes on, so every
    bad row is reported) once the rejects across all sources pass ``opts.max_errors``."""
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
    stats = [SeriesStats(c.series, c.unit) for c in dialect.columns]
    result.series = stats
    prefixes = [
        line_prefix(c.series, {**({"unit": c.unit} if c.unit else {}), **opts.tags})
        for c in dialect.columns
    ]
    converter: TimeConverter | None = None
    line_no = dialect.header_rows + 1
    carry = first[skip:]
    pending = next(chunks, None)
    while True:
        final = pending is None
        buf = carry
        carry = b""
        if not buf and final:
            break
        parsed = parse_chunk(buf, dialect, line_no)
        if converter is None:
            step = opts.step
            if step is None and opts.label == "end":
                try:
                    step = _infer_step(parsed.seconds)
                except DialectError as exc:
                    raise DialectError(f"{source.name}: {exc}") from exc
            converter = TimeConverter(opts.tz, opts.label, step)
        ready = (
            len(parsed) if final or dialect.layout.absolute else converter.safe_rows(parsed.seconds)
        )
        next_line = line_no + buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
        if ready < len(parsed):
            cut = int(parsed.offset[ready])
            next_line = int(parsed.line[ready])
            parsed.rejects = [(off, r) for off, r in parsed.rejects if off < cut]
            parsed = parsed.take(slice(0, ready))
            carry = buf[cut:]
            if ready == 0 and not final:
                # the whole buffer waits: read more before deciding
                carry = buf + (pending or b"")
                pending = next(chunks, None)
                continue
        conv = converter.convert(parsed.seconds, parsed.line, dialect.layout.absolute)
        bad = [r for _off, r in parsed.rejects]
        keep = np.ones(len(parsed), dtype=np.bool_)
        for i, reason in conv.rejects.items():
            keep[i] = False
            bad.append(Reject(int(parsed.line[i]), reason, ""))
        for r in sorted(bad, key=lambda r: r.line):
            rejects.add(source.name, r)
        result.rows_read += len(parsed) + len(parsed.rejects)
        result.rows_rejected += len(bad)
        if rejects.count > opts.max_errors:
            result.stopped = True
        good = np.flatnonzero(keep)
        utc = conv.utc[good]
        for j, prefix in enumerate(prefixes):
            lines = encode(
                prefix, parsed.text, parsed.value_start[good, j], parsed.value_len[good, j], utc
            )
            if sink is not None and not result.stopped:
                for body, count in lines.batches(opts.batch_size):
                    sink.submit(body, count)
                stats[j].add(utc)
        on_rows(len(parsed) + len(parsed.rejects))
        line_no = next_line
        if final and not carry:
            break
        if pending is not None:
            carry += pending
            pending = next(chunks, None)
    return result
