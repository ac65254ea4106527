"""Query results as columns of window labels and values, and what is done to them after Flux.

Pure: Flux's CSV text in, points out. Times stay the RFC 3339 strings InfluxDB wrote (UTC, `Z`),
which is already the response format, so the common path never builds a datetime per point.
"""

from __future__ import annotations

import bisect
import io
import itertools
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.errors import InfluxRejected
from gridts import tiers

Value = float | int | None
Bytes = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Spans = tuple[Ints, ...]  # starts and stops of cells, as many arrays as columns read


# A value as InfluxDB's CSV writes a finite float or an integer: also a JSON number.
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_NUMBERS = re.compile(f"{_NUMBER}(?:,{_NUMBER})*")
_NUMBER_TEXT = re.compile(_NUMBER)


class Points:
    """One series' points: `times[i]` labels `values[i]`; `tables`: how many Flux tables
    (series keys) the rows came from; `source`: which data answered, `raw` or a rollup tier
    (`tier:15m`).

    Values parsed from InfluxDB's CSV stay its text until something reads ``values``: most
    answers go from InfluxDB to the JSON response untouched, and the text of a decimal number
    is already JSON (``json_numbers``). Reading ``values`` parses them once (and from then on
    the floats are what the caller may change, so the text is dropped).

    One block of Flux's CSV stays its bytes (``cells``) until something reads ``times`` or
    ``values``: then it is parsed as before (``_parse_lists``), one string per cell.
    """

    __slots__ = ("_cells", "_convert", "_texts", "_times", "_values", "source", "tables")

    def __init__(
        self,
        times: list[str] | None = None,
        values: list[Value] | None = None,
        tables: int = 0,
        source: str = "raw",
    ) -> None:
        self._times: list[str] = [] if times is None else times
        self._values: list[Value] | None = [] if values is None else values
        self._texts: list[str] | None = None
        self._convert: type[float] | type[int] = float
        self._cells: CsvCells | None = None
        self.tables = tables
        self.source = source

    @classmethod
    def of_texts(
        cls, times: list[str], texts: list[str], tables: int, *, integer: bool = False
    ) -> Points:
        """Points whose values are InfluxDB's texts of finite decimals (``_NUMBERS``), parsed
        when first read."""
        points = cls(times, None, tables)
        points._values, points._texts = None, texts
        points._convert = int if integer else float
        return points

    @classmethod
    def of_cells(cls, cells: CsvCells) -> Points:
        """Points that are one block of Flux's CSV, its cells still bytes (``CsvCells``)."""
        points = cls(None, None, cells.tables)
        points._cells = cells
        return points

    def _unpack(self) -> None:
        """The cells parsed into lists, exactly as ``parse_flux_csv`` without them would (the
        same ``tables``, kept as the caller may have set it)."""
        cells, self._cells = self._cells, None
        if cells is not None:
            got = _parse_lists(cells.text, cells.integer)
            self._times, self._values, self._texts = got._times, got._values, got._texts
            self._convert = got._convert

    @property
    def times(self) -> list[str]:
        self._unpack()
        return self._times

    @times.setter
    def times(self, times: list[str]) -> None:
        self._unpack()
        self._times = times

    @property
    def values(self) -> list[Value]:
        self._unpack()
        if self._values is None:
            self._values = list(map(self._convert, self._texts or ()))
        self._texts = None
        return self._values

    @values.setter
    def values(self, values: list[Value]) -> None:
        self._unpack()
        self._values, self._texts = values, None

    def json_numbers(self) -> list[str] | None:
        """The values as JSON number texts, exactly as InfluxDB wrote them, while nothing has
        read or replaced them; else None."""
        self._unpack()
        return self._texts

    def cells(self) -> CsvCells | None:
        """The block of Flux's CSV these points are, while nothing has read or replaced its
        labels or values; else None."""
        return self._cells

    def relabel_first(self, old: str, new: str) -> None:
        """The first label as ``new`` when it is ``old``. Points still Flux's CSV stay so when
        the two are as long as every label (``CsvCells.relabel_first``): a range that does
        not start on a window's start no longer costs the API a string per point."""
        if self._cells is not None and self._cells.relabel_first(old, new):
            return
        if self.times and self.times[0] == old:
            self.times[0] = new

    def on_multiples(self, seconds: int, offset: int = 0) -> bool:
        """Whether every label is ``offset`` plus a whole multiple of ``seconds`` past the
        epoch, told from the cells (False when they are not bytes any more, or a label is not
        `YYYY-MM-DDTHH:MM:SSZ`: a fraction of a second, say). For a length that divides a day,
        from the labels' clock alone (a fifth of the time of their instants)."""
        if self._cells is None or not len(self):
            return False
        labels = self._cells.labels()
        if labels.pad is not None or labels.matrix.shape[1] != 20:
            return False
        clock: Ints | None
        if _DAY_SECONDS % seconds == 0 and offset % seconds == 0:
            clock, offset = _label_clock(labels.matrix), 0
        else:
            clock = _label_seconds(labels.matrix)
        return clock is not None and bool(np.all((clock - offset) % seconds == 0))

    def floats_as_written(self) -> bool:
        """Whether every value, read as a float and written again by InfluxDB, is the same text:
        it has a fraction (a float field's) or at most 15 digits (an integer field's value past
        2**53 is not: Flux's `mean` of `9007199254740993` is `9007199254740992`). Told from the
        cells, only the longer ones looked at (at once: a float field's texts of 17 digits
        may be all of them); False when they are not bytes any more."""
        if self._cells is None:
            return False
        start, stop = self._cells.value_spans
        long = stop - start > _EXACT_DIGITS
        if not np.any(long):
            return True
        cells = Cells.of(self._cells.data, start[long], stop[long], 0)
        integer = ~np.any(cells.matrix == _DOT, axis=1)
        digits = cells.lengths - (cells.matrix[:, 0] == _MINUS)
        return not bool(np.any(integer & (digits > _EXACT_DIGITS)))

    def negative_zeros(self) -> bool:
        """Whether a value is InfluxDB's text of negative zero, `-0` (True when they are not
        bytes any more: not told then)."""
        if self._cells is None:
            return True
        start, stop = self._cells.value_spans
        at = start[stop - start == 2]  # the cells of two bytes
        data = self._cells.data
        return bool(np.any((data[at] == _MINUS) & (data[at + 1] == _DIGIT)))

    def increasing(self) -> bool:
        """Whether the labels are in strictly increasing time order (``strictly_increasing``),
        told from the cells while they are bytes."""
        if self._cells is not None:
            verdict = self._cells.increasing()
            if verdict is not None:
                return verdict
        return strictly_increasing(self.times)

    def __len__(self) -> int:
        return len(self._cells) if self._cells is not None else len(self._times)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Points):
            return NotImplemented
        return (self.times, self.values, self.tables, self.source) == (
            other.times, other.values, other.tables, other.source
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._unpack()
        shown = self._texts if self._texts is not None else self._values
        return (
            f"Points(times={self._times!r}, values={shown!r}, tables={self.tables}, "
            f"source={self.source!r})"
        )


def _refuse_errors(text: str) -> None:
    """InfluxRejected when Flux's CSV reports an error (an `error` column) instead of rows."""
    if text.startswith(("error,", ",error,")) or "\nerror," in text:
        raise InfluxRejected("InfluxDB reported an error while running the query")


def _columns(names: list[str], wanted: tuple[str, ...], message: str) -> list[int]:
    """The index of each of ``wanted`` in a CSV header; InfluxRejected(``message``) when one
    is missing."""
    try:
        return [names.index(name) for name in wanted]
    except ValueError:
        raise InfluxRejected(message) from None


def _numbers(texts: list[str], convert: Callable[[str], float]) -> list[Value]:
    """CSV cells as numbers; an empty cell (null) as None."""
    if "" in texts:
        return [convert(v) if v else None for v in texts]
    return list(map(convert, texts))


def parse_flux_csv(text: str, *, integer: bool = False) -> Points:
    """Rows of Flux's annotation-free CSV with `_time` and `_value` columns.

    The usual answer, one block of finite numbers, stays its bytes (``CsvCells``): read with
    numpy, no Python object per point, until something reads its labels or values. Anything
    else is read as whole-list comprehensions, block by block (a block is a header and its
    rows): this runs once per point of every response, so it is the API's hottest loop.
    """
    cells = CsvCells.parse(text, integer=integer)
    if cells is not None:  # no line of it starts with `error,`
        return Points.of_cells(cells)
    _refuse_errors(text)
    return _parse_lists(text, integer)


def _parse_lists(text: str, integer: bool) -> Points:
    """``parse_flux_csv`` into lists: a string per label, a text or a number per value."""
    single = _single_block(text, integer)
    if single is not None:
        return single
    lines = text.splitlines()
    if lines and lines[0].startswith(",result,") and "\n,result," not in text:
        headers = [0]  # the usual answer: one block
    else:
        headers = [i for i, line in enumerate(lines) if line.startswith(",result,")]
    if len(headers) == 1 and headers[0] == 0 and len(text) > PANDAS_FROM_BYTES:
        return _parse_with_pandas(text, lines[0].split(","), integer)
    if not headers and any(lines):
        raise InfluxRejected("unexpected result from InfluxDB")
    convert = int if integer else float
    out = Points()
    tables: set[str] = set()
    for n, at in enumerate(headers):
        names = lines[at].split(",")
        i_time, i_value, i_table = _columns(
            names, ("_time", "_value", "table"), "unexpected result columns from InfluxDB"
        )
        stop = headers[n + 1] if n + 1 < len(headers) else len(lines)
        rows = [line.split(",") for line in lines[at + 1 : stop] if line]
        out.times.extend([r[i_time] for r in rows])
        out.values.extend(_numbers([r[i_value] for r in rows], convert))
        if rows:  # the table ids at the block's ends; labels out of order reveal the rest
            tables.update((rows[0][i_table], rows[-1][i_table]))
    out.tables = len(tables)
    return out


def _single_block(text: str, integer: bool) -> Points | None:
    """The usual answer, one block of `,result,table,_time,_value` rows, cut with two C-level
    string operations instead of a split per line; None when the text is anything else."""
    if not text.startswith(",result,") or "\n,result," in text:
        return None
    head, sep, body = text.partition("\n")
    names = head.rstrip("\r").split(",")
    if not sep or not {"_time", "_value", "table"} <= set(names):
        return None
    if len(text) > PANDAS_FROM_BYTES:
        return _parse_with_pandas(text, names, integer)
    width = len(names)
    body = body.strip()
    flat = body.replace("\r\n", ",").replace("\n", ",").split(",") if body else []
    if len(flat) % width:
        return None
    i_time, i_value, i_table = names.index("_time"), names.index("_value"), names.index("table")
    raw = flat[i_value::width]
    times, tables = flat[i_time::width], len(set(flat[i_table::width]))
    if _NUMBERS.fullmatch(",".join(raw)):  # no null, NaN or infinity: parsed when read
        return Points.of_texts(times, raw, tables, integer=integer)
    return Points(times, _numbers(raw, int if integer else float), tables)


def byte_windows(data: Bytes, width: int) -> Bytes:
    """Every run of ``width`` bytes of ``data`` (one-dimensional, contiguous) as the rows of a
    view of it: numpy's ``sliding_window_view`` without its checks of any shape, a tenth of
    its time (1 against 13 us), taken a few times for every piece of an answer."""
    if data.ndim != 1 or data.strides != (1,) or not 0 < width <= len(data):
        raise ValueError(f"no windows of {width} bytes in {data.shape} bytes")
    return np.ndarray((len(data) - width + 1, width), np.uint8, data, 0, (1, 1))


# The bytes the cells of Flux's CSV are read by.
_DIGIT, _DOT, _MINUS, _SLASH, _COMMA, _LF, _CR = 0x30, 0x2E, 0x2D, 0x2F, 0x2C, 0x0A, 0x0D


@dataclass(frozen=True)
class Cells:
    """The cells of one column as the rows of a byte matrix as wide as the longest, each
    followed by ``fill`` bytes up to that width; ``pad`` marks those (None: no cell is
    shorter than the matrix is wide)."""

    matrix: Bytes
    lengths: Ints
    pad: Mask | None

    @classmethod
    def of(cls, data: Bytes, start: Ints, stop: Ints, fill: int) -> Cells:
        """The cells ``data[start[i]:stop[i]]``: one copy of their rows, no object per cell."""
        lengths = stop - start
        width = int(lengths.max()) if len(lengths) else 0
        if not width:
            return cls(np.zeros((len(start), 0), dtype=np.uint8), lengths, None)
        last = len(data) - width
        rows = byte_windows(data, width)[np.minimum(start, last)]
        for row in np.flatnonzero(start > last).tolist():  # near the end: what is left
            tail = data[start[row] :]
            rows[row, : len(tail)] = tail  # (the cell, shorter than `width`, is all in it)
        if lengths.min() == width:
            return cls(rows, lengths, None)
        # per row, the row of a small table for its length (one gather: a fifth of the time
        # a comparison of each byte's place with its row's length takes)
        pad = np.take(np.arange(width) >= np.arange(width + 1)[:, None], lengths, axis=0)
        past = pad.view(np.uint8)
        rows *= 1 - past
        rows += past * np.uint8(fill)
        return cls(rows, lengths, pad)

    def matching(self, text: bytes) -> Mask:
        """Per row, whether its cell is ``text``."""
        if len(text) > self.matrix.shape[1]:
            return np.zeros(len(self.lengths), dtype=np.bool_)
        same: Mask = np.all(self.matrix[:, : len(text)] == np.frombuffer(text, np.uint8), axis=1)
        both: Mask = same & (self.lengths == len(text))
        return both


class CsvCells:
    """One block of Flux's annotation-free CSV (`,result,table,_time,_value` and perhaps more
    columns) as its bytes (``data``) and where its `_time` and `_value` cells start and stop
    in them (``time_spans``, ``value_spans``). Made only when every value is a finite decimal
    or integer (``_NUMBERS``) and the rows are plain (``parse``); it then stands for exactly
    what ``_parse_lists`` makes of ``text``.

    No Python object per point: the JSON response is assembled from these spans with numpy
    (``app.formats``), InfluxDB's texts copied as they are (issue 10, item 7).
    """

    __slots__ = ("_data", "_labels", "_make_data", "_make_text", "_order", "_ordered", "_text",
                 "integer", "pieces", "rendered", "table_ids", "time_spans",
                 "value_spans")  # fmt: skip

    def __init__(
        self,
        text: str | None,
        data: Bytes | Callable[[], Bytes],
        spans: tuple[tuple[Ints, Ints], tuple[Ints, Ints]],
        table_ids: frozenset[bytes],
        *,
        integer: bool,
    ) -> None:
        self._text, self.table_ids, self.integer = text, table_ids, integer
        # ``data``, or what makes it when first asked for (cells joined from pieces: their
        # JSON is made from the pieces' own bytes, so the whole is often never needed)
        self._data: Bytes | None = None if callable(data) else data
        self._make_data: Callable[[], Bytes] | None = data if callable(data) else None
        self.time_spans, self.value_spans = spans
        self._labels: Cells | None = None
        self._make_text: Callable[[], str] | None = None  # ``text``, when ``data`` is not it
        # Read while the answer arrived (``CsvReader``): the blocks of its header and each run
        # of its rows, in order, whose rows these cells are; and for a piece, the JSON of its
        # points as windows none of which is partial (``app.formats.prerender``).
        self.pieces: list[CsvCells] = []
        self.rendered: bytes | None = None
        self._ordered = False  # whether ``increasing`` was told (until a relabel) ...
        self._order: bool | None = None  # ... and what it was

    @property
    def data(self) -> Bytes:
        """The bytes the spans point into."""
        if self._data is None:
            assert self._make_data is not None
            self._data = self._make_data()
        return self._data

    @property
    def tables(self) -> int:
        return len(self.table_ids)

    @property
    def text(self) -> str:
        """The text of ``data`` (made when first asked for, by cells joined from pieces)."""
        if self._text is None:
            made = self._make_text
            self._text = self.data.tobytes().decode("ascii") if made is None else made()
        return self._text

    def __len__(self) -> int:
        return len(self.value_spans[0])

    @classmethod
    def parse(cls, text: str, *, integer: bool = False) -> CsvCells | None:
        """The cells of a single block: rows of the header's width, each with an empty first
        cell and a `result` other than `result` (a second block's header), lines ended by
        `\\n` or `\\r\\n`, nothing but printable ASCII in them, and a finite number in every
        `_value`; None for anything else (``_parse_lists`` reads it as before)."""
        if not text.isascii():
            return None
        return cls.of_ascii(text.encode("ascii"), text, integer=integer)

    @classmethod
    def of_ascii(cls, raw: bytes, text: str | None, *, integer: bool) -> CsvCells | None:
        """``parse`` of text already known to be ASCII, as its bytes (``text``: the same as a
        string, when there is one)."""
        usual = _usual_rows(raw)
        if usual is not None:  # the same cells as below, found in fewer steps
            data, time_spans, value_spans, labels = usual
            if not _finite_numbers(Cells.of(data, *value_spans, _DIGIT)):
                return None
            cells = cls(text, data, (time_spans, value_spans), _TABLE_0, integer=integer)
            cells._labels = labels
            return cells
        block = _block(raw, {"_time", "_value", "table"})
        if block is None:
            return None
        names, data, grid = block

        def spans(name: str) -> tuple[Ints, Ints]:
            return _column(names, grid, name)

        if _any_cell(raw, *spans("result"), b"result"):
            return None  # a header: a second block
        if not _finite_numbers(Cells.of(data, *spans("_value"), _DIGIT)):
            return None
        tables = _distinct(data, *spans("table"))
        return cls(text, data, (spans("_time"), spans("_value")), tables, integer=integer)

    @classmethod
    def of_rows(
        cls,
        data: Bytes,
        labels: Bytes,
        spans: tuple[tuple[Ints, Ints], tuple[Ints, Ints]],
        flux_text: Callable[[], str],
        *,
        integer: bool,
    ) -> CsvCells | None:
        """The rows of another CSV read as one block of Flux's (``app.influxql_csv``): their
        bytes ``data``, where their time and value cells are in them (``spans``), the labels
        Flux writes for their instants (a matrix, each of its width), and ``flux_text``, which
        makes Flux's text of them when something asks for ``text``. None when a value is not
        a finite number (``parse`` makes no cells of such a block either)."""
        if not _finite_numbers(Cells.of(data, *spans[1], _DIGIT)):
            return None
        cells = cls(None, data, spans, frozenset({b"0"}), integer=integer)
        cells._labels = Cells(labels, np.full(len(labels), labels.shape[1]), None)
        cells._make_text = flux_text
        return cells

    @classmethod
    def _stacked(
        cls, data: Bytes, blocks: Sequence[CsvCells], shifts: list[int], *, integer: bool
    ) -> CsvCells:
        """Cells over ``data`` whose rows are those of ``blocks`` in order, each block's cells
        found in ``data`` ``shifts[i]`` bytes further than in its own."""

        def shifted(spans: list[tuple[Ints, Ints]]) -> tuple[Ints, Ints]:
            return (
                np.concatenate([a + k for (a, _), k in zip(spans, shifts, strict=True)]),
                np.concatenate([b + k for (_, b), k in zip(spans, shifts, strict=True)]),
            )

        return cls(
            None,
            data,
            (shifted([b.time_spans for b in blocks]), shifted([b.value_spans for b in blocks])),
            frozenset().union(*(b.table_ids for b in blocks)),
            integer=integer,
        )

    @classmethod
    def joined(
        cls, raw: Callable[[], bytes], pieces: list[tuple[Spans, CsvCells]], *, integer: bool
    ) -> CsvCells:
        """The cells of the text ``raw`` makes (ASCII; made if something reads ``data``) from
        ``pieces`` that read all of its rows: each the block of the header and a run of the
        rows, with its cells' spans (time's start and stop, then value's) moved to where they
        are in that text (``CsvReader``, as each piece was read)."""
        cells = [c for _, c in pieces]
        placed = zip(*(k for k, _ in pieces), strict=True)
        ta, tb, va, vb = (np.concatenate(column) for column in placed)
        tables = frozenset().union(*(c.table_ids for c in cells))

        def data() -> Bytes:
            return np.frombuffer(raw(), dtype=np.uint8)

        whole = cls(None, data, ((ta, tb), (va, vb)), tables, integer=integer)
        whole.pieces = cells
        whole._labels = _stacked_labels([c._labels for c in cells])  # those read so far
        return whole

    @classmethod
    def concat(cls, blocks: Sequence[CsvCells]) -> CsvCells:
        """The rows of ``blocks`` (of one kind: ``integer``), in order, as one block: their
        bytes copied once, their labels stacked when all are of one width, their pieces (or
        they themselves) as its pieces when any was read in pieces. Its text, made when
        something asks for it, is their rows under one header when all have the same header,
        else the blocks one after the other (``_parse_lists`` reads either)."""
        shifts = np.cumsum([0] + [len(b.data) for b in blocks[:-1]]).tolist()
        data = np.concatenate([b.data for b in blocks])
        whole = cls._stacked(data, blocks, shifts, integer=blocks[0].integer)
        whole._labels = _stacked_labels([b.labels() for b in blocks])
        if any(b.pieces for b in blocks):
            whole.pieces = [piece for b in blocks for piece in (b.pieces or [b])]
        whole._make_text = lambda: _blocks_text([b.text for b in blocks])
        return whole

    def labels(self) -> Cells:
        """The `_time` cells (padded with `0`, which a label may hold: ``pad`` tells)."""
        if self._labels is None:
            self._labels = Cells.of(self.data, *self.time_spans, _DIGIT)
        return self._labels

    def relabel_first(self, old: str, new: str) -> bool:
        """The first label, ``old``, read as ``new`` from now on by everything that reads these
        cells: their labels, their first piece's JSON and their text. False, with nothing
        changed, unless the first label is ``old`` and every label is as long as ``new``."""
        if not len(self) or len(old) != len(new) or not (old + new).isascii():
            return False
        labels = self.labels()
        if labels.pad is not None or labels.matrix.shape[1] != len(new):
            return False
        if not labels.matrix.flags.writeable:  # (bytes of a read-only buffer: never made so)
            return False
        if labels.matrix[0].tobytes() != old.encode():
            return False
        if self.pieces and not self.pieces[0].relabel_first(old, new):
            return False
        labels.matrix[0] = np.frombuffer(new.encode(), dtype=np.uint8)
        self.rendered = None  # (made with the old label)
        self._ordered = False  # (told of the old label)
        text, made = self._text, self._make_text

        def relabelled() -> str:
            whole = text if text is not None else made() if made else self.data.tobytes().decode()
            at = whole.index(old)  # the first row's: the header holds no label
            return whole[:at] + new + whole[at + len(old) :]

        self._text, self._make_text = None, relabelled
        return True

    def arrays(self) -> tuple[Ints, Floats] | None:
        """The instants (nanoseconds since the epoch) and the values as arrays, read from the
        bytes: labels of whole seconds (`YYYY-MM-DDTHH:MM:SSZ`) and values of at most 15
        digits, each exactly what ``float`` makes of its text (``_decimals``); None when a
        label is another shape (its instant is read from the text then)."""
        labels = self.labels()
        if labels.pad is not None or labels.matrix.shape[1] != 20 or not len(self):
            return None
        seconds = _label_seconds(labels.matrix)
        if seconds is None:
            return None
        texts = Cells.of(self.data, *self.value_spans, _DIGIT)
        return seconds * 1_000_000_000, _decimals(texts, self.data, self.value_spans)

    def increasing(self) -> bool | None:
        """Whether the labels strictly increase, when all have 20 bytes (then they compare
        as bytes, as ``strictly_increasing`` compares them as strings); else None. Told once
        (a relabel asks again). Cells read in pieces are told from their pieces, each told
        while the rest of the answer arrived (``CsvReader``), and the seams between them."""
        if not self._ordered:
            told = self._seams_increasing() if self.pieces else None
            self._order = self._labels_increasing() if told is None else told
            self._ordered = True
        return self._order

    def _seams_increasing(self) -> bool | None:
        """``increasing`` from the pieces (each of them in order, and each one's last label
        before the next one's first); None when a piece's labels are not all of 20 bytes."""
        pieces = [p for p in self.pieces if len(p)]
        ends = []
        for piece in pieces:
            labels = piece.labels()
            if labels.pad is not None or labels.matrix.shape[1] != 20:
                return None
            if not piece.increasing():
                return False
            ends.append((labels.matrix[0].tobytes(), labels.matrix[-1].tobytes()))
        return all(last < first for (_, last), (first, _) in itertools.pairwise(ends))

    def _labels_increasing(self) -> bool | None:
        if len(self) < 2:
            return True
        labels = self.labels()
        if labels.pad is not None or labels.matrix.shape[1] != 20:
            return None
        a, b, c = _label_numbers(labels.matrix)
        later = (a[1:] > a[:-1]) | (
            (a[1:] == a[:-1]) & ((b[1:] > b[:-1]) | ((b[1:] == b[:-1]) & (c[1:] > c[:-1])))
        )
        return bool(np.all(later))


# Rows of an answer are read in pieces of at least this many bytes while the rest arrives. Each
# piece has a fixed cost of its own (a few dozen numpy calls): 128 kB reads a day at 30 s (2,880
# windows, 118 kB) once, not as 64 kB and the rest (0.87 ms against 1.23 ms, 0.6 ms less of the
# API's CPU per request), and a year at 15 m (2.7 MB) still in 21 pieces while it arrives.
PIECE_BYTES = 128 * 1024


class CsvReader:
    """Flux's CSV answer read while it arrives (issue 10, item 7). InfluxDB sends a large
    answer over about as long as it took to start it (a year at 15 m: the first byte after
    10 ms, the last after 22): each time ``piece_bytes`` of whole rows are in, they are read as
    a block of their own (the header and those rows: ``CsvCells``) and handed to ``on_piece``
    (which makes their JSON), so that little is left to do after the last byte.

    ``points`` is exactly ``parse_flux_csv`` of the whole text: the pieces joined into the
    ``CsvCells`` of the whole when every row was read so (one plain block: every check of
    ``CsvCells.parse`` is one of a row, or of its table id, whose set is the union of the
    pieces'), else the whole text read by ``parse_flux_csv``. An answer smaller than a piece
    is read whole, as before."""

    def __init__(
        self,
        *,
        integer: bool = False,
        on_piece: Callable[[CsvCells], None] | None = None,
        piece_bytes: int | None = None,
    ) -> None:
        self._integer, self._on_piece = integer, on_piece
        self._piece_bytes = PIECE_BYTES if piece_bytes is None else piece_bytes
        # The answer's chunks, joined once when it is whole: a buffer grown by each chunk
        # while the pieces' arrays are made is copied whole each time it outgrows its room
        # (0.3 to 0.7 ms of reading a year at 15 m, 13 ms).
        self._chunks: list[bytes] = []
        self._tail = bytearray()  # the bytes after those read (the header and pieces' rows)
        self._head = b""  # the header line, with its line end
        self._read = 0  # bytes of the answer read (the header and the pieces' rows)
        self._pieces: list[tuple[Spans, CsvCells]] = []  # with spans placed in the whole
        self._failed = False  # a piece that is not plain: the whole text is read at the end

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the answer."""
        self._chunks.append(chunk)
        if self._failed:
            return
        self._tail += chunk
        if not self._head:
            cut = self._tail.find(b"\n")
            if cut < 0:
                return
            self._head, self._read = bytes(self._tail[: cut + 1]), cut + 1
            del self._tail[: cut + 1]
        if len(self._tail) >= self._piece_bytes:
            last = self._tail.rfind(b"\n")
            if last >= 0:
                self._piece(last + 1)

    def _piece(self, end: int) -> None:
        """The first ``end`` bytes of the tail read as a block."""
        rows = bytes(self._tail[:end])
        if end < len(self._tail) and rows.endswith((b"\n\n", b"\n\r\n")):
            self._failed = True  # a blank line before more rows: not one block
            return
        raw = self._head + rows
        cells = CsvCells.of_ascii(raw, None, integer=self._integer) if raw.isascii() else None
        if cells is None:
            self._failed = True
            return
        if self._on_piece is not None:
            self._on_piece(cells)
        cells.increasing()  # told now, while the rest arrives (``CsvCells._seams_increasing``)
        shift = self._read - len(self._head)  # a place in the piece plus it: one in the whole
        placed = tuple(a + shift for a in (*cells.time_spans, *cells.value_spans))
        self._pieces.append((placed, cells))
        self._read += end
        del self._tail[:end]  # from the front of a bytearray: no copy of the rest

    def points(self) -> Points:
        """The whole answer's points (``parse_flux_csv``); InfluxRejected as it raises. The
        reader takes no more bytes after it."""
        chunks = self._chunks
        if self._pieces and not self._failed:
            if self._tail.strip(b"\r\n"):
                self._piece(len(self._tail))
            if not self._failed:  # every byte ASCII, as read: the cells are its bytes
                cells = CsvCells.joined(
                    lambda: b"".join(chunks), self._pieces, integer=self._integer
                )
                return Points.of_cells(cells)
        return parse_flux_csv(b"".join(chunks).decode("utf-8"), integer=self._integer)


def _stacked_labels(labels: list[Cells | None]) -> Cells | None:
    """Label cells of several blocks as one, when every block's were read and all are of one
    width; else None (read from the bytes when asked for)."""
    widths = {None if got is None or got.pad is not None else got.matrix.shape[1]
              for got in labels}  # fmt: skip
    if len(widths) != 1 or None in widths:
        return None
    read = [got for got in labels if got is not None]
    return Cells(
        np.vstack([g.matrix for g in read]), np.concatenate([g.lengths for g in read]), None
    )


def _blocks_text(texts: list[str]) -> str:
    """Blocks of Flux's CSV as one text: their rows under the first's header when all have
    the same header, else the blocks one after the other, a blank line after each."""
    heads = [t.partition("\n")[0] for t in texts]
    if len(set(heads)) == 1:
        end = "\r\n" if heads[0].endswith("\r") else "\n"
        rows = (t.partition("\n")[2].rstrip("\r\n") for t in texts)
        return heads[0] + "\n" + "".join(r + end for r in rows if r)
    return "".join(t.rstrip("\r\n") + "\r\n\r\n" for t in texts)


def _any_cell(raw: bytes, start: Ints, stop: Ints, text: bytes) -> bool:
    """Whether any of the cells ``raw[start[i]:stop[i]]`` is ``text`` (those as long first)."""
    same_length = start[stop - start == len(text)]
    return any(raw[at : at + len(text)] == text for at in same_length.tolist())


def _distinct(data: Bytes, start: Ints, stop: Ints) -> frozenset[bytes]:
    """The different cells ``data[start[i]:stop[i]]``."""
    if not len(start):
        return frozenset()
    if np.all(stop - start == 1):  # the usual table ids: 0, 1, ...
        return frozenset(bytes([b]) for b in np.unique(data[start]).tolist())
    matrix = Cells.of(data, start, stop, 0).matrix  # zeros after each: no cell holds one
    if not np.any(matrix != matrix[0]):
        rows = matrix[:1]
    else:
        rows = (
            np.unique(matrix.view(f"V{matrix.shape[1]}"))
            .view(np.uint8)
            .reshape(-1, matrix.shape[1])
        )
    return frozenset(row.tobytes().rstrip(b"\0") for row in rows)


# 20 bytes as three unsigned big-endian numbers: they order as the bytes do.
_LABEL_NUMBERS = np.dtype([("a", ">u8"), ("b", ">u8"), ("c", ">u4")])


def _label_numbers(labels: Bytes) -> tuple[Ints, Ints, Ints]:
    """Labels of 20 bytes, one a row, as three numbers each that order as the bytes do."""
    whole = labels.view(_LABEL_NUMBERS).ravel()
    return whole["a"], whole["b"], whole["c"]


def _separators(data: Bytes, begin: int, end: int, width: int) -> tuple[Ints, Ints] | None:
    """Where each cell of ``data[begin:end]`` ends (rows of ``width`` cells; the comma or the
    `\\n` after it, ``end`` for the last), as a (rows, width) matrix, and per row 1 when its
    line ends in `\\r\\n`; None when the rows are not plain (a blank line, a row of another
    width, a first cell that is not empty, a byte below `-` other than `,`, `\\r` and `\\n`
    such as a space or a quote, a `\\r` not before a `\\n`, or DEL)."""
    body = data[begin:end]
    if not len(body) or body.max() > 0x7E:
        return None
    low = np.flatnonzero(body < _MINUS)  # separators, and whatever else needs a look
    kinds = body[low]
    returns = kinds == _CR
    if np.any((kinds != _COMMA) & (kinds != _LF) & ~returns):
        return None
    lines = np.flatnonzero(returns)
    if len(lines):
        after = lines + 1  # what follows each `\r`: `\n`, or it is in a cell
        if after[-1] == len(low) or np.any(kinds[after] != _LF):
            return None
        if np.any(low[after] != low[lines] + 1):
            return None
    seps = low[~returns]
    newline = kinds[~returns] == _LF
    if (len(seps) + 1) % width:
        return None
    ends_line = np.append(newline, True).reshape(-1, width)
    if not np.all(ends_line[:, -1]) or np.any(ends_line[:, :-1]):
        return None
    grid = (np.append(seps, len(body)) + begin).reshape(-1, width)
    starts = np.concatenate(([begin], grid[:-1, -1] + 1))
    if np.any(grid[:, 0] != starts):  # the first cell: empty
        return None
    crlf = (data[grid[:, -1] - 1] == _CR).astype(np.int64)
    return grid, crlf


_DASH, _T, _COLON, _Z = 0x2D, 0x54, 0x3A, 0x5A
_TENS = np.array([_DIGIT + k // 10 for k in range(100)], dtype=np.uint8)  # of 0..99, in ASCII
_ONES = np.array([_DIGIT + k % 10 for k in range(100)], dtype=np.uint8)


def utc_labels(seconds: Ints) -> Bytes:
    """Instants of whole seconds since the epoch, from the year 0 to 9999, as the rows of a
    matrix of their RFC 3339 texts in UTC (`2021-05-01T00:00:30Z`, 20 bytes). Arithmetic on
    the column, each byte of the text a row of the transposed matrix: numpy's
    ``datetime_as_string`` and the bytes of its strings take 30 times as long. The date is made
    once per run of instants on one day (``civil_dates``)."""
    n = len(seconds)
    days, clock = np.divmod(seconds, 86_400)
    rows = np.empty((20, n), dtype=np.uint8)
    if n:
        new_day = np.empty(n, dtype=np.bool_)
        new_day[0], new_day[1:] = True, days[1:] != days[:-1]
        rows[:11] = civil_dates(days[new_day])[:, np.cumsum(new_day) - 1]
    hour, rest = np.divmod(clock, 3_600)
    minute, second = np.divmod(rest, 60)
    for at, number in ((11, hour), (14, minute), (17, second)):
        rows[at], rows[at + 1] = _TENS[number], _ONES[number]
    rows[13], rows[16], rows[19] = _COLON, _COLON, _Z
    return rows.T.copy()


def civil_dates(days: Ints) -> Bytes:
    """Days since the epoch as the columns of a matrix of `YYYY-MM-DDT` (11 rows), by
    H. Hinnant's `civil_from_days` (the proleptic Gregorian calendar, years 0 to 9999)."""
    era, day_of_era = np.divmod(days + 719_468, 146_097)
    year_of_era = (
        day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    march_month = (5 * day_of_year + 2) // 153  # 0: March ... 11: February
    day = day_of_year - (153 * march_month + 2) // 5 + 1
    month = np.where(march_month < 10, march_month + 3, march_month - 9)
    century, year = np.divmod(year_of_era + era * 400 + (month <= 2), 100)
    rows = np.empty((11, len(days)), dtype=np.uint8)
    for at, number in ((0, century), (2, year), (5, month), (8, day)):
        rows[at], rows[at + 1] = _TENS[number], _ONES[number]
    rows[4], rows[7], rows[10] = _DASH, _DASH, _T
    return rows


# `YYYY-MM-DDTHH:MM:SSZ`: where its digits are, and the byte between the fields.
_DATE_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9])
_LABEL_MARKS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":"), 19: ord("Z")}


