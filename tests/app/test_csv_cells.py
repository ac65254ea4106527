"""Points that stay Flux's CSV (``app.points.CsvCells``) and their JSON spliced from its bytes
(``app.formats``) against the text-preserving path they replace (``_parse_lists``,
``Points.of_texts``, ``_points_text``): the same points, the same bytes, over random
single-block bodies (issue 10, item 7)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from app import formats, shape
from app import points as module
from app.errors import InfluxRejected
from app.points import (
    CsvCells,
    CsvReader,
    Points,
    byte_windows,
    combine_keys,
    parse_flux_csv,
    strictly_increasing,
)
from app.query.plan import DataParams, QueryPlan, build_plan, format_time

META = formats.SeriesMeta("f", "Hz")


def plan_of(start: str, end: str, resolution: str = "15m") -> QueryPlan:
    return build_plan(
        ["f"],
        DataParams(start=start, end=end, resolution=resolution),
        bucket="b",
        max_points_cap=100_000,
    )


PLANS = {
    "aligned": plan_of("2021-05-02T10:00:00Z", "2021-05-02T22:00:00Z"),
    "first cut": plan_of("2021-05-02T10:07:00Z", "2021-05-02T22:00:00Z"),
    "last cut": plan_of("2021-05-02T10:00:00Z", "2021-05-02T21:50:00Z"),
    "both cut": plan_of("2021-05-02T10:07:00Z", "2021-05-02T21:50:00Z"),
    "raw": plan_of("2021-05-02T10:00:00Z", "2021-05-02T22:00:00Z", "raw"),
}


def reference(text: str, integer: bool = False) -> Points:
    """What ``parse_flux_csv`` made before ``CsvCells``: the text path at every size."""
    small = module.PANDAS_FROM_BYTES
    module.PANDAS_FROM_BYTES = 10**12
    try:
        module._refuse_errors(text)
        return module._parse_lists(text, integer)
    finally:
        module.PANDAS_FROM_BYTES = small


# Finite numbers as InfluxDB writes them, and texts that are not (the cells path refuses).
_DIGITS = st.text("0123456789", min_size=1, max_size=25)
_NUMBER = st.one_of(
    st.builds(lambda s, a, b: f"{s}{a}.{b}", st.sampled_from(["", "-"]), _DIGITS, _DIGITS),
    st.builds(lambda s, a: f"{s}{a}", st.sampled_from(["", "-"]), _DIGITS),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(
        lambda f: format(f, "f").rstrip("0").rstrip(".") or "0"
    ),
    st.integers(-(10**20), 10**20).map(str),
)
_NOT_NUMBER = st.sampled_from(
    ["", "NaN", "+Inf", "-Inf", "1e5", "1e-07", "-", ".5", "1.", "--1", "1.2.3", "+1", " 1", "0x1"]
)


_INTEGER = st.integers(-(2**63), 2**63 - 1).map(str)  # counts: InfluxDB's integers


@dataclass
class Body:
    text: str
    plain: bool  # every value a finite number, every label 20 bytes: the splice must answer
    plan: QueryPlan
    integer: bool  # counts


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    """A single block of Flux's annotation-free CSV: labels from the plan's windows (the cut
    ones first and last), sometimes out of order, fractional or of another table."""
    name = draw(st.sampled_from(sorted(PLANS)))
    plan = PLANS[name]
    starts = plan.window_starts() or [plan.start]
    labels = [format_time(t) for t in starts]
    n = draw(st.integers(0, min(12, len(labels))))
    times = labels[:n] if draw(st.booleans()) else labels[len(labels) - n :]
    if n and draw(st.integers(0, 5)) == 0:
        times = draw(st.permutations(times))
    fractional = n > 0 and draw(st.integers(0, 6)) == 0
    if fractional:
        times = [t[:-1] + "." + draw(st.text("0123456789", min_size=1, max_size=9)) + "Z"
                 for t in times]  # fmt: skip
    bad = n > 0 and draw(st.integers(0, 4)) == 0
    integer = draw(st.booleans())
    number = _INTEGER if integer else _NUMBER
    values = [draw(_NOT_NUMBER if bad and draw(st.booleans()) else number) for _ in range(n)]
    bad = bad and not module._NUMBERS.fullmatch(",".join(values))
    tables = draw(st.lists(st.sampled_from(["0", "0", "1", "12"]), min_size=n, max_size=n))
    columns = draw(
        st.sampled_from(
            [
                ["", "result", "table", "_time", "_value"],
                ["", "result", "table", "_value", "_time"],
                ["", "result", "table", "_start", "_stop", "_time", "_value", "_field"],
            ]
        )
    )
    cells = {"": "", "result": "_result", "_start": "2021-05-02T10:00:00Z",
             "_stop": "2021-05-02T22:00:00Z", "_field": "value"}  # fmt: skip
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    rows = [
        ",".join({**cells, "table": k, "_time": t, "_value": v}[c] for c in columns)
        for t, v, k in zip(times, values, tables, strict=True)
    ]
    end = draw(st.sampled_from(["", eol, eol + eol]))
    text = eol.join([",".join(columns), *rows]) + (end if rows else eol)
    spread = max(map(len, values), default=0) - min(map(len, values), default=0)
    # spliced unless a value is longer than another by more than a label and its keys
    plain = n > 0 and not bad and not fractional and spread <= 39
    return Body(text, plain, plan, integer)


@contextmanager
def no_cells() -> Iterator[None]:
    """``parse_flux_csv`` as before ``CsvCells``."""
    parse = CsvCells.parse
    CsvCells.parse = classmethod(lambda cls, text, *, integer=False: None)  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        CsvCells.parse = parse  # type: ignore[method-assign]


def answers(body: Body) -> tuple[bytes, bytes, bytes, bytes]:
    """The JSON of the route's steps on the parsed points (``flux_windows``, and the tier's
    ``combine_keys``), the CSV and the NDJSON."""
    plan, integer = body.plan, body.integer
    points = shape.flux_windows(plan, parse_flux_csv(body.text, integer=integer))
    tier = combine_keys(parse_flux_csv(body.text, integer=integer), "mean")
    tier_json = b"" if tier is None else formats.series_json(plan, META, tier)
    json = formats.series_json(plan, META, points)
    csv = b"".join(formats.series_csv(plan, parse_flux_csv(body.text, integer=integer)))
    ndjson = b"".join(formats.series_ndjson(plan, parse_flux_csv(body.text, integer=integer)))
    return json, tier_json, csv, ndjson


def outcome(body: Body) -> tuple[bytes, ...] | str:
    """``answers``, or the error they stopped with (a value Python cannot read, a count past
    64 bits: both paths alike)."""
    try:
        return answers(body)
    except (ValueError, TypeError) as exc:
        return type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies())
def test_the_same_bytes_as_the_text_path(body: Body) -> None:
    integer = body.integer
    cells = CsvCells.parse(body.text, integer=integer)
    if cells is not None:
        fast, slow = Points.of_cells(cells), reference(body.text, integer)
        assert len(fast) == len(slow)
        assert fast.tables == slow.tables
        assert fast.increasing() == strictly_increasing(slow.times)
        assert fast.times == slow.times  # read: the text path's lists
        assert fast.json_numbers() == slow.json_numbers()
    if body.plain:
        assert cells is not None, body.text
        assert formats._points_spliced(body.plan, cells) is not None
    event("spliced" if body.plain else "cells" if cells is not None else "read as before")
    new = outcome(body)
    with no_cells():
        assert CsvCells.parse(body.text) is None
        old = outcome(body)
    assert new == old


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\r\n",
        ",result,table,_time,_value\r\n",
        ",result,table,_time,_value\r\n\r\n",
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,\r\n",
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,NaN\r\n",
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\n"
        ",result,table,_time,_value\r\n,_result,1,2021-05-02T10:15:00Z,2\r\n",  # two blocks
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\n\r\n"
        ",result,table,_time,_value\r\n,_result,1,2021-05-02T10:15:00Z,2\r\n",
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\n"
        "\r\n,_result,0,2021-05-02T10:15:00Z,2\r\n",  # a blank line inside
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1,2\r\n",  # too wide
        ',result,table,_time,_value\r\n,"_result",0,2021-05-02T10:00:00Z,1\r\n',  # quoted
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\r\n"
        ",_result,0,2021-05-02T10:15:00Z,2\r\n",  # a `\r` in a cell
        ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\r2\n",  # and last
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1 \r\n",
        ",result,table,_time,_value\r\nx,_result,0,2021-05-02T10:00:00Z,1\r\n",  # a first cell
        ",result,table,_time,_value\r\n,_res\x7fult,0,2021-05-02T10:00:00Z,1\r\n",
        ",result,table,_time,_value\r\n,_résult,0,2021-05-02T10:00:00Z,1\r\n",
        ",result,table,_start\n,_result,0,2021-05-02T10:00:00Z\n",  # no _time and _value
    ],
)
def test_anything_else_is_read_as_before(text: str) -> None:
    """Texts the cells refuse: no ``CsvCells``, and the same points as before."""
    assert CsvCells.parse(text) is None
    try:
        want = reference(text)
    except (InfluxRejected, ValueError) as exc:
        with pytest.raises(type(exc)):
            parse_flux_csv(text)
        return
    got = parse_flux_csv(text)
    assert got.cells() is None
    assert (got.times, got.tables) == (want.times, want.tables)
    assert [None if isinstance(v, float) and math.isnan(v) else v for v in got.values] == [
        None if isinstance(v, float) and math.isnan(v) else v for v in want.values
    ]


def test_errors_are_still_refused() -> None:
    for text in ("error,reference\nsomething failed,\n", ",error,reference\n,failed,\n",
                 ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\n"
                 "error,reference\nboom,\n"):  # fmt: skip
        with pytest.raises(InfluxRejected):
            parse_flux_csv(text)


def test_a_year_at_15m_is_spliced_as_the_text_path_writes_it() -> None:
    """35,040 windows (over pandas' threshold): the spliced JSON, byte for byte, and the values
    read from it are the pandas path's."""
    plan = plan_of("2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z")
    labels = [format_time(t) for t in plan.window_starts()]
    values = [repr(50 + ((i * 7919) % 1000 - 500) / 1e4 + i / 1e9) for i in range(len(labels))]
    text = ",result,table,_time,_value\r\n" + "".join(
        f",_result,0,{t},{v}\r\n" for t, v in zip(labels, values, strict=True)
    ) + "\r\n"  # fmt: skip
    assert len(text) > module.PANDAS_FROM_BYTES
    fast = parse_flux_csv(text)
    cells = fast.cells()
    assert cells is not None
    assert formats._points_spliced(plan, cells) is not None
    body = formats.series_json(plan, META, fast)
    assert body == formats.series_json(plan, META, reference(text))
    assert parse_flux_csv(text).values == list(map(float, values))  # read: pandas, as before


def test_a_value_far_longer_than_the_others_is_written_by_the_text_path() -> None:
    """Values whose lengths differ by more than a label and its keys: no splice, same bytes."""
    plan = PLANS["aligned"]
    long = "1." + "2" * 60
    text = (
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\n"
        f",_result,0,2021-05-02T10:15:00Z,{long}\r\n\r\n"
    )
    cells = parse_flux_csv(text).cells()
    assert cells is not None
    assert formats._points_spliced(plan, cells) is None
    got = formats.series_json(plan, META, parse_flux_csv(text))
    assert got == formats.series_json(plan, META, reference(text))
    assert long.encode() in got


# --- Flux's usual rows (``_usual_rows``): the same cells as the general reading -----------------


@contextmanager
def general_reading() -> Iterator[None]:
    """``CsvCells`` found by ``_block`` and ``_separators`` alone, as before ``_usual_rows``."""
    usual = module._usual_rows
    module._usual_rows = lambda raw: None
    try:
        yield
    finally:
        module._usual_rows = usual


def same_cells(a: CsvCells | None, b: CsvCells | None) -> bool:
    if a is None or b is None:
        return a is b
    spans = zip(a.time_spans + a.value_spans, b.time_spans + b.value_spans, strict=True)
    la, lb = a.labels(), b.labels()
    return (
        all(np.array_equal(x, y) for x, y in spans)
        and a.table_ids == b.table_ids
        and np.array_equal(la.matrix, lb.matrix)
        and np.array_equal(la.lengths, lb.lengths)
        and (la.pad is None) == (lb.pad is None)
    )


# Bytes that matter to a CSV reader: separators, line ends, quotes, spaces, a label's and a
# number's own bytes, the first and last printable ones and past them.
_HOSTILE = st.sampled_from(list(b',\r\n" \t+-./0129:TZ_rx~\x7f\x00'))


@st.composite
def usual_texts(draw: st.DrawFn) -> tuple[str, bool]:
    """Flux's usual answer (`,result,table,_time,_value`, rows `,_result,0,<label>,<value>`),
    then perhaps a few bytes of ``_HOSTILE`` written over or put between its bytes (the header's
    included); whether it is still untouched."""
    n = draw(st.integers(1, 8))
    labels = [format_time(t) for t in PLANS["aligned"].window_starts()[:n]]
    values = [draw(_NUMBER) for _ in labels]
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    text = ",result,table,_time,_value" + eol
    text += "".join(f",_result,0,{t},{v}{eol}" for t, v in zip(labels, values, strict=True))
    text += draw(st.sampled_from(["", eol]))
    raw = bytearray(text.encode())
    edits = draw(st.lists(st.tuples(st.integers(0, 10**6), _HOSTILE, st.booleans()), max_size=3))
    for at, byte, insert in edits:
        at %= len(raw)
        if insert:
            raw.insert(at, byte)
        else:
            raw[at] = byte
    return raw.decode("latin-1"), not edits


@settings(max_examples=1500, deadline=None)
@given(case=usual_texts())
def test_the_usual_rows_are_read_as_every_other_block(case: tuple[str, bool]) -> None:
    """Flux's usual answer, read from its line ends alone, gives the cells the general reading
    gives, with any bytes changed or put in it (a comma in a label or a value, a space, a quote,
    a lone `\r`, a blank line, another table, a longer label, a broken header): both refuse it,
    or both read the same cells."""
    text, untouched = case
    raw = text.encode("latin-1")
    fast = CsvCells.of_ascii(raw, None, integer=False)
    with general_reading():
        slow = CsvCells.of_ascii(raw, None, integer=False)
    assert same_cells(fast, slow), text
    if untouched:
        assert module._usual_rows(raw) is not None, text  # the case the fast reading is for
        assert fast is not None
    event("read" if fast is not None else "refused")


# --- read while it arrives (CsvReader) ----------------------------------------------------------


def read_in_pieces(text: str, cuts: list[int], piece_bytes: int, *, integer: bool) -> Points:
    """``text`` fed to a ``CsvReader`` in chunks cut at ``cuts``, its pieces' JSON made."""
    raw = text.encode()
    reader = CsvReader(integer=integer, on_piece=formats.prerender, piece_bytes=piece_bytes)
    at = 0
    for cut in sorted(c % (len(raw) + 1) for c in cuts):
        reader.feed(raw[at:cut])
        at = max(at, cut)
    reader.feed(raw[at:])
    return reader.points()


def pieces_outcome(body: Body, cuts: list[int], piece_bytes: int) -> tuple[bytes, ...] | str:
    """``answers`` with every parse read in pieces."""

    def in_pieces(text: str, *, integer: bool = False) -> Points:
        return read_in_pieces(text, cuts, piece_bytes, integer=integer)

    globals()["parse_flux_csv"] = in_pieces  # what ``answers`` parses with
    try:
        return outcome(body)
    finally:
        globals()["parse_flux_csv"] = module.parse_flux_csv


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies(),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    piece_bytes=st.integers(1, 400),
)
def test_read_while_it_arrives_as_when_read_whole(
    body: Body, cuts: list[int], piece_bytes: int
) -> None:
    """Any chunks, any piece size: the same points and the same bytes in every format as the
    whole text read at once; the cells of the pieces joined are those of the whole."""
    try:
        got = read_in_pieces(body.text, cuts, piece_bytes, integer=body.integer)
    except (ValueError, TypeError) as exc:  # a value Python cannot read, as when read whole
        with pytest.raises(type(exc)):
            parse_flux_csv(body.text, integer=body.integer)
        return
    whole = CsvCells.parse(body.text, integer=body.integer)
    cells = got.cells()
    if cells is not None and cells.pieces:
        event(f"{min(len(cells.pieces), 3)}+ pieces")
        assert whole is not None
        assert cells.text == whole.text
        assert cells.table_ids == whole.table_ids
        for mine, theirs in zip(
            (*cells.time_spans, *cells.value_spans),
            (*whole.time_spans, *whole.value_spans),
            strict=True,
        ):
            assert mine.tolist() == theirs.tolist()
        assert cells.increasing() == whole.increasing()
    assert pieces_outcome(body, cuts, piece_bytes) == outcome(body)


