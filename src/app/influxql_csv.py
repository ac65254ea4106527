"""InfluxQL's CSV answer to a plain read, read as the points Flux's answer to the same read gives
(ADR 0018).

A plain read (``app.query.influxql``) asked of InfluxDB's v1 `/query` is answered as
`name,tags,time,<field>` rows: the measurement, the tag set (`unit=Hz`), the instant in
nanoseconds and the value as InfluxDB writes it. Flux answers the same read
(`from |> range |> filter |> keep(columns: ["_time", "_value"])`) as
`,result,table,_time,_value` rows: `,_result,0,2021-05-01T00:00:30Z,50.0419`, CRLF line ends and a
blank line after the block. Numbers are written alike: InfluxDB writes them with the same
function in both languages, which the tests check against the real influxd.

``read_points`` makes of InfluxQL's answer exactly the ``Points`` that ``points.parse_flux_csv``
makes of Flux's: when every instant is a whole second (the usual), cells over InfluxQL's own
bytes, the labels made with numpy (``utc_labels``), nothing copied per row; else Flux's text
(``as_flux_csv``) parsed as Flux's. Plain reads asked in InfluxQL are small (``store``), so the
answer is read whole, not while it arrives.

Only an answer of one tag set is read (Flux's one table): a second tag set, a quoted time or
value, or anything unexpected is an ``Outcome`` other than ``ANSWERED``, and the caller asks Flux.
InfluxQL's CSV has no way to say a statement failed (a bucket without a DBRP mapping is
answered with an empty body), so an empty answer is ``EMPTY``: the caller asks Flux too.
"""

from __future__ import annotations

import csv
import enum
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from app.points import CsvCells, Points, byte_windows, parse_flux_csv, utc_labels

Bytes = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]

FLUX_HEADER = b",result,table,_time,_value\r\n"
_ROW_START = b",_result,0,"  # every row of Flux's one table: empty annotation, result, table
_INFLUXQL_HEADER = b"name,tags,time,"
_COMMA, _LF, _CR, _DIGIT = 0x2C, 0x0A, 0x0D, 0x30
_EPOCH_DIGITS = 19  # nanoseconds since the epoch from 2001-09-09 to 2286-11-20
_POWERS = 10 ** np.arange(9, -1, -1, dtype=np.int64)  # the worth of the seconds' ten digits


class Outcome(enum.Enum):
    """How InfluxQL's answer was read."""

    ANSWERED = "answered"  # every row of one tag set read
    EMPTY = "empty"  # no row: an empty range, or a statement InfluxDB refused
    SEVERAL_TAG_SETS = "several_tag_sets"  # Flux answers those as several tables
    UNREADABLE = "unreadable"  # quoted cells, or rows of another shape
    REFUSED = "refused"  # a 4xx: no v1 endpoint, or a statement the server does not take


def as_flux_csv(raw: bytes) -> bytes | Outcome:
    """InfluxQL's whole CSV answer as the bytes Flux answers the same read with."""
    rows = _rows(raw)
    return rows if isinstance(rows, Outcome) else rows.flux_csv()


def read_points(raw: bytes, *, integer: bool = False) -> Points | Outcome:
    """InfluxQL's whole CSV answer as the points ``parse_flux_csv`` makes of Flux's answer to
    the same read (``integer``: as it would be told)."""
    rows = _rows(raw)
    if isinstance(rows, Outcome):
        return rows
    if not isinstance(rows.labels, list):
        # Flux's text is made only for whatever reads the points one by one (``Points.times``)
        cells = CsvCells.of_rows(
            rows.data,
            rows.labels,
            (rows.times, rows.values),
            lambda: rows.flux_csv().decode("ascii"),
            integer=integer,
        )
        if cells is not None:
            return Points.of_cells(cells)
    return parse_flux_csv(rows.flux_csv().decode("utf-8"), integer=integer)


@dataclass(frozen=True)
class _Rows:
    """The rows of InfluxQL's answer: its bytes (without the header), the labels Flux writes
    for their instants, and where their values start and stop in ``data``."""

    data: Bytes
    labels: Bytes | list[bytes]
    times: tuple[Ints, Ints]  # the time cells (nanoseconds)
    values: tuple[Ints, Ints]

    def flux_csv(self) -> bytes:
        """Flux's answer of these rows: its header, a row per point, the blank line after."""
        return FLUX_HEADER + _assemble(self.data, self.labels, *self.values) + b"\r\n"


def _rows(raw: bytes) -> _Rows | Outcome:
    cut = raw.find(b"\n")
    if cut < 0:
        return Outcome.EMPTY if not raw.strip() else Outcome.UNREADABLE
    header = raw[:cut]
    if not header.startswith(_INFLUXQL_HEADER) or b"," in header[len(_INFLUXQL_HEADER) :]:
        return Outcome.UNREADABLE  # (a quoted field name is not one cell here)
    block = raw[cut + 1 :]
    if not block:
        return Outcome.EMPTY
    if not block.endswith(b"\n"):
        block += b"\n"  # (InfluxDB ends every row with one; a last row without is whole)
    return flux_rows(block)


