"""Unit tests of Flux CSV parsing, linear fill and multi-series alignment."""

from __future__ import annotations

import math

import pytest

from app.errors import InfluxRejected
from app.points import (
    Points,
    align,
    fill_linear,
    parse_count,
    parse_flux_csv,
    parse_sum_count,
    split_results,
    strictly_increasing,
    to_instant,
)

CSV = (
    ",result,table,_time,_value\r\n"
    ",_result,0,2021-05-02T10:00:00Z,50\r\n"
    ",_result,0,2021-05-02T10:15:00Z,\r\n"
    ",_result,0,2021-05-02T10:30:00Z,49.99\r\n"
    "\r\n"
)


def test_parse_flux_csv() -> None:
    p = parse_flux_csv(CSV)
    assert p.times == ["2021-05-02T10:00:00Z", "2021-05-02T10:15:00Z", "2021-05-02T10:30:00Z"]
    assert p.values == [50.0, None, 49.99]
    assert isinstance(p.values[0], float)
    assert p.tables == 1


def test_parse_flux_csv_columns_in_any_order_and_counts() -> None:
    text = ",result,table,_value,_time\n,_result,0,3,2021-05-02T10:00:00Z\n"
    p = parse_flux_csv(text, integer=True)
    assert p.values == [3]
    assert isinstance(p.values[0], int)
    assert p.times == ["2021-05-02T10:00:00Z"]


def test_parse_flux_csv_counts_tables_and_headers() -> None:
    text = (
        ",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,1\n"
        ",_result,1,2021-05-02T10:00:00Z,2\n\n"
        ",result,table,_time,_value\n,_result,2,2021-05-02T10:00:00Z,3\n"
    )
    p = parse_flux_csv(text)
    assert p.tables == 3
    assert p.values == [1.0, 2.0, 3.0]


def test_parse_flux_csv_empty_and_nan() -> None:
    assert len(parse_flux_csv("")) == 0
    assert len(parse_flux_csv("\r\n")) == 0
    p = parse_flux_csv(",result,table,_time,_value\n,_result,0,2021-05-02T10:00:00Z,NaN\n")
    first = p.values[0]
    assert first is not None
    assert math.isnan(first)


def test_parse_flux_csv_error_table() -> None:
    with pytest.raises(InfluxRejected):
        parse_flux_csv("error,reference\nsomething failed,\n")
    with pytest.raises(InfluxRejected, match="unexpected result columns"):
        parse_flux_csv(",result,table,_start\n,_result,0,x\n")


def test_to_instant_handles_nanoseconds() -> None:
    assert to_instant("2021-05-02T10:00:00.123456789Z").microsecond == 123456
    assert to_instant("2021-05-02T10:00:00Z").hour == 10


def test_fill_linear_interpolates_in_time() -> None:
    p = Points(
        [
            "2021-03-27T23:00:00Z",
            "2021-03-28T22:00:00Z",  # 23 h later
            "2021-03-29T22:00:00Z",  # 24 h later
            "2021-03-30T22:00:00Z",
            "2021-03-31T22:00:00Z",
        ],
        [None, 0.0, None, 48.0, None],
    )
    out = fill_linear(p)
    assert out.values == [None, 0.0, 24.0, 48.0, None]
    assert p.values[2] is None  # the input is left alone


def test_fill_linear_uneven_gaps() -> None:
    p = Points(
        ["2021-01-01T00:00:00Z", "2021-01-01T01:00:00Z", "2021-01-01T03:00:00Z"],
        [0.0, None, 30.0],
    )
    assert fill_linear(p).values == [0.0, 10.0, 30.0]


def test_fill_linear_nothing_to_do() -> None:
    p = Points(["2021-01-01T00:00:00Z"], [None])
    assert fill_linear(p) is p


def test_align_unions_labels() -> None:
    a = Points(["2021-01-01T00:00:00Z", "2021-01-01T01:00:00Z"], [1.0, 2.0])
    b = Points(["2021-01-01T01:00:00Z", "2021-01-01T02:00:00Z"], [20.0, 30.0])
    axis, rows = align([a, b])
    assert axis == ["2021-01-01T00:00:00Z", "2021-01-01T01:00:00Z", "2021-01-01T02:00:00Z"]
    assert rows == [[1.0, None], [2.0, 20.0], [None, 30.0]]


def test_align_sorts_fractional_labels_as_instants() -> None:
    a = Points(["2021-01-01T00:00:00.5Z", "2021-01-01T00:00:01Z"], [1.0, 2.0])
    axis, _ = align([a, Points()])
    assert axis == ["2021-01-01T00:00:00.5Z", "2021-01-01T00:00:01Z"]