@pytest.mark.parametrize("piece_bytes", [1, 45, 10**6])
@pytest.mark.parametrize(
    ("first", "new", "after"),
    [
        ("2021-05-02T10:00:00Z", "2021-05-02T09:55:00Z", True),  # earlier: still in order
        ("2021-05-02T10:00:00Z", "2021-05-02T10:30:00Z", False),  # after the second label
        ("2021-05-02T10:20:00Z", "2021-05-02T10:10:00Z", True),  # out of order, then in
        ("2021-05-02T10:20:00Z", "2021-05-02T10:15:00Z", False),  # the second label again
    ],
)
def test_the_order_is_told_again_after_a_relabel(
    first: str, new: str, after: bool, piece_bytes: int
) -> None:
    """``increasing`` is told once and kept, by the cells and by each piece read while the
    answer arrived; relabelling the first label tells it again, as the labels are then."""
    rows = [first, "2021-05-02T10:15:00Z", "2021-05-02T10:30:00Z"]
    text = ",result,table,_time,_value\r\n" + "".join(
        f",_result,0,{t},{i}\r\n" for i, t in enumerate(rows)
    )
    points = read_in_pieces(text, [7, 31], piece_bytes, integer=True)
    cells = points.cells()
    assert cells is not None
    assert cells.increasing() is (first < rows[1])  # told, and kept
    assert cells.relabel_first(first, new)
    assert cells.increasing() is after
    assert points.increasing() is after
    assert strictly_increasing([new, *rows[1:]]) is after


