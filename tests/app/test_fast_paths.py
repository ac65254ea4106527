"""The shortcuts of the tier paths give what the general code gives, for every input shape:
labels of window starts formatted together, the rows of each field taken as a run, tag sets
combined only when they need to be (issue 10: a month at 1 m from the tier), and the window a
range's start cuts relabelled without reading every point as strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import formats, shape
from app.points import CsvReader, Points, combine_keys, parse_fields, parse_flux_csv
from app.query.plan import DataParams, QueryPlan, build_plan, format_time
from app.shape import format_micros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_times(instants: list[datetime]) -> list[str]:
    """``format_micros`` of instants given as datetimes."""
    micros = [(t - EPOCH) // timedelta(microseconds=1) for t in instants]
    return format_micros(np.array(micros, dtype=np.int64))


# Any instant a datetime holds, whole seconds or not, before and after 1970.
INSTANTS = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)


@given(st.lists(INSTANTS.map(lambda t: t.replace(microsecond=0)), max_size=50))
def test_whole_seconds_are_labelled_as_one_by_one(instants: list[datetime]) -> None:
    assert format_times(instants) == [format_time(t) for t in instants]


@given(st.lists(INSTANTS, min_size=1, max_size=20))
def test_fractions_of_a_second_are_labelled_as_one_by_one(instants: list[datetime]) -> None:
    assert format_times(instants) == [format_time(t) for t in instants]


def test_a_microsecond_where_floats_are_coarser_than_that_is_kept() -> None:
    """A float holds an instant of 2262 or 9999 to about 2 and 30 us: one microsecond past a
    second must not be read as the whole second."""
    for year in (2262, 9999):
        instants = [datetime(year, 1, 1, tzinfo=UTC), datetime(year, 1, 1, 0, 0, 1, 1, tzinfo=UTC)]
        assert format_times(instants) == [format_time(t) for t in instants]
        assert format_times(instants)[1].endswith(":01.000001Z")


def test_years_before_1000_have_four_digits() -> None:
    assert format_time(datetime(1, 12, 31, 23, 59, 59, tzinfo=UTC)) == "0001-12-31T23:59:59Z"
    assert format_time(datetime(999, 1, 2, 3, 4, 5, 600, tzinfo=UTC)) == "0999-01-02T03:04:05.0006Z"


def test_a_month_of_minutes_and_the_calendars_edges() -> None:
    start = datetime(2024, 2, 1, tzinfo=UTC)
    month = [start + timedelta(minutes=m) for m in range(29 * 1440)]
    edges = [datetime(y, 12, 31, 23, 59, 59, tzinfo=UTC) for y in (1, 1969, 1999, 2000, 9998)]
    for instants in (month, edges, []):
        assert format_times(instants) == [format_time(t) for t in instants]


def reference_combined(times: list[str], values: list[float | int | None], agg: str) -> Points:
    """combine_keys as its general loop does it: per label, nulls left out."""
    acc: dict[str, float | int] = {}
    for t, v in zip(times, values, strict=True):
        if v is not None:
            acc[t] = v if t not in acc else {"sum": acc[t] + v, "min": min(acc[t], v)}[agg]
    return Points(sorted(acc), [acc[t] for t in sorted(acc)], 1)


@given(
    st.lists(st.tuples(st.integers(0, 30), st.one_of(st.none(), st.integers(-5, 5))), max_size=40),
    st.integers(1, 3),
    st.sampled_from(["sum", "min"]),
)
def test_tag_sets_are_combined_as_the_general_loop_does(
    rows: list[tuple[int, int | None]], tables: int, agg: str
) -> None:
    """Sorted or not, labels repeated or not, nulls or not, one table or several."""
    times = [format_time(datetime(2021, 5, 1, tzinfo=UTC) + timedelta(minutes=m)) for m, _ in rows]
    values: list[float | int | None] = [v for _, v in rows]
    got = combine_keys(Points(list(times), list(values), tables), agg)
    assert got is not None
    if tables == 1 and times == sorted(set(times)):
        assert (got.times, got.values) == (times, values)  # as they are, nulls kept
    else:
        want = reference_combined(times, values, agg)
        assert (got.times, got.values, got.tables) == (want.times, want.values, 1)


HEADER = ",result,table,_time,_field,_value\r\n"


@given(
    st.lists(
        st.tuples(st.sampled_from(["count", "sum", "m2"]), st.integers(0, 50), st.integers(0, 9)),
        max_size=30,
    ),
    st.booleans(),
)
def test_each_fields_rows_are_read_whether_together_or_interleaved(
    rows: list[tuple[str, int, int]], grouped: bool
) -> None:
    """The rows of each field, in the order they came: the same when each field's rows are
    side by side (read as a run) as when they are interleaved (read one by one)."""
    if grouped:
        rows = sorted(rows, key=lambda r: r[0])
    text = HEADER + "".join(
        f",_result,{f},2021-05-01T00:{m // 60:02d}:{m % 60:02d}Z,{f},{v}\r\n" for f, m, v in rows
    )
    got = parse_fields(text, {"count": int, "sum": float})
    for field, convert in (("count", int), ("sum", float)):
        mine = [(m, v) for f, m, v in rows if f == field]
        assert got[field].times == [f"2021-05-01T00:{m // 60:02d}:{m % 60:02d}Z" for m, _ in mine]
        assert got[field].values == [convert(str(v)) for _, v in mine]
        assert got[field].tables == len({f for f, _, _ in rows})


def test_a_field_whose_rows_come_back_later_is_not_read_as_one_run() -> None:
    """`sum` rows before and after a `count` row: a run of `sum` from its first row as long as
    its count of rows would take the `count` row as a sum."""
    text = HEADER + "".join(
        f",_result,0,2021-05-01T00:00:0{i}Z,{f},{i}\r\n"
        for i, f in enumerate(["sum", "count", "sum", "sum"])
    )
    got = parse_fields(text, {"count": int, "sum": float})
    assert got["sum"].values == [0.0, 2.0, 3.0]
    assert got["count"].values == [1]


def flux_csv(first: str, later: list[str]) -> str:
    """Flux's answer of windows: the first labelled ``first`` (a cut window: the range's start),
    the others at their starts."""
    rows = [first, *later]
    return ",result,table,_time,_value\r\n" + "".join(
        f",_result,0,{t},{50 + i / 8}\r\n" for i, t in enumerate(rows)
    )


CUT_PLANS = [  # a range starting inside a window: Flux labels that window with the start
    ("2021-05-02T10:07:00Z", "15m"),
    ("2021-05-02T10:07:00.5Z", "15m"),  # a label of another length: read as strings
    ("2021-05-02T10:00:13Z", "1m"),
]


def answers(plan: QueryPlan, points: Points) -> tuple[bytes, bool, bytes]:
    """The JSON of the plan's windows, whether they were still Flux's bytes when it was made,
    and their CSV (which reads them as strings)."""
    shaped = shape.flux_windows(plan, points)
    json = formats.series_json(plan, formats.SeriesMeta("f", "Hz"), shaped)
    as_bytes = shaped.cells() is not None
    return json, as_bytes, b"".join(formats.series_csv(plan, shaped))


@pytest.mark.parametrize(("start", "resolution"), CUT_PLANS)
@pytest.mark.parametrize("piece_bytes", [60, 10**6])
def test_the_cut_windows_label_leaves_the_points_as_flux_wrote_them(
    start: str, resolution: str, piece_bytes: int
) -> None:
    """The first window's label changed from the range's start to the window's start: the
    same JSON and CSV whether the points stay Flux's bytes (read in pieces, their JSON made
    meanwhile, or whole) or are strings; with labels of one length they stay bytes."""
    plan = build_plan(
        ["f"],
        DataParams(start=start, end="2021-05-02T14:00:00Z", resolution=resolution),
        bucket="b",
        max_points_cap=100_000,
    )
    first = plan.first_window_start()
    assert first is not None
    assert first != plan.start
    later = [format_time(s) for s in plan.window_starts()[1:]]
    text = flux_csv(format_time(plan.start), later)
    reader = CsvReader(on_piece=formats.prerender, piece_bytes=piece_bytes)
    for at in range(0, len(text), 37):
        reader.feed(text[at : at + 37].encode())
    as_bytes = reader.points()
    as_strings = parse_flux_csv(text)
    assert as_strings.times[0] == format_time(plan.start)  # (read as strings from here on)
    json, still_bytes, csv = answers(plan, as_bytes)
    json_of_strings, _, csv_of_strings = answers(plan, as_strings)
    assert (json, csv) == (json_of_strings, csv_of_strings)
    assert still_bytes == (len(format_time(plan.start)) == len(format_time(first)))
    assert as_bytes.times[0] == format_time(first)  # its text, when something reads it
    assert as_bytes.times[1:] == later


def test_labels_in_a_read_only_buffer_are_relabelled_as_strings() -> None:
    """Cells whose label matrix cannot be written (none the API makes) are read as strings
    to be relabelled, not failed."""
    import numpy as np

    from app.points import CsvCells

    times = ["2021-05-02T10:07:00Z", "2021-05-02T10:15:00Z"]
    text = flux_csv(times[0], times[1:])
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    parsed = CsvCells.parse(text)
    assert parsed is not None
    labels = np.frombuffer("".join(times).encode(), dtype=np.uint8).reshape(2, 20)
    spans = (parsed.time_spans, parsed.value_spans)
    cells = CsvCells.of_rows(data, labels, spans, lambda: text, integer=False)
    assert cells is not None
    points = Points.of_cells(cells)
    points.relabel_first(times[0], "2021-05-02T10:00:00Z")
    assert points.cells() is None
    assert points.times == ["2021-05-02T10:00:00Z", "2021-05-02T10:15:00Z"]


# ---- edges of a range whose inner part a tier's own windows answer ------------------------------


def windows_csv(labels: list[str], texts: list[str]) -> str:
    return ",result,table,_time,_value\r\n" + "".join(
        f",_result,0,{t},{v}\r\n" for t, v in zip(labels, texts, strict=True)
    )


@given(
    st.integers(1, 40),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from([40, 10**6]),
    st.data(),
)
def test_edges_added_as_windows_of_their_own_keep_the_bytes(
    inner: int, head: bool, tail: bool, integer: bool, piece_bytes: int, data: st.DataObject
) -> None:
    """A window before the first and one after the last (``bracket``): the same JSON and CSV
    as the points read as strings with the edges inserted (``add_edge``), whether the tier's
    windows were read whole or in pieces; still Flux's bytes (no string per point)."""
    from app.points import add_edge, bracket

    plan = build_plan(
        ["f"],
        DataParams(start="2021-05-02T10:00:13Z", end="2021-05-02T12:00:07Z", resolution="1m"),
        bucket="b",
        max_points_cap=100_000,
    )
    labels = [format_time(s) for s in plan.window_starts()]
    core = labels[1 : 1 + inner]
    number = (
        st.integers(0, 10**6) if integer else st.integers(-4000, 4000).map(lambda k: 50 + k / 16)
    )
    values = data.draw(st.lists(number, min_size=inner + 2, max_size=inner + 2))
    text = windows_csv(core, [repr(v) for v in values[1:-1]])
    reader = CsvReader(integer=integer, on_piece=formats.prerender, piece_bytes=piece_bytes)
    for at in range(0, len(text), 29):
        reader.feed(text[at : at + 29].encode())
    edges = (
        (labels[0], values[0]) if head else None,
        (labels[1 + inner], values[-1]) if tail else None,
    )
    got = bracket(reader.points(), *edges)
    assert got is not None
    assert got.cells() is not None
    want = parse_flux_csv(text, integer=integer)
    for edge, at_start in zip(edges, (True, False), strict=True):
        if edge is not None:
            want = add_edge(want, edge[0], edge[1], "mean", at_start)
    meta = formats.SeriesMeta("f", "Hz")
    assert formats.series_json(plan, meta, got) == formats.series_json(plan, meta, want)
    assert b"".join(formats.series_csv(plan, got)) == b"".join(formats.series_csv(plan, want))
    assert (got.times, got.values) == (want.times, want.values)


