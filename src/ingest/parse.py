"""Data rows to typed columns, vectorised over a chunk of bytes, and rejected rows with reasons.

A chunk is whole lines. Every line is either blank (skipped: not a row), accepted (a wall-clock
timestamp and, per value column, the span of its value text in ``ParsedChunk.text``) or rejected
with its line number and reason. Values keep their decimal text (decimal comma turned into a
point) so that line protocol carries exactly the digits of the file: no float round trip.
The fast path handles the rows that fit the file's layout; the few that do not are tried one by
one with the same rules, which also produce the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gridts.names import MAX_LENGTH, RULE, SERIES_NAME
from ingest.dialect import Dialect
from ingest.timelayout import decode, decode_one

MAX_VALUE_WIDTH = 24  # longer value texts take the one-by-one path
MAX_ROW = 4096  # bytes; a longer row is rejected without being decoded
NL, CR, QUOTE, MINUS, POINT, COMMA = 10, 13, 34, 45, 46, 44


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    text: str


@dataclass
class ParsedChunk:
    line: NDArray[np.int64]  # 1-based line number of each accepted row
    seconds: NDArray[np.int64]  # wall-clock label (UTC already when the layout is absolute)
    text: NDArray[np.uint8]  # bytes the value spans point into
    value_start: NDArray[np.int64]  # (rows, columns)
    value_len: NDArray[np.int64]  # (rows, columns)
    rejects: list[Reject]

    def __len__(self) -> int:
        return len(self.line)

    def take(self, keep: NDArray[np.bool_] | slice) -> ParsedChunk:
        return ParsedChunk(
            line=self.line[keep],
            seconds=self.seconds[keep],
            text=self.text,
            value_start=self.value_start[keep],
            value_len=self.value_len[keep],
            rejects=self.rejects,
        )


def _line_text(a: NDArray[np.uint8], s: int, e: int) -> str:
    return bytes(a[s : min(e, s + 200)]).decode("utf-8", "replace")


def _simple_numbers(
    a: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """True where the span is ``-?digits(.digits)?``: valid line protocol floats as they are."""
    n = len(start)
    ok = (length >= 1) & (length <= MAX_VALUE_WIDTH)
    if n == 0:
        return ok
    width = int(min(MAX_VALUE_WIDTH, max(1, int(length.max()))))
    cols = np.arange(width, dtype=np.int64)
    idx = np.minimum(start[:, None] + cols, len(a) - 1)
    g = a[idx]
    inside = cols < length[:, None]
    digit = (g >= 48) & (g <= 57) & inside
    point = (g == POINT) & inside
    minus = (g == MINUS) & inside
    minus_ok = minus[:, 1:].sum(axis=1) == 0
    lead = np.where(minus[:, 0], 1, 0)
    first_digit = digit[np.arange(n), np.minimum(lead, width - 1)]
    ok &= minus_ok & first_digit & (length > lead)
    ok &= (digit | point | (minus & (cols == 0))).sum(axis=1) == length
    npoint = point.sum(axis=1)
    ok &= npoint <= 1
    # a point must be followed by a digit ("5." and "5.e" are left to the careful path)
    after_point = np.zeros_like(point)
    after_point[:, :-1] = point[:, :-1] & ~digit[:, 1:]
    after_point[:, -1] = point[:, -1]
    ok &= ~after_point.any(axis=1)
    return np.asarray(ok, dtype=np.bool_)


def _careful_value(raw: str, decimal: str) -> str | tuple[str]:
    """A value text that is not plainly ``-?d+(.d+)?``: its float repr, or (reason,)."""
    text = raw.strip().strip('"').strip()
    if not text:
        return ("empty value",)
    if decimal == ",":
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return (f"not a number: {raw.strip()[:40]!r}",)
    if not math.isfinite(number):
        return (f"not a finite number: {raw.strip()[:40]!r}",)
    return repr(number)


def _bounds(
    chunk: bytes,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The chunk as bytes (newline-terminated), its newlines, and each line's start and end
    (end before any CR)."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    if len(a) and a[-1] != NL:
        a = np.concatenate([a, np.array([NL], dtype=np.uint8)])
    nl = np.flatnonzero(a == NL).astype(np.int64)
    starts = np.empty(len(nl), dtype=np.int64)
    if len(nl):
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
    ends = nl.copy()
    has_cr = (ends > starts) & (a[np.maximum(ends - 1, 0)] == CR)
    ends[has_cr] -= 1
    return a, nl, starts, ends


@dataclass
class _Rows:
    """Per line of a chunk: accepted or not, its wall-clock seconds, its value spans, and the
    reasons of the rejected lines (by index)."""

    seconds: NDArray[np.int64]
    vstart: NDArray[np.int64]
    vlen: NDArray[np.int64]
    accepted: NDArray[np.bool_]
    reasons: dict[int, str]

    @classmethod
    def empty(cls, lines: int, columns: int) -> _Rows:
        return cls(
            seconds=np.zeros(lines, dtype=np.int64),
            vstart=np.zeros((lines, columns), dtype=np.int64),
            vlen=np.zeros((lines, columns), dtype=np.int64),
            accepted=np.zeros(lines, dtype=np.bool_),
            reasons={},
        )


def parse_chunk(
    chunk: bytes, dialect: Dialect, first_line: int, lines: NDArray[np.int64] | None = None
) -> ParsedChunk:
    """Parse whole lines; ``first_line`` is the 1-based number of the chunk's first line, or
    ``lines`` gives each line's number (a long file's rows of one series)."""
    a, nl, starts, ends = _bounds(chunk)
    line_no = first_line + np.arange(len(nl), dtype=np.int64) if lines is None else lines
    text = a
    if dialect.decimal == ",":
        text = a.copy()
        text[text == COMMA] = POINT
    rows = _Rows.empty(len(nl), dialect.value_columns)
    careful = _fast_rows(a, text, nl, starts, ends, dialect, rows)
    extra = _careful_rows(a, starts, ends, np.flatnonzero(careful), dialect, rows, len(text))
    if extra:
        text = np.concatenate([text, np.frombuffer(bytes(extra), dtype=np.uint8)])
    rejects = [
        Reject(int(line_no[i]), reason, _line_text(a, starts[i], ends[i]))
        for i, reason in sorted(rows.reasons.items())
    ]
    keep = np.flatnonzero(rows.accepted)
    return ParsedChunk(
        line=line_no[keep],
        seconds=rows.seconds[keep],
        text=text,
        value_start=rows.vstart[keep],
        value_len=rows.vlen[keep],
        rejects=rejects,
    )


def _fast_rows(
    a: NDArray[np.uint8],
    text: NDArray[np.uint8],
    nl: NDArray[np.int64],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    dialect: Dialect,
    rows: _Rows,
) -> NDArray[np.bool_]:
    """The rows that fit the file's layout, vectorised, into ``rows``; the mask of the nonblank
    lines left for the careful path (those whose reason is known already are not retried)."""
    nonblank = ends > starts
    k = dialect.value_columns
    # Lines the fast path must not touch: quotes, non-ASCII bytes or control characters.
    odd_bytes = np.flatnonzero(
        (a >= 128) | (a == QUOTE) | ((a < 32) & (a != NL) & (a != CR) & (a != 9))
    )
    careful = np.zeros(len(nl), dtype=np.bool_)
    if len(odd_bytes):
        careful[np.searchsorted(nl, odd_bytes)] = True
    sp = np.flatnonzero(a == ord(dialect.separator)).astype(np.int64)
    first_sep = np.searchsorted(sp, starts)
    careful |= (np.searchsorted(sp, ends) - first_sep) != k
    fi = np.flatnonzero(nonblank & ~careful)
    if len(fi):
        time_ok = _fast_times(a, starts, fi, sp[first_sep[fi]], dialect, rows)
        for j in range(k):
            s = sp[first_sep[fi] + j] + 1
            e = sp[first_sep[fi] + j + 1] if j + 1 < k else ends[fi]
            rows.vstart[fi, j] = s
            rows.vlen[fi, j] = e - s
        values_ok = np.ones(len(fi), dtype=np.bool_)
        for j in range(k):
            values_ok &= _simple_numbers(text, rows.vstart[fi, j], rows.vlen[fi, j])
        rows.accepted[fi] = time_ok[fi] & values_ok
        careful |= nonblank & ~rows.accepted
        careful[list(rows.reasons)] = False
    return careful & nonblank


def _fast_times(
    a: NDArray[np.uint8],
    starts: NDArray[np.int64],
    fi: NDArray[np.int64],
    t_end: NDArray[np.int64],
    dialect: Dialect,
    rows: _Rows,
) -> NDArray[np.bool_]:
    """Decode the timestamps of lines ``fi`` (ending at ``t_end``) that have the layout's width
    into ``rows``; True per line (of the chunk) whose timestamp is valid."""
    width = dialect.layout.width
    si = fi[(t_end - starts[fi]) == width]
    g = a[starts[si][:, None] + np.arange(width, dtype=np.int64)]
    dec = decode(g, dialect.layout)
    rows.seconds[si] = dec.seconds
    for i, reason in dec.invalid.items():
        rows.reasons[int(si[i])] = reason
    time_ok = np.zeros(len(rows.accepted), dtype=np.bool_)
    time_ok[si[dec.ok]] = True
    return time_ok


def _careful_rows(
    a: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    careful: NDArray[np.int64],
    dialect: Dialect,
    rows: _Rows,
    base: int,
) -> bytearray:
    """The lines ``careful`` one by one into ``rows``; their values' texts, which go after the
    chunk's ``base`` bytes."""
    extra = bytearray()
    for row in careful:
        i = int(row)
        if ends[i] - starts[i] > MAX_ROW:
            rows.reasons[i] = f"row of {int(ends[i] - starts[i]):,} bytes: longer than {MAX_ROW}"
            continue
        got = _careful_row(bytes(a[int(starts[i]) : int(ends[i])]), dialect)
        if got is None:
            continue  # whitespace only: a blank line, not a row
        if isinstance(got, str):
            rows.reasons[i] = got
            continue
        rows.seconds[i], values = got
        for j, value in enumerate(values):
            rows.vstart[i, j], rows.vlen[i, j] = base + len(extra), len(value)
            extra += value.encode("ascii")
        rows.accepted[i] = True
    return extra