@pytest.mark.parametrize("piece_bytes", [1, 20, 45, 60, 90, 10**6])
@pytest.mark.parametrize(
    "text",
    [
        # two blocks, the second header where a piece may begin
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\n"
        ",_result,0,2021-05-02T10:15:00Z,3\r\n\r\n"
        ",result,table,_time,_value\r\n,_result,1,2021-05-02T10:15:00Z,2\r\n\r\n",
        # a blank line between rows of one block
        ",result,table,_time,_value\r\n,_result,0,2021-05-02T10:00:00Z,1\r\n"
        "\r\n,_result,0,2021-05-02T10:15:00Z,2\r\n,_result,0,2021-05-02T10:30:00Z,4\r\n",
        # an error after rows
        ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\n"
        ",_result,0,2021-05-02T10:15:00Z,2\nerror,reference\nboom,\n",
        # a cell that is not ASCII in a later row, a null, a second table
        ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\n"
        ",_résult,0,2021-05-02T10:15:00Z,2\n",
        ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\n"
        ",_result,0,2021-05-02T10:15:00Z,\n",
        ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\n"
        ",_result,1,2021-05-02T10:00:00Z,2\n,_result,1,2021-05-02T10:15:00Z,3\n",
        "error,reference\nsomething failed,\n",
        "",
    ],
)
def test_what_is_not_one_plain_block_is_read_whole(text: str, piece_bytes: int) -> None:
    """Whatever piece a second header, a blank line, an error, a null or a byte that is not
    ASCII falls in: the same points, or the same error, as the whole text read at once."""
    try:
        want = parse_flux_csv(text)
    except InfluxRejected:
        with pytest.raises(InfluxRejected):
            read_in_pieces(text, [7, 31], piece_bytes, integer=False)
        return
    got = read_in_pieces(text, [7, 31], piece_bytes, integer=False)
    assert (got.tables, got.increasing()) == (want.tables, want.increasing())
    plan = PLANS["aligned"]
    assert formats.series_json(plan, META, got) == formats.series_json(plan, META, want)
    assert got == want