def flux_rows(block: bytes) -> _Rows | Outcome:
    """Rows of InfluxQL's CSV (whole lines, the header not among them), all beginning with the
    `name,tags` cells of the first (as written: quoted when they hold a comma or a quote, as
    the tags of a series of two tags do); a ``Outcome`` when they cannot be read."""
    if not block or _CR in block or not block.endswith(b"\n"):
        return Outcome.UNREADABLE
    data: Bytes = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == _LF)
    n = len(ends)
    starts = np.empty(n, dtype=np.int64)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    prefix = _prefix(block[: int(ends[0])])
    if prefix is None:
        return Outcome.UNREADABLE
    # every row begins with the prefix and a comma (rows shorter than it cannot)
    head = prefix + b","
    if np.any(ends - starts <= len(head)) or not np.all(
        byte_windows(data, len(head))[starts] == np.frombuffer(head, dtype=np.uint8)
    ):
        return Outcome.SEVERAL_TAG_SETS
    # and then `time,value`: one comma more, and no quote
    per_row = head.count(b",") + 1
    found = np.flatnonzero(data == _COMMA)
    if len(found) != per_row * n or block.count(b'"') != prefix.count(b'"') * n:
        return Outcome.UNREADABLE
    separators = found.reshape(n, per_row)[:, -1]  # in its row, when every row has per_row
    if np.any(separators <= starts + len(head)) or np.any(separators >= ends - 1):
        return Outcome.UNREADABLE
    labels = _labels(data, block, starts + len(head), separators)
    if labels is None:
        return Outcome.UNREADABLE
    return _Rows(data, labels, (starts + len(head), separators), (separators + 1, ends))


def _prefix(line: bytes) -> bytes | None:
    """The `name,tags` cells of a row, as written (Go's CSV quotes a cell holding a comma, a
    quote or a line end); None when the row is not four cells ending in two plain ones."""
    try:
        cells = next(csv.reader([line.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if len(cells) != 4:
        return None
    tail = f",{cells[2]},{cells[3]}".encode()
    if not line.endswith(tail):
        return None
    return line[: len(line) - len(tail)]


def _labels(data: Bytes, block: bytes, start: Ints, stop: Ints) -> Bytes | list[bytes] | None:
    """The time cells (nanoseconds since the epoch) as Flux writes them (RFC 3339, fraction
    digits only when there are any, their trailing zeros left out): a matrix of 20 bytes per
    row when every instant is a whole second of 2001-09-09 to 2286 (the usual), else one text
    per row; None for a cell that is not an integer."""
    if np.all(stop - start == _EPOCH_DIGITS):
        digits = byte_windows(data, _EPOCH_DIGITS)[start] - np.uint8(_DIGIT)  # (wraps below 0)
        if np.all(digits[:, :10] <= 9) and not np.any(digits[:, 10:]):
            return utc_labels(digits[:, :10].astype(np.int64) @ _POWERS)
    out = []
    for a, b in zip(start.tolist(), stop.tolist(), strict=True):
        cell = block[a:b]
        if not cell.lstrip(b"-").isdigit():
            return None
        label = flux_label(int(cell))
        if label is None:
            return None
        out.append(label)
    return out


def flux_label(nanoseconds: int) -> bytes | None:
    """An instant as Flux writes it in its CSV (Go's RFC3339Nano in UTC); None outside the
    years 1 to 9999 (InfluxDB keeps 1677 to 2262)."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    try:
        instant = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    text = f"{instant.year:04d}" + instant.strftime("-%m-%dT%H:%M:%S")  # (%Y: `999`)
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return (text + "Z").encode("ascii")


def _assemble(data: Bytes, labels: Bytes | list[bytes], value_starts: Ints, ends: Ints) -> bytes:
    """Flux's rows: `,_result,0,<label>,<value>` and CRLF, the values copied from ``data``: the
    rows of a matrix as wide as the longest, their bytes taken in order (one gather of whole
    rows and one mask, not an index per byte)."""
    if isinstance(labels, list):
        return b"".join(
            _ROW_START + label + b"," + data[a:b].tobytes() + b"\r\n"
            for label, a, b in zip(labels, value_starts.tolist(), ends.tolist(), strict=True)
        )
    n = len(value_starts)
    lengths = ends - value_starts
    longest = int(lengths.max())
    head = len(_ROW_START) + labels.shape[1] + 1  # the bytes up to the value
    rows = np.empty((n, head + longest + 2), dtype=np.uint8)
    rows[:, : len(_ROW_START)] = np.frombuffer(_ROW_START, dtype=np.uint8)
    rows[:, len(_ROW_START) : head - 1] = labels
    rows[:, head - 1] = _COMMA
    padded = np.concatenate([data, np.zeros(longest, dtype=np.uint8)])
    rows[:, head : head + longest] = byte_windows(padded, longest)[value_starts]
    every = np.arange(n)
    rows[every, head + lengths] = _CR
    rows[every, head + lengths + 1] = _LF
    kept = np.arange(rows.shape[1]) < (head + lengths + 2)[:, None]
    return bytes(rows[kept].tobytes())