def _careful_row(raw: bytes, dialect: Dialect) -> str | tuple[int, list[str]] | None:
    """One row by the rules: None for a blank line, else why it is rejected or its wall-clock
    seconds and value texts."""
    if not raw.strip():
        return None
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "undecodable bytes (not UTF-8)"
    if any(ord(c) < 32 and c != "\t" for c in line):
        return "control characters in the row"
    cells = line.split(dialect.separator)
    if len(cells) != dialect.value_columns + 1:
        return f"expected {dialect.value_columns + 1} columns, found {len(cells)}"
    when = decode_one(cells[0].strip().strip('"'))
    if isinstance(when, str):
        return when
    if when[1].absolute != dialect.layout.absolute:
        return (
            f"timestamp {cells[0].strip()[:40]!r} "
            + ("has a UTC offset" if when[1].absolute else "has no UTC offset")
            + " unlike the file's first row"
        )
    values: list[str] = []
    for cell in cells[1:]:
        value = _careful_value(cell, dialect.decimal)
        if isinstance(value, tuple):
            return value[0]
        values.append(value)
    return when[0], values


@dataclass
class LongGroup:
    """One series' rows of a long (series, time, value) chunk, as ``time<sep>value`` lines."""

    series: str
    chunk: bytes
    lines: NDArray[np.int64]