def _body(labels: list[str], values: list[str]) -> str:
    rows = "".join(f",_result,0,{t},{v}\r\n" for t, v in zip(labels, values, strict=True))
    return ",result,table,_time,_value\r\n" + rows + "\r\n"


_INSTANTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31, 23, 59, 59)
).map(lambda t: t.replace(microsecond=0, tzinfo=UTC))
# finite decimals as InfluxDB writes them: integers, short and long fractions, signs, and
# texts of more than 15 digits (read by float itself)
_DECIMALS = st.one_of(
    st.integers(-(10**17), 10**17).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.{abs(hash(x)) % 9}f}"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(lambda t: "e" not in t),
    st.sampled_from(["0", "-0", "-0.0", "50.0001", "45009.00000000001", "0.1", "9007199254740993"]),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(_INSTANTS, _DECIMALS), min_size=1, max_size=40))
def test_arrays_are_the_texts_read_by_python(rows: list[tuple[datetime, str]]) -> None:
    """Instants and values read from the bytes with numpy equal Python's own reading of each
    text: the epoch seconds of the label, and ``float`` of the value, bit for bit (-0.0 too)."""
    labels = [format_time(t) for t, _ in rows]
    cells = CsvCells.parse(_body(labels, [v for _, v in rows]))
    assert cells is not None
    got = cells.arrays()
    assert got is not None
    nanos, values = got
    assert nanos.tolist() == [int(t.timestamp()) * 10**9 for t, _ in rows]
    want = [float(v) for _, v in rows]
    assert [math.copysign(1, v) for v in values.tolist()] == [math.copysign(1, v) for v in want]
    assert values.tolist() == want