def _label_seconds(matrix: Bytes) -> Ints | None:
    """Labels of 20 bytes, one a row, as seconds since the epoch (the proleptic Gregorian days
    of Howard Hinnant's days_from_civil); None when one is not `YYYY-MM-DDTHH:MM:SSZ` with a
    valid month, day, hour, minute and second. The date is read once per run of labels with
    the same date bytes (a day of 1 s points is one run), the clock of every label."""
    if any(np.any(matrix[:, j] != mark) for j, mark in _LABEL_MARKS.items()):
        return None
    n = len(matrix)
    if not n:
        return np.zeros(0, dtype=np.int64)
    dates = np.ascontiguousarray(matrix[:, :10]).view(np.dtype("V10")).ravel()
    new_day = np.empty(n, dtype=np.bool_)
    new_day[0], new_day[1:] = True, dates[1:] != dates[:-1]
    days = _label_days(matrix[new_day])
    clock = _label_clock(matrix)
    if days is None or clock is None:
        return None
    # (digits all: tens of minutes and seconds up to 5, hours up to 23)
    if np.any(matrix[:, _CLOCK_TENS] > ord("5")) or np.any(clock >= _DAY_SECONDS):
        return None
    seconds: Ints = days[np.cumsum(new_day) - 1] * _DAY_SECONDS + clock
    return seconds


