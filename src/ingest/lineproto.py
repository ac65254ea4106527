"""Typed columns to InfluxDB line protocol, built as one byte array per chunk (no per-row objects).

A line is ``<measurement>[,<tag>=<value>...] value=<decimal text> <unix seconds>\\n``: the value
keeps the file's own digits (a float field: no ``i`` suffix), timestamps are whole seconds, so the
write uses ``precision=s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FIELD = "value"
_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def _escape(text: str, specials: str) -> str:
    out = text.replace("\\", "\\\\")
    for ch in specials:
        out = out.replace(ch, "\\" + ch)
    return out


def line_prefix(measurement: str, tags: Mapping[str, str]) -> bytes:
    """``measurement,tag=value value=``: escaped once per series, shared by all its lines."""
    head = _escape(measurement, ", ")
    for key in sorted(tags):  # sorted tags are what InfluxDB stores; saves it the work
        if tags[key]:
            head += f",{_escape(key, ',= ')}={_escape(tags[key], ',= ')}"
    return f"{head} {FIELD}=".encode()


@dataclass
class Lines:
    body: NDArray[np.uint8]
    ends: NDArray[np.int64]  # byte offset just past each line's newline

    def batches(self, size: int) -> list[tuple[bytes, int]]:
        """Consecutive runs of at most ``size`` lines as (bytes, line count)."""
        out: list[tuple[bytes, int]] = []
        start = 0
        for i in range(0, len(self.ends), size):
            stop = int(self.ends[min(i + size, len(self.ends)) - 1])
            out.append((self.body[start:stop].tobytes(), min(size, len(self.ends) - i)))
            start = stop
        return out


def _copy_spans(
    out: NDArray[np.uint8],
    dst: NDArray[np.int64],
    src_buf: NDArray[np.uint8],
    src: NDArray[np.int64],
    lengths: NDArray[np.int64],
) -> None:
    total = int(lengths.sum())
    if total == 0:
        return
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[np.repeat(dst, lengths) + within] = src_buf[np.repeat(src, lengths) + within]


def encode(
    prefix: bytes,
    text: NDArray[np.uint8],
    value_start: NDArray[np.int64],
    value_len: NDArray[np.int64],
    seconds: NDArray[np.int64],
) -> Lines:
    """One line per row: ``prefix`` + value text (spans into ``text``) + space + seconds."""
    n = len(seconds)
    if n == 0:
        return Lines(np.zeros(0, np.uint8), np.zeros(0, np.int64))
    if int(seconds.min()) < 0:
        raise ValueError("timestamps before 1970 are not supported")
    ndig = 1 + (seconds[:, None] >= _POW10[1:]).sum(axis=1)
    p = len(prefix)
    lengths = p + value_len + 1 + ndig + 1
    ends = np.cumsum(lengths)
    starts = ends - lengths
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    out[starts[:, None] + np.arange(p)] = np.frombuffer(prefix, dtype=np.uint8)
    _copy_spans(out, starts + p, text, value_start, value_len)
    space = starts + p + value_len
    out[space] = 32
    rest = seconds.copy()
    last_digit = space + ndig
    for k in range(int(ndig.max())):
        rows = ndig > k
        out[(last_digit - k)[rows]] = (rest[rows] % 10 + 48).astype(np.uint8)
        rest //= 10
    out[ends - 1] = 10
    return Lines(out, ends.astype(np.int64))