def _plain(value: Decimal) -> str:
    """A decimal as InfluxDB writes a float's text: no exponent."""
    return format(value, "f")


def _near_midpoint(x: float, digits: int) -> str:
    """The midpoint between ``x`` and the next double up, rounded to ``digits`` significant
    digits: where reading a decimal twice rounded (to long double, then to double) can go wrong
    and ``float`` does not."""
    above = math.nextafter(x, math.inf)
    with localcontext() as ctx:
        ctx.prec = 800
        mid = (Decimal(x) + Decimal(above)) / 2
        ctx.prec = digits
        return _plain(+mid)


def _integer_midpoint(exponent: int, odd: int) -> str:
    """An integer exactly halfway between two doubles of [2**exponent, 2**(exponent + 1))."""
    ulp = 2 ** (exponent - 52)
    return str(2**exponent + (2 * odd + 1) * ulp // 2)


_HARD_DECIMALS = st.one_of(
    st.builds(
        _near_midpoint,
        # a double of any significand (hypothesis' own floats favour short ones)
        st.builds(math.ldexp, st.integers(2**52, 2**53 - 1), st.integers(-80, 4)),
        st.sampled_from([15, 16, 17, 18, 18, 18, 19, 20]),
    ),
    st.builds(_integer_midpoint, st.integers(53, 62), st.integers(0, 2**20)),
    # the same digits with a dot: no longer a midpoint, read in long double as well
    st.builds(
        lambda exponent, odd, k: _plain(Decimal(_integer_midpoint(exponent, odd)).scaleb(-k)),
        st.integers(53, 59),
        st.integers(0, 2**20),
        st.integers(1, 27),
    ),
).flatmap(lambda text: st.sampled_from([text, "-" + text]))


@settings(max_examples=500, deadline=None)
@given(st.lists(_HARD_DECIMALS, min_size=1, max_size=60))
def test_values_near_a_midpoint_between_doubles_are_read_as_python_reads_them(
    values: list[str],
) -> None:
    """Texts of 15 to 20 digits at or within a digit of the midpoint between two doubles, and
    integers exactly at one: read with numpy (through long double where it is wider), each is
    ``float`` of its text, bit for bit."""
    labels = [f"2021-05-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(len(values))]
    cells = CsvCells.parse(_body(labels, values))
    assert cells is not None
    got = cells.arrays()
    assert got is not None
    assert got[1].tolist() == [float(v) for v in values]


def test_many_texts_near_midpoints_are_read_as_python_reads_them() -> None:
    """20,000 texts of 18 digits near midpoints between doubles (a tier's sums and m2 have 17
    digits), of which some are read wrong by any reading that rounds twice, to long double and
    then to double: the data holds that case (numpy's own long double reading shows it), and
    the arrays still equal ``float`` of each text."""
    rng = random.Random(18)
    values = [
        _near_midpoint(math.ldexp(rng.randrange(2**52, 2**53), rng.randrange(-60, 0)), 18)
        for _ in range(20_000)
    ]
    want = [float(v) for v in values]
    if np.finfo(np.longdouble).nmant > 52:  # (where long double is wider than a double)
        twice = [float(np.longdouble(v)) for v in values]
        assert sum(a != b for a, b in zip(twice, want, strict=True)) > 10
    start = datetime(2021, 5, 1, tzinfo=UTC)
    labels = [format_time(start + timedelta(seconds=i)) for i in range(len(values))]
    cells = CsvCells.parse(_body(labels, values))
    assert cells is not None
    got = cells.arrays()
    assert got is not None
    assert got[1].tolist() == want


_LABEL = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _seconds_by_python(labels: list[bytes]) -> list[int] | None:
    """Each label's instant as Python reads it, or None when one is not a valid time."""
    out = []
    for t in labels:
        if not _LABEL.fullmatch(t):
            return None
        try:
            y, mo, d, h, mi, sec = (int(t[a : a + 2 + 2 * (a == 0)]) for a in (0, 5, 8, 11, 14, 17))
            instant = datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
        except ValueError:
            return None
        out.append(int(instant.timestamp()))
    return out


@settings(max_examples=500, deadline=None)
@given(
    day=st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 25)),
    offsets=st.lists(st.integers(0, 5 * 86400), min_size=1, max_size=60),
    changes=st.lists(
        st.tuples(st.integers(0, 59), st.integers(0, 19), st.sampled_from(b"0123459:-TZx /")),
        max_size=3,
    ),
)
def test_label_seconds_are_pythons_reading_of_each_label(
    day: datetime, offsets: list[int], changes: list[tuple[int, int, int]]
) -> None:
    """Labels of a few days in order (runs of one date, whose date is read once), a few bytes
    of some changed to digits and marks: their instants as Python reads each, or None when one
    is not a valid time (a 25th hour, a 60th minute, the 31st of April, a mark out of place),
    whichever label of a run it is."""
    start = day.replace(microsecond=0, tzinfo=UTC)
    instants = [start + timedelta(seconds=s) for s in sorted(offsets)]
    labels = [bytearray(format_time(t).encode()) for t in instants]
    for row, at, byte in changes:
        labels[row % len(labels)][at] = byte
    texts = [bytes(t) for t in labels]
    assume(not any(t.startswith(b"0000") for t in texts))  # (Python has no year 0)
    matrix = np.frombuffer(b"".join(texts), dtype=np.uint8).reshape(len(texts), 20)
    got = module._label_seconds(matrix)
    want = _seconds_by_python(texts)
    assert (None if got is None else got.tolist()) == want