def _label_days(matrix: Bytes) -> Ints | None:
    """The dates of labels of 20 bytes (their marks checked) as days since the epoch; None
    when one is not a valid `YYYY-MM-DD`."""
    digits = matrix[:, _DATE_DIGITS].astype(np.int64) - _DIGIT
    if np.any((digits < 0) | (digits > 9)):
        return None
    d = digits
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    if np.any((month < 1) | (month > 12) | (day < 1)):
        return None
    if np.any(day > _month_days(year, month)):
        return None
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days: Ints = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days


_DAY_SECONDS = 86_400
# `HH`, `MM` and `SS` of `YYYY-MM-DDTHH:MM:SSZ`, and what each digit is worth in seconds.
_CLOCK_DIGITS = np.array([11, 12, 14, 15, 17, 18])
_CLOCK_TENS = np.array([14, 17])  # the tens of the minutes and of the seconds
_CLOCK_WORTH = np.array([36000, 3600, 600, 60, 10, 1], dtype=np.int64)


def _label_clock(matrix: Bytes) -> Ints | None:
    """Labels of 20 bytes, one a row, as seconds since their day's midnight (UTC); None when
    one of those six bytes is not a digit."""
    digits = matrix[:, _CLOCK_DIGITS] - np.uint8(_DIGIT)  # (a byte below `0` wraps past 9)
    if np.any(digits > 9):
        return None
    clock: Ints = digits @ _CLOCK_WORTH
    return clock