def split_long(chunk: bytes, sep: str, first_line: int) -> tuple[list[LongGroup], list[Reject]]:
    """Group a long chunk's rows by their first column, vectorised; rows without a usable
    series name are rejected here."""
    a, nl, starts, ends = _bounds(chunk)
    line_no = first_line + np.arange(len(nl), dtype=np.int64)
    sp = np.flatnonzero(a == ord(sep)).astype(np.int64)
    fs = np.searchsorted(sp, starts)
    name_end = sp[np.minimum(fs, max(len(sp) - 1, 0))] if len(sp) else np.zeros_like(starts)
    has_sep = (fs < len(sp)) & (name_end < ends)
    name_len = name_end - starts
    ok = has_sep & (name_len >= 1) & (name_len <= MAX_LENGTH)
    rejects: list[Reject] = []
    for i in np.flatnonzero(~ok):
        raw = bytes(a[starts[i] : ends[i]])
        if not raw.strip():
            continue
        why = (
            "expected 3 columns (series, time, value)"
            if not has_sep[i]
            else f"series name empty or longer than {MAX_LENGTH} characters"
        )
        rejects.append(Reject(int(line_no[i]), why, _line_text(a, starts[i], ends[i])))
    rows = np.flatnonzero(ok)
    groups: list[LongGroup] = []
    if not len(rows):
        return groups, rejects
    width = int(name_len[rows].max())
    cols = np.arange(width, dtype=np.int64)
    g = a[np.minimum(starts[rows, None] + cols, len(a) - 1)]
    g = np.where(cols < name_len[rows, None], g, 0).astype(np.uint8)
    names, first_seen, inverse = np.unique(
        np.ascontiguousarray(g).view(f"S{width}").ravel(), return_index=True, return_inverse=True
    )
    for u in np.argsort(first_seen):  # series in order of first appearance
        members = rows[inverse == u]
        name = bytes(names[u]).decode("utf-8", "replace").strip().strip('"')
        if not SERIES_NAME.match(name):
            for i in members:
                rejects.append(
                    Reject(int(line_no[i]), f"invalid series name {name[:40]!r}: {RULE}",
                           _line_text(a, starts[i], ends[i]))
                )  # fmt: skip
            continue
        s, e = name_end[members] + 1, ends[members]
        groups.append(LongGroup(name, _gather_lines(a, s, e), line_no[members]))
    rejects.sort(key=lambda r: r.line)
    return groups, rejects


def _gather_lines(a: NDArray[np.uint8], s: NDArray[np.int64], e: NDArray[np.int64]) -> bytes:
    """The spans [s, e) of ``a`` as newline-terminated lines, in one vectorised copy."""
    body = e - s
    dst = np.cumsum(body + 1) - (body + 1)
    out = np.full(int((body + 1).sum()), NL, dtype=np.uint8)
    within = np.arange(int(body.sum()), dtype=np.int64) - np.repeat(np.cumsum(body) - body, body)
    out[np.repeat(dst, body) + within] = a[np.repeat(s, body) + within]
    return out.tobytes()