@pytest.mark.parametrize(
    "label",
    [
        "2021-13-01T00:00:00Z",  # month 13
        "2021-04-31T00:00:00Z",  # April has 30 days
        "2021-02-29T00:00:00Z",  # not a leap year
        "2021-05-01T24:00:00Z",
        "2021-05-01T00:60:00Z",
        "2021-05-01T00:00:60Z",
        "2021-05-01 00:00:00Z",
        "2021-05-01T00:00:00.5Z",  # fractional: read from the text
    ],
)
def test_arrays_leave_other_labels_to_the_text(label: str) -> None:
    cells = CsvCells.parse(_body(["2020-02-29T00:00:00Z", label], ["1", "2"]))
    assert cells is None or cells.arrays() is None


@settings(max_examples=300, deadline=None)
@given(
    instants=st.lists(_INSTANTS, min_size=1, max_size=20),
    seconds=st.sampled_from([1, 30, 60, 900, 3600, 7, 90, 86400, 2 * 86400, 7 * 86400]),
    offset=st.sampled_from([0, 4 * 86400, 15]),
    snap=st.booleans(),
)
def test_on_multiples_is_pythons_reading(
    instants: list[datetime], seconds: int, offset: int, snap: bool
) -> None:
    """Whether every label is ``offset`` plus a multiple of ``seconds`` (read from the clock
    when the length divides a day, else from the instants) is what Python says of each."""
    epochs = [int(t.timestamp()) for t in instants]
    if snap:  # most labels on the multiples, for both answers to come up
        epochs = [e - (e - offset) % seconds for e in epochs]
    labels = [format_time(datetime.fromtimestamp(e, UTC)) for e in epochs]
    cells = CsvCells.parse(_body(labels, ["1"] * len(labels)))
    assert cells is not None
    want = all((e - offset) % seconds == 0 for e in epochs)
    assert Points.of_cells(cells).on_multiples(seconds, offset) is want


