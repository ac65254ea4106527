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
    """``text`` as InfluxDB 2 reads it back: a backslash escapes only the specials (comma,
    space, and in tags `=`), every other backslash is kept as it is, so backslashes are not
    doubled (InfluxDB would store both). A text ending in a backslash cannot be written at all
    (the backslash would escape the separator after it): ValueError, which the dialect reports
    for units before anything is written."""
    if text.endswith("\\"):
        raise ValueError(f"{text!r} ends with a backslash, which line protocol cannot store")
    for ch in specials:
        text = text.replace(ch, "\\" + ch)
    return text


def line_prefix(measurement: str, tags: Mapping[str, str]) -> bytes:
    """``measurement,tag=value value=``: escaped once per series, shared by all its lines."""
    head = _escape(measurement, ", ")  # a series name (gridts.names) has neither
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


def encode(
    prefix: bytes,
    text: NDArray[np.uint8],
    value_start: NDArray[np.int64],
    value_len: NDArray[np.int64],
    seconds: NDArray[np.int64],
) -> Lines:
    """One line per row: ``prefix`` + value text (spans into ``text``) + space + seconds.

    Rows are laid out in a fixed-width matrix (value and timestamp fields as wide as the widest)
    whose unused cells hold a zero byte, which no line contains; dropping the zeros in one pass
    leaves the lines, in row order.
    """
    n = len(seconds)
    if n == 0:
        return Lines(np.zeros(0, np.uint8), np.zeros(0, np.int64))
    if int(seconds.min()) < 0:
        raise ValueError("timestamps before 1970 are not supported")
    ndig = np.searchsorted(_POW10, seconds, side="right").astype(np.int64)
    ndig = np.maximum(ndig, 1)
    p, vmax, dmax = len(prefix), int(value_len.max()), int(ndig.max())
    width = p + vmax + 1 + dmax + 1
    m = np.zeros((n, width), dtype=np.uint8)
    m[:, :p] = np.frombuffer(prefix, dtype=np.uint8)
    cols = np.arange(vmax, dtype=np.int64)
    gathered = text[np.minimum(value_start[:, None] + cols, len(text) - 1)]
    m[:, p : p + vmax] = np.where(cols < value_len[:, None], gathered, 0)
    m[:, p + vmax] = 32
    rest = seconds.copy()
    for k in range(dmax):
        col = p + vmax + dmax - k  # k-th digit from the right
        digit = (rest % 10 + 48).astype(np.uint8)
        m[:, col] = digit if k == 0 else np.where(ndig > k, digit, 0)
        rest //= 10
    m[:, -1] = 10
    flat = m.ravel()
    body = flat[flat != 0]
    ends = np.cumsum(p + value_len + 1 + ndig + 1)
    return Lines(body, ends.astype(np.int64))