@pytest.mark.parametrize("integer", [False, True])
def test_large_results_parse_the_same_both_ways(integer: bool) -> None:
    from app import points as module

    rows = [
        f",_result,0,2021-05-{2 + i // 86400:02d}T"
        f"{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,"
        + ("" if i % 7 == 0 else str(i if integer else i / 8))
        for i in range(20000)
    ]
    text = ",result,table,_time,_value\r\n" + "\r\n".join(rows) + "\r\n\r\n"
    assert len(text) > module.PANDAS_FROM_BYTES
    fast = parse_flux_csv(text, integer=integer)
    small = module.PANDAS_FROM_BYTES
    try:
        module.PANDAS_FROM_BYTES = 10**9
        slow = parse_flux_csv(text, integer=integer)
    finally:
        module.PANDAS_FROM_BYTES = small
    assert fast.times == slow.times
    assert fast.tables == slow.tables == 1
    assert [
        None if isinstance(v, float) and math.isnan(v) else v for v in fast.values
    ] == slow.values
    assert slow.values[0] is None
    assert slow.values[1] == (1 if integer else 0.125)
    assert type(fast.values[1]) is type(slow.values[1])


def test_strictly_increasing() -> None:
    assert strictly_increasing([])
    assert strictly_increasing(["2021-05-02T10:00:00Z", "2021-05-02T10:15:00Z"])
    assert not strictly_increasing(["2021-05-02T10:00:00Z", "2021-05-02T10:00:00Z"])
    assert not strictly_increasing(
        ["2021-05-02T10:00:00Z", "2021-05-02T11:00:00Z", "2021-05-02T10:00:00Z"]
    )
    assert strictly_increasing(["2021-05-02T10:00:00.5Z", "2021-05-02T10:00:01Z"])
    assert not strictly_increasing(["2021-05-02T10:00:01Z", "2021-05-02T10:00:00.5Z"])


# A query of two `yield`s as InfluxDB answers it: each result's blocks (one per schema) in the
# order they finish, blank lines between blocks.
TWO_RESULTS = (
    ",result,table,_time,_value\r\n"
    ",edges,0,2021-05-03T10:29:59Z,50.01\r\n"
    ",edges,0,2021-05-03T11:30:00Z,49.5\r\n"
    "\r\n"
    ",result,table,_time,_value,_field\r\n"
    ",core,0,2021-05-03T10:30:00Z,900,count\r\n"
    "\r\n"
    ",result,table,_time,_value,_field\r\n"
    ",core,1,2021-05-03T10:30:00Z,45009.5,sum\r\n"
    "\r\n"
)


def test_split_results_parts_a_two_yield_answer() -> None:
    got = split_results(TWO_RESULTS, ("core", "edges"))
    edges = parse_flux_csv(got["edges"])
    assert edges.times == ["2021-05-03T10:29:59Z", "2021-05-03T11:30:00Z"]
    assert edges.values == [50.01, 49.5]
    sums, counts = parse_sum_count(got["core"])
    assert (sums.values, counts.values) == ([45009.5], [900.0])


def test_split_results_in_lf_and_without_a_result() -> None:
    """A result without rows is an empty text (its parse: no points); LF line ends too."""
    only_core = TWO_RESULTS.split("\r\n\r\n", 1)[1].replace("\r\n", "\n")
    got = split_results(only_core, ("core", "edges"))
    assert got["edges"] == ""
    assert len(parse_flux_csv(got["edges"])) == 0
    assert parse_sum_count(got["core"])[1].values == [900.0]


@pytest.mark.parametrize(
    "text",
    [
        TWO_RESULTS.replace(",edges,", ",other,"),  # a result nobody asked for
        ",error,reference\r\n,failed to read the edges,\r\n\r\n",  # Flux's error table
        TWO_RESULTS + ",error,reference\r\n,out of memory,\r\n",  # an error after rows
    ],
)
def test_split_results_refuses_unknown_results_and_errors(text: str) -> None:
    with pytest.raises(InfluxRejected):
        split_results(text, ("core", "edges"))


def test_parse_count_adds_the_tag_sets() -> None:
    text = ",result,table,_value\r\n,_result,0,604800\r\n,_result,1,12\r\n\r\n"
    assert parse_count(text) == 604812
    assert parse_count("") == 0  # no table: nothing in the range


@pytest.mark.parametrize(
    "text",
    [
        ",error,reference\r\n,out of memory,\r\n",
        ",result,table,_value\r\n,_result,0,12.5\r\n",
        ",result,table,_value\r\n,_result,0,-1\r\n",
        ",result,table,_value\r\n,_result,0\r\n",
        ",result,table,_time\r\n,_result,0,2021-05-01T00:00:00Z\r\n",
    ],
)
def test_parse_count_refuses_anything_else(text: str) -> None:
    with pytest.raises(InfluxRejected):
        parse_count(text)