def _month_days(year: Ints, month: Ints) -> Ints:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days: Ints = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month - 1] + (
        leap & (month == 2)
    )
    return days


# An integer of at most this many digits is exact in a float64 (below 2**53); so is every power
# of ten up to 10**22.
_EXACT_DIGITS = 15
_POWERS_OF_TEN = np.array([float(10**k) for k in range(23)])


def _long_powers() -> npt.NDArray[np.longdouble]:
    """10**0 to 10**27 in long double, each made by exact multiplications (5**27 < 2**63)."""
    powers = np.ones(28, dtype=np.longdouble)
    for k in range(1, 28):
        powers[k] = powers[k - 1] * 10
    return powers


# Long double is IEEE's 80-bit extended on x86-64 (a 64-bit significand) and binary128 on
# aarch64 Linux (113 bits); elsewhere (a double on Windows, IBM's double-double on POWER, which
# does not round as IEEE does) ``_rounded_once`` is not used.
_LONG_DOUBLE = np.finfo(np.longdouble).nmant in (63, 112)
_LONG_POWERS = _long_powers()
# Digits are taken while the integer is below this: one more keeps it below 10**18 < 2**63.
_TAKE_BELOW = 10**17


def _decimals(cells: Cells, data: Bytes, spans: tuple[Ints, Ints]) -> Floats:
    """Finite decimals (``_finite_numbers``, padded with `0`) as floats, each exactly what
    ``float`` makes of its text. Its digits as an integer below 2**53 divided by a power of ten
    up to 10**22, both exact, is the correctly rounded value (Clinger's fast path of strtod).
    An integer of up to 18 digits over a power up to 10**27 (a float's 17 digits: a tier's
    sums and m2) is divided in long double, both exact there (``_rounded_once``). Cells of more
    digits, and the rare quotient that lands on a midpoint between two doubles, are read by
    numpy's conversion of text, correctly rounded as ``float``'s, all at once."""
    matrix, lengths = cells.matrix, cells.lengths
    width, n = matrix.shape[1], len(lengths)
    mantissa = np.zeros(n, dtype=np.int64)
    after = np.zeros(n, dtype=np.int64)  # digits taken after the dot
    dotted = np.zeros(n, dtype=np.bool_)
    dropped = np.zeros(n, dtype=np.bool_)  # a digit not taken: the integer would not fit
    for j in range(width):
        column = matrix[:, j]
        real = j < lengths
        digit = real & (column != _DOT) & (column != _MINUS)
        take = digit & (mantissa < _TAKE_BELOW)
        mantissa = np.where(take, mantissa * 10 + (column.astype(np.int64) - _DIGIT), mantissa)
        dropped |= digit & ~take
        after += take & dotted
        dotted |= real & (column == _DOT)
    exact = ~dropped & (mantissa <= 2**53) & (after < len(_POWERS_OF_TEN))
    values: Floats = mantissa / _POWERS_OF_TEN[np.minimum(after, len(_POWERS_OF_TEN) - 1)]
    rest = np.flatnonzero(~exact)
    if len(rest) and _LONG_DOUBLE:
        once = ~dropped[rest] & (after[rest] < len(_LONG_POWERS))
        values[rest[once]], good = _rounded_once(mantissa[rest[once]], after[rest[once]])
        rest = np.concatenate((rest[~once], rest[once][~good]))
    values[matrix[:, 0] == _MINUS] *= -1
    if len(rest):  # read by numpy's own conversion of text, as exact as ``float``: all at once
        texts = Cells.of(data, spans[0][rest], spans[1][rest], 0).matrix
        values[rest] = texts.view(f"S{texts.shape[1]}").ravel().astype(np.float64)
    return values