@pytest.mark.parametrize(
    "label", ["2021-05-01T0a:00:00Z", "2021-05-01T00:/0:00Z", "2021-05-01T00:00:0.Z"]
)
def test_on_multiples_refuses_a_clock_that_is_not_digits(label: str) -> None:
    cells = CsvCells.parse(_body(["2021-05-01T00:00:00Z", label], ["1", "2"]))
    assert cells is not None
    assert not Points.of_cells(cells).on_multiples(30)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        st.one_of(
            st.integers(-(10**19), 10**19).map(str),  # an integer field's values
            st.floats(allow_nan=False, allow_infinity=False)
            .map(repr)
            .filter(lambda t: "e" not in t and "inf" not in t),
            st.sampled_from(["9007199254740993", "-9007199254740993", "49.98700000000001"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_floats_as_written_is_pythons_reading(texts: list[str]) -> None:
    """A value keeps its text through a float when it has a fraction or at most 15 digits;
    an integer of more (InfluxDB's mean of it is another number) does not."""
    labels = [f"2021-05-01T00:00:{k:02d}Z" for k in range(len(texts))]
    cells = CsvCells.parse(_body(labels, texts))
    assert cells is not None
    want = all("." in t or len(t.lstrip("-")) <= 15 for t in texts)
    assert Points.of_cells(cells).floats_as_written() is want


@given(data=st.binary(min_size=1, max_size=64), width=st.integers(1, 64), offset=st.integers(0, 8))
def test_byte_windows_are_numpys_sliding_windows(data: bytes, width: int, offset: int) -> None:
    """``points.byte_windows`` is ``sliding_window_view`` of a contiguous byte array (a view
    that starts inside a larger one included), read-only over bytes and writeable over an
    array, writing through to it; other shapes are refused."""
    whole = np.frombuffer(bytes(offset) + data, dtype=np.uint8)[offset:]
    if width > len(whole):
        with pytest.raises(ValueError, match="no windows"):
            byte_windows(whole, width)
        return
    got = byte_windows(whole, width)
    assert np.array_equal(got, sliding_window_view(whole, width))
    assert not got.flags.writeable
    out = np.zeros(len(data), dtype=np.uint8)
    byte_windows(out, width)[len(data) - width] = got[-1]
    assert out[-width:].tobytes() == data[-width:]
    for bad in (whole[::2], whole.reshape(1, -1)):
        with pytest.raises(ValueError, match="no windows"):
            byte_windows(bad, 1)