def test_edges_that_share_a_window_or_are_not_decimals_are_left_to_the_strings() -> None:
    """An edge whose label is the first's or the last's must be merged into it, one of another
    length or value not written as a decimal cannot be bytes of the block: None, the caller
    inserts or merges them as strings (``add_edge``)."""
    from app.points import add_edge, bracket

    labels = ["2021-05-02T10:01:00Z", "2021-05-02T10:02:00Z"]
    text = windows_csv(labels, ["50.5", "49.25"])
    for head, tail in [
        (("2021-05-02T10:01:00Z", 1.0), None),  # the first's window
        (None, ("2021-05-02T10:02:00Z", 1.0)),  # the last's
        (("2021-05-02T10:03:00Z", 1.0), None),  # after the first: not before it
        (("2021-05-02T10:00:00.5Z", 1.0), None),  # another length
        (("2021-05-02T10:00:00Z", 1e-7), None),  # `1e-07`
        (("2021-05-02T10:00:00Z", 3), None),  # an int among floats
    ]:
        assert bracket(parse_flux_csv(text), head, tail) is None, (head, tail)
    assert bracket(parse_flux_csv(text), None, None) is not None
    with pytest.raises(ValueError, match="cannot be merged"):
        add_edge(parse_flux_csv(text), labels[0], 1.0, "mean", True)


def test_edges_beside_windows_of_other_columns_read_as_two_blocks() -> None:
    """The tier's windows with a column the edges' rows have not: their text is the blocks one
    after the other, read as the same points."""
    from app.points import bracket

    text = ",result,table,_start,_time,_value\r\n" + "".join(
        f",_result,0,2021-05-02T00:00:00Z,2021-05-02T10:0{m}:00Z,{m}.5\r\n" for m in (1, 2)
    )
    got = bracket(
        parse_flux_csv(text), ("2021-05-02T10:00:00Z", 7.25), ("2021-05-02T10:03:00Z", 8.0)
    )
    assert got is not None
    assert got.times == [f"2021-05-02T10:0{m}:00Z" for m in range(4)]
    assert got.values == [7.25, 1.5, 2.5, 8.0]
    assert got.tables == 1