def _rounded_once(mantissa: Ints, after: Ints) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """``mantissa / 10**after`` as the correctly rounded double, and where it is. The integer
    (below 2**63) and the power (up to 10**27) are exact in long double, so their quotient there
    is rounded once; rounding that to a double again gives the correctly rounded double unless
    the long double quotient is itself a midpoint between two doubles (a midpoint strictly
    between the true quotient and its rounding would be a nearer long double): those are marked
    not good, for the caller to read otherwise."""
    quotient = mantissa.astype(np.longdouble) / _LONG_POWERS[after]
    rounded = quotient.astype(np.float64)
    residue = quotient - rounded.astype(np.longdouble)  # exact: both near each other
    toward = np.nextafter(rounded, np.where(residue > 0, np.inf, -np.inf))
    half = (toward.astype(np.longdouble) - rounded.astype(np.longdouble)) / 2
    return rounded, (residue == 0) | (residue != half)


def _finite_numbers(cells: Cells) -> bool:
    """Whether every cell is a number of ``_NUMBERS``: `-?[0-9]+(\\.[0-9]+)?` (cells padded
    with `0`). The signs and dots are found in the flat matrix, a few per row at most."""
    matrix, lengths = cells.matrix, cells.lengths
    if not len(lengths) or lengths.min() < 1:
        return False
    if np.any(matrix - np.uint8(_MINUS) > 12) or np.any(matrix == _SLASH):
        return False  # a byte other than a digit, `.` and `-`
    width = matrix.shape[1]
    signs = np.flatnonzero(matrix == _MINUS)
    if np.any(signs % width) or np.any(lengths[signs // width] < 2):
        return False  # a sign after the first byte, or nothing after it
    signed = np.zeros(len(lengths), dtype=np.bool_)
    signed[signs // width] = True
    row, place = np.divmod(np.flatnonzero(matrix == _DOT), width)
    if np.any(row[1:] == row[:-1]):
        return False  # two dots
    # a digit before the dot (the bytes before it are digits but for the sign) and after it
    return not (np.any(place <= signed[row]) or np.any(place >= lengths[row] - 1))


# Below this size the comprehensions win; above it pandas' C reader is several times faster.
PANDAS_FROM_BYTES = 400_000


def _parse_with_pandas(text: str, names: list[str], integer: bool) -> Points:
    """One block of rows through pandas' C CSV reader; empty values become NaN, i.e. null."""
    if not {"_time", "_value", "table"} <= set(names):
        raise InfluxRejected("unexpected result columns from InfluxDB")
    frame = pd.read_csv(
        io.StringIO(text),
        usecols=["table", "_time", "_value"],
        dtype={"table": str, "_time": str, "_value": "Int64" if integer else "float64"},
        engine="c",
    )
    values = frame["_value"]
    as_list: list[Value] = (
        [None if pd.isna(v) else int(v) for v in values] if integer else values.tolist()
    )
    return Points(frame["_time"].tolist(), as_list, int(frame["table"].nunique()))


def strictly_increasing(times: list[str]) -> bool:
    """Whether the labels are in strictly increasing time order (one Flux table's rows are).

    `keep()` drops the tags that told Flux's tables apart, so rows of several tag sets arrive as
    one table; their labels then restart or repeat, which this detects.
    """
    if sum(map(len, times)) == 20 * len(times):  # all whole seconds: compare the strings
        # one pass of C-level comparisons (a sort and a set cost twice as much per point)
        return all(map(operator.lt, times, itertools.islice(times, 1, None)))
    instants = [to_instant(t) for t in times]
    return all(a < b for a, b in itertools.pairwise(instants))


def to_instant(text: str) -> datetime:
    """An RFC 3339 UTC label as InfluxDB writes it, to a datetime."""
    if len(text) > 27:  # nanoseconds: Python keeps microseconds
        text = text[:26] + "Z"
    return datetime.fromisoformat(text).astimezone(UTC)


def fill_linear(points: Points) -> Points:
    """Nulls between two values interpolated in time; leading and trailing nulls stay null.
    NaN (a window with points and no value: the standard deviation of one point) is neither
    filled nor a value to interpolate from, as Flux's `fill` leaves it."""
    values = points.values
    known = [i for i, v in enumerate(values) if v is not None and not _nan(v)]
    if len(known) < 2 or len(known) == len(values):
        return points
    seconds = [to_instant(t).timestamp() for t in points.times]
    filled: list[Value] = list(values)
    for left, right in itertools.pairwise(known):
        if right - left < 2:
            continue
        v0, v1 = float(values[left] or 0), float(values[right] or 0)
        t0, t1 = seconds[left], seconds[right]
        for i in range(left + 1, right):
            if filled[i] is None:
                filled[i] = v0 + (v1 - v0) * (seconds[i] - t0) / (t1 - t0)
    return Points(points.times, filled, points.tables)


def align(columns: list[Points]) -> tuple[list[str], list[list[Value]]]:
    """Several series on one time axis: every label any series has, null where one lacks it."""
    labels: set[str] = set()
    for col in columns:
        labels.update(col.times)
    # Labels of whole seconds sort as strings; anything finer is compared as instants.
    whole = all(len(t) == 20 for t in labels)
    axis = sorted(labels) if whole else sorted(labels, key=to_instant)
    index = {t: i for i, t in enumerate(axis)}
    rows: list[list[Value]] = [[None] * len(columns) for _ in axis]
    for j, col in enumerate(columns):
        for t, v in zip(col.times, col.values, strict=True):
            rows[index[t]][j] = v
    return axis, rows


def _nan(v: float | int) -> bool:
    return isinstance(v, float) and math.isnan(v)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def compose_windows(
    starts: Ints,
    labels: list[str],
    times: list[str],
    values: list[Value],
    agg: str,
    counts: list[Value] | None = None,
) -> Points:
    """Windows starting at ``starts`` (microseconds since the epoch; labelled ``labels``) from
    per-grain aggregates at ``times``, grains nesting inside the windows. For ``mean``,
    ``values`` are grain sums and ``counts`` grain counts. Windows without a grain are left out
    (fills come after)."""
    edges = starts.tolist()
    acc: dict[int, list[float | int]] = {}
    for n, (t, v) in enumerate(zip(times, values, strict=True)):
        if v is None:
            continue
        w = bisect.bisect_right(edges, (to_instant(t) - _EPOCH) // _MICROSECOND) - 1
        if w < 0:
            continue
        got = acc.get(w)
        if agg == "mean":
            c = counts[n] if counts is not None else None
            if not c:
                continue
            acc[w] = [got[0] + v, got[1] + c] if got else [v, c]
        elif got is None:
            acc[w] = [v]
        elif agg in ("sum", "count"):
            got[0] += v
        elif agg == "min":
            got[0] = min(got[0], v)
        elif agg == "max":
            got[0] = max(got[0], v)
        elif agg == "last":
            got[0] = v
        # first: the earliest grain already holds it
    out = Points()
    for w in sorted(acc):
        out.times.append(labels[w])
        parts = acc[w]
        out.values.append(parts[0] / parts[1] if agg == "mean" else parts[0])
    out.tables = 1
    return out


def fill_windows(points: Points, labels: list[str], fill: str, agg: str) -> Points:
    """Every window in ``labels``: empty ones null (count: 0), or the previous value, or
    interpolated, as Flux's createEmpty and fill would make them. A NaN (a window with points
    and no value) is a value to `fill`: kept, and the previous one of the empty windows after
    it."""
    if fill == "none":
        return points
    have = dict(zip(points.times, points.values, strict=True))
    empty: Value = 0 if agg == "count" else None
    values: list[Value] = [have.get(t, empty) for t in labels]
    if fill == "previous":
        last: Value = None
        for i, v in enumerate(values):
            if v is None:
                values[i] = last
            else:
                last = v
    filled = Points(list(labels), values, points.tables)
    return fill_linear(filled) if fill == "linear" else filled


def combine_keys(points: Points, agg: str) -> Points | None:
    """Rows of several tag sets under one name as one series: per label the sum (``sum``,
    ``count``), the minimum or the maximum of the tag sets' values, in time order. None for
    ``first``/``last`` when two tag sets share a label: which value came first in the window is
    not in the rows (the caller reads the raw points instead)."""
    if points.increasing():
        if points.tables <= 1:
            return points
        if None not in points.values:  # no label twice, none to leave out: as they are
            return Points(points.times, points.values, 1)
    acc: dict[str, float | int] = {}
    for t, v in zip(points.times, points.values, strict=True):
        if v is None:
            continue
        got = acc.get(t)
        if got is None:
            acc[t] = v
        elif agg in ("sum", "count"):
            acc[t] = got + v
        elif agg == "min":
            acc[t] = min(got, v)
        elif agg == "max":
            acc[t] = max(got, v)
        else:
            return None
    whole = all(len(t) == 20 for t in acc)
    times = sorted(acc) if whole else sorted(acc, key=to_instant)
    return Points(times, [acc[t] for t in times], 1)


def divide(sums: Points, counts: Points) -> Points:
    """Means of the windows both columns hold: sum / count."""
    if sums.times == counts.times:
        pairs = zip(sums.values, counts.values, strict=True)
        return Points(list(sums.times), [s / c if s is not None and c else None for s, c in pairs])
    by_time = dict(zip(counts.times, counts.values, strict=True))
    times: list[str] = []
    values: list[Value] = []
    for t, s in zip(sums.times, sums.values, strict=True):
        c = by_time.get(t)
        if s is not None and c:
            times.append(t)
            values.append(s / c)
    return Points(times, values)


@dataclass
class TierRows:
    """Rows of a tier bucket (several tag sets possibly interleaved): a window's start, and
    its count, sum and m2."""

    times: list[str] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    sum: list[float] = field(default_factory=list)
    m2: list[float] = field(default_factory=list)


def parse_tier_rows(text: str) -> TierRows:
    """Flux's annotation-free CSV of pivoted tier rows (`_time`, `count`, `sum`, `m2`),
    block by block."""
    _refuse_errors(text)
    out = TierRows()
    index: list[int] | None = None
    for line in text.splitlines():
        if not line:
            continue
        cells = line.split(",")
        if line.startswith(",result,"):
            wanted = ("_time", "count", "sum", "m2")
            index = _columns(cells, wanted, "unexpected tier columns from InfluxDB")
            continue
        if index is None:
            raise InfluxRejected("unexpected result from InfluxDB")
        i_time, i_count, i_sum, i_m2 = index
        if not cells[i_count]:
            continue
        out.times.append(cells[i_time])
        out.count.append(int(cells[i_count]))
        out.sum.append(float(cells[i_sum]))
        out.m2.append(float(cells[i_m2]))
    return out


def tier_rows(text: str) -> TierRows | None:
    """Tier rows from Flux's CSV of their `count`, `sum` and `m2` fields unpivoted
    (``parse_fields``); None when they may not line up row for row: several tag sets (the
    fields' tables could pair one tag set's counts with another's sums), or a field missing
    from a row (read them pivoted then, ``parse_tier_rows``)."""
    got = parse_fields(text, {"count": int, "sum": float, "m2": float})
    count, total, m2 = got["count"], got["sum"], got["m2"]
    if count.tables > 3 or not count.times == total.times == m2.times:
        return None
    return TierRows(count.times, count.values, total.values, m2.values)  # type: ignore[arg-type]


def tier_arrays(text: str, *, sums: bool = True) -> tiers.Windows | None:
    """``tier_rows`` read with numpy (``field_arrays``): the `count`, `sum` and `m2` of each
    tier row (``start`` in seconds; min, max, first and last not read: zeros), the rows of
    several tag sets one after the other, each field's in the same order (``stddev_windows``
    merges the rows of a window). Without ``sums`` (what the tier's own windows need: each
    window one row), zeros for the sums, and None unless every window has one row: rows in
    strictly increasing time. None for any other answer, which ``tier_rows`` reads then (a
    month at 1 m: 130,000 cells)."""
    fields = field_arrays(text)
    names = {"count", "sum", "m2"} if sums else {"count", "m2"}
    if fields is None or fields.keys() != names:
        return None
    (start, count), (at_m2, m2) = fields["count"], fields["m2"]
    at_sum, total = fields["sum"] if sums else (start, np.zeros(len(start)))
    if not (np.array_equal(start, at_sum) and np.array_equal(start, at_m2)):
        return None
    if not sums and np.any(np.diff(start) <= 0):
        return None  # rows of several tag sets in a window: merged only with their sums
    whole = count.astype(np.int64)
    if np.any(whole != count):
        return None
    zeros = np.zeros(len(start))
    return tiers.Windows(
        start=start, count=whole, sum=total, min=zeros, max=zeros, first=zeros, last=zeros, m2=m2
    )


def field_arrays(text: str) -> dict[str, tuple[Ints, Floats]] | None:
    """Flux's annotation-free CSV of one tag set's fields (`_time`, `_value`, `_field` columns;
    a table per field, its rows together) as arrays per field: each row's instant in seconds
    since the epoch and its value, exactly as ``float`` reads its text (``_decimals``). None
    for anything else: a field in two runs (several tag sets), a label that is not whole
    seconds, a value that is not a finite decimal, a row that is not plain."""
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    heads = [0]  # where each block's header starts (a blank line before the next one)
    while (at := raw.find(b"\n,result,", heads[-1] + 1)) >= 0:
        heads.append(at + 1)
    out: dict[str, tuple[Ints, Floats]] = {}
    for a, b in itertools.pairwise([*heads, len(raw)]):
        runs = _field_runs(raw[a:b])
        if runs is None:
            return None
        for name, seconds, values in runs:
            if name in out:
                return None
            out[name] = seconds, values
    return out


def _field_runs(raw: bytes) -> list[tuple[str, Ints, Floats]] | None:
    """One block of ``field_arrays``: each run of rows of one field, its name, its instants
    and its values."""
    block = _block(raw, {"_time", "_value", "_field"})
    if block is None:
        return None
    names, data, grid = block
    labels = Cells.of(data, *_column(names, grid, "_time"), _DIGIT)
    if labels.pad is not None or labels.matrix.shape[1] != 20:
        return None
    seconds = _label_seconds(labels.matrix)
    at_values = _column(names, grid, "_value")
    texts = Cells.of(data, *at_values, _DIGIT)
    if seconds is None or not _finite_numbers(texts):
        return None
    values = _decimals(texts, data, at_values)
    starts, stops = _column(names, grid, "_field")
    fields = Cells.of(data, starts, stops, 0).matrix
    changes = np.flatnonzero(np.any(fields[1:] != fields[:-1], axis=1)) + 1
    bounds = [0, *changes.tolist(), len(fields)]
    return [
        (raw[starts[a] : stops[a]].decode(), seconds[a:b], values[a:b])
        for a, b in itertools.pairwise(bounds)
    ]


def _block(raw: bytes, wanted: set[str]) -> tuple[list[str], Bytes, tuple[Ints, Ints]] | None:
    """One block of Flux's CSV (its header, its rows, perhaps a blank line after them): the
    header's names, the bytes, and where each cell ends (``_separators``); None unless it is a
    header with the ``wanted`` columns over plain rows."""
    if not raw.startswith(b",result,"):
        return None
    cut = raw.find(b"\n")
    names = raw[: max(cut, 0)].decode().rstrip("\r").split(",")
    if cut < 0 or not wanted <= set(names):
        return None
    end = _rows_end(raw, cut + 1)
    data = np.frombuffer(raw, dtype=np.uint8)
    grid = _separators(data, cut + 1, end, len(names))
    return None if grid is None else (names, data, grid)


# Flux's usual answer to a plain read or a window of one series: one table, its rows
# `,_result,0,2021-05-01T00:15:00Z,49.99\r\n` (``_usual_rows``).
_USUAL_HEADS = (b",result,table,_time,_value\r\n", b",result,table,_time,_value\n")
_USUAL_ROW = b",_result,0,"
_USUAL_ROW_8 = int.from_bytes(_USUAL_ROW[:8], "little")
_USUAL_ROW_4 = int.from_bytes(_USUAL_ROW[7:], "little")
_LABEL_WIDTH = 20  # `2021-05-01T00:15:00Z`
_TABLE_0 = frozenset({b"0"})


def _unaligned(data: Bytes, dtype: str) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The number whose bytes start at each place of ``data`` (of the last few: none), as one
    array over it: a row's first bytes compared in one gather, not a byte matrix."""
    size = np.dtype(dtype).itemsize
    return np.ndarray((max(0, len(data) - size + 1),), dtype, data, 0, (1,))


def _usual_rows(
    raw: bytes,
) -> tuple[Bytes, tuple[Ints, Ints], tuple[Ints, Ints], Cells] | None:
    """``_block`` and the cells ``CsvCells.of_ascii`` reads from it, for Flux's usual answer
    only: the header `,result,table,_time,_value` and every row `,_result,0,` and a label of
    20 bytes from `-` to `~` (a comma, a space or a quote in it would be read otherwise), a
    comma, a value and the line's end. Its cells found from the line ends alone, in a third of
    ``_separators``' time on a piece of an answer: the bytes, the label and value spans, and
    the labels. None for anything else (``_block`` reads it), or a row too short to hold a
    value. Every cell is what ``_block`` finds: the prefix and the label hold no separator,
    and a value that holds one is not a number, which the caller refuses as ``_block``'s would
    be (it has five cells no more)."""
    head = next((h for h in _USUAL_HEADS if raw.startswith(h)), None)
    if head is None:
        return None
    end = _rows_end(raw, len(head))
    begin, data = len(head), np.frombuffer(raw, dtype=np.uint8)
    if end == begin:
        return None
    lines = np.flatnonzero(data[begin:end] == _LF) + begin
    starts = np.concatenate(([begin], lines + 1))
    stops = np.append(lines - (data[lines - 1] == _CR), end)  # before `\r\n`, `\n` or the end
    label_at = starts + len(_USUAL_ROW)
    value_at = label_at + _LABEL_WIDTH + 1
    if np.any(stops <= value_at):
        return None  # a blank line, a row shorter than its prefix and label, an empty value
    if np.any(_unaligned(data, "<u8")[starts] != _USUAL_ROW_8) or np.any(
        _unaligned(data, "<u4")[starts + 7] != _USUAL_ROW_4
    ):
        return None  # the prefix, as a number of its first 8 bytes and one of its last 4
    if np.any(data[value_at - 1] != _COMMA):
        return None
    labels = byte_windows(data, _LABEL_WIDTH)[label_at]
    if np.any(labels - np.uint8(_MINUS) > 0x7E - _MINUS):
        return None  # a byte below `-` (a separator, a space, a quote) or past `~`
    widths = np.full(len(starts), _LABEL_WIDTH)
    return (
        data,
        (label_at, label_at + _LABEL_WIDTH),
        (value_at, stops),
        Cells(labels, widths, None),
    )


def _rows_end(raw: bytes, begin: int) -> int:
    """Where a block's rows, from ``begin``, end: before the line ends after the last (the
    last row's own and the blank line after the block), never before ``begin``."""
    end = len(raw)
    while end > begin and raw[end - 1] in b"\r\n":
        end -= 1
    return end


def _column(names: list[str], grid: tuple[Ints, Ints], name: str) -> tuple[Ints, Ints]:
    """Where the cells of the column ``name`` start and stop, from ``_separators``' grid."""
    seps, returns = grid
    j = names.index(name)  # never 0: the first name is empty
    stop = seps[:, j] - returns if j == len(names) - 1 else seps[:, j]
    return seps[:, j - 1] + 1, stop


def stddev_windows(rows: TierRows | tiers.Windows, starts: Ints, labels: list[str]) -> Points:
    """The sample standard deviation of the windows starting at ``starts`` (microseconds since
    the epoch; labelled ``labels``) from tier rows inside them (as lists, or as arrays:
    ``tier_arrays``), merged exactly (``gridts.tiers.merge``: Chan's formula for m2, whatever
    the tag sets or the order of the rows). A window of one point has none: NaN, as Flux's (null
    in every format, and no fill fills it); windows without rows are left out (fills come
    after)."""
    parts = rows if isinstance(rows, tiers.Windows) else tier_windows_of(rows)
    if not len(parts):
        return Points(tables=1)
    keys = np.searchsorted(starts, parts.start * 1_000_000, side="right") - 1
    order = np.argsort(keys, kind="stable")
    merged = tiers.merge(parts.select(order), keys[order])
    return Points([labels[k] for k in merged.start.tolist()], merged.stddev().tolist(), 1)


def tier_windows_of(rows: TierRows) -> tiers.Windows:
    """Tier rows as arrays (``start`` in seconds; min, max, first and last zeros: not read)."""
    if not rows.times:
        return tiers.empty()
    instants = np.array([t[:19] for t in rows.times], dtype="datetime64[s]").astype(np.int64)
    zeros = np.zeros(len(instants))
    return tiers.Windows(
        start=instants,
        count=np.array(rows.count, dtype=np.int64),
        sum=np.array(rows.sum, dtype=np.float64),
        min=zeros,
        max=zeros,
        first=zeros,
        last=zeros,
        m2=np.array(rows.m2, dtype=np.float64),
    )


def bracket(
    points: Points, head: tuple[str, Value] | None, tail: tuple[str, Value] | None
) -> Points | None:
    """``points`` with a window ``head`` before the first and a window ``tail`` after the last
    (label and value: the raw edges of a range whose inner part a tier's own windows answer),
    still Flux's CSV (``CsvCells.concat``), so that the JSON is still copied from InfluxDB's
    bytes. None when the points are not that any more, or an edge's label is not before the
    first (after the last) or not as long as theirs (it must be merged: ``add_edge``), or its
    value is not a finite decimal (for ``integer`` cells, not an int)."""
    cells = points.cells()
    if cells is None or not len(cells):
        return None
    labels = cells.labels()
    if labels.pad is not None:
        return None
    width = labels.matrix.shape[1]
    first, last = labels.matrix[0].tobytes().decode(), labels.matrix[-1].tobytes().decode()
    table = min(cells.table_ids).decode() if cells.table_ids else "0"
    before: list[CsvCells] = []
    after: list[CsvCells] = []
    for edge, at_start in ((head, True), (tail, False)):
        if edge is None:
            continue
        label, value = edge
        if len(label) != width or (label >= first if at_start else label <= last):
            return None
        if cells.integer != isinstance(value, int) or isinstance(value, bool):
            return None
        text = repr(value)
        if not _NUMBER_TEXT.fullmatch(text):
            return None
        block = CsvCells.parse(
            f",result,table,_time,_value\r\n,_result,{table},{label},{text}\r\n",
            integer=cells.integer,
        )
        if block is None:
            return None
        (before if at_start else after).append(block)
    if not before and not after:
        return points
    out = Points.of_cells(CsvCells.concat([*before, cells, *after]))
    out.tables, out.source = points.tables, points.source
    return out


def add_edge(points: Points, label: str, stat: Value, agg: str, at_start: bool) -> Points:
    """A window's points outside the tier (an edge of the range, read raw) added to the window
    ``label``: the first window (``at_start``, before every tier row) or the last one (after
    them). ``stat`` is the edge's statistic of ``agg`` (for a mean: its sum or count)."""
    if stat is None:
        return points
    i = 0 if at_start else len(points.times) - 1
    if not points.times or points.times[i] != label:
        if at_start:
            points.times.insert(0, label)
            points.values.insert(0, stat)
        else:
            points.times.append(label)
            points.values.append(stat)
        return points
    have = points.values[i]
    if have is None:
        points.values[i] = stat
    elif agg in ("sum", "count"):
        points.values[i] = have + stat
    elif agg == "min":
        points.values[i] = min(have, stat)
    elif agg == "max":
        points.values[i] = max(have, stat)
    elif (agg == "first" and at_start) or (agg == "last" and not at_start):
        points.values[i] = stat
    elif agg not in ("first", "last"):  # a mean: the caller merges sums and counts instead
        raise ValueError(f"an edge's {agg} cannot be merged into a window's")
    return points


def parse_count(text: str) -> int:
    """The total of Flux's annotation-free CSV of counts (`_value`, one row per tag set; no
    row: nothing counted). InfluxRejected for an error or anything else."""
    _refuse_errors(text)
    total = 0
    names: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = line.split(",")
        if cells[:2] == ["", "result"]:
            names = cells
            continue
        (i_value,) = _columns(names, ("_value",), "unexpected result from InfluxDB")
        if len(cells) != len(names):
            raise InfluxRejected("unexpected result from InfluxDB")
        value = cells[i_value]
        if not value.isdigit():
            raise InfluxRejected("unexpected count from InfluxDB")
        total += int(value)
    return total


def split_results(text: str, names: Sequence[str]) -> dict[str, str]:
    """Flux's annotation-free CSV answer to a query of several `yield`s as the text of each
    result by name (its blocks, a header and rows each, as InfluxDB wrote them; an empty text
    for a result without rows). InfluxRejected for an error, or a result not in ``names``."""
    _refuse_errors(text)
    blocks: dict[str, list[str]] = {name: [] for name in names}
    for block in text.split("\r\n\r\n" if "\r\n" in text else "\n\n"):
        lines = block.strip("\r\n").splitlines()
        if len(lines) < 2:
            continue  # no rows
        name = lines[1].split(",", 2)[1] if lines[1].count(",") >= 2 else ""
        if name not in blocks:
            raise InfluxRejected("unexpected result from InfluxDB")
        blocks[name].append(block.strip("\r\n") + "\r\n")
    return {name: "\r\n".join(parts) for name, parts in blocks.items()}


def parse_sum_count(text: str) -> tuple[Points, Points]:
    """Flux's annotation-free CSV of windows' `sum` and `count` rows (`_time`, `_field`,
    `_value`; several tag sets possibly interleaved): the sums and the counts as two columns."""
    got = parse_fields(text, {"sum": float, "count": int})
    return got["sum"], got["count"]


def _run(cells: list[str], value: str) -> tuple[int, int] | None:
    """Where the cells equal to ``value`` are, when they are all side by side (none: (0, 0));
    None when others lie between them."""
    n = cells.count(value)
    if not n:
        return 0, 0
    first = cells.index(value)
    return (first, first + n) if cells[first : first + n].count(value) == n else None


def parse_fields(text: str, fields: dict[str, Callable[[str], float]]) -> dict[str, Points]:
    """Flux's annotation-free CSV of rows of several fields (`_time`, `_field`, `_value`;
    several tag sets possibly interleaved): one column per field of ``fields``, its values
    read with the field's converter, in the order of the rows; every column's ``tables`` is
    the number of tables of the whole answer. Other fields are left out."""
    _refuse_errors(text)
    out = {f: Points() for f in fields}
    tables: set[str] = set()
    for n, block in enumerate(text.split("\n,result,")):
        head, _, body = block.partition("\n")
        names = (head if n == 0 else ",result," + head).rstrip("\r").split(",")
        body = body.strip()
        if not body:
            continue
        wanted = ("_time", "_field", "_value", "table")
        i_time, i_field, i_value, i_table = _columns(
            names, wanted, "unexpected columns from InfluxDB"
        )
        width = len(names)
        flat = body.replace("\r\n", ",").replace("\n", ",").split(",")
        if len(flat) % width:
            raise InfluxRejected("unexpected result from InfluxDB")
        of_row, times, raw = flat[i_field::width], flat[i_time::width], flat[i_value::width]
        tables.update(flat[i_table::width])
        runs = {f: _run(of_row, f) for f in fields}
        if all(run is not None for run in runs.values()):  # each field's rows together
            rows = [(f, times[r[0] : r[1]], raw[r[0] : r[1]]) for f, r in runs.items() if r]
        else:
            rows = [
                (f, [t for t, g in zip(times, of_row, strict=True) if g == f],
                 [v for v, g in zip(raw, of_row, strict=True) if g == f])
                for f in fields
            ]  # fmt: skip
        for f, t, v in rows:
            if f in out:
                out[f].times.extend(t)
                out[f].values.extend(_numbers(v, fields[f]))
    for column in out.values():
        column.tables = len(tables)
    return out
