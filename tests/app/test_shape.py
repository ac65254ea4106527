"""Shaping what InfluxDB answered into a plan's windows (app.shape), without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app import shape
from app.points import Points, TierRows, combine_keys
from app.query.plan import Agg, DataParams, QueryPlan, build_plan, composed_grain, format_time
from gridts.tiers import Tier

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NONE = np.zeros(0, dtype=np.int64)  # no window starts: the plain tiered answer needs none


def plan(**kw: str) -> QueryPlan:
    params = {"start": "2021-05-02T00:00:00Z", "end": "2021-05-02T03:00:00Z", **kw}
    return build_plan(["s"], DataParams(**params), bucket="b", max_points_cap=100_000)


def hours(start: datetime, n: int) -> list[str]:
    return [format_time(start + timedelta(hours=h)) for h in range(n)]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- local windows from UTC grains ------------------------------------------------------------


def test_zurich_dst_day_composed_from_utc_hours() -> None:
    """28 March 2021 has 23 hours in Zurich, the 29th has 24: each local day is the mean of
    exactly its own UTC hours, labelled with its local midnight in UTC."""
    p = plan(start="2021-03-27T23:00:00Z", end="2021-03-29T22:00:00Z", resolution="1d",
             tz="Europe/Zurich", agg="mean")  # fmt: skip
    assert composed_grain(p) == 3600
    times = hours(utc(2021, 3, 27, 23), 47)
    sums = Points(times, [2.0 * h for h in range(47)], 1)  # two points per hour, mean h
    counts = Points(times, [2] * 47, 1)
    got = shape.local_windows(p, sums, counts)
    assert got is not None
    assert got.times == ["2021-03-27T23:00:00Z", "2021-03-28T22:00:00Z"]
    assert got.values == [sum(range(23)) / 23, sum(range(23, 47)) / 24]


def test_local_max_needs_no_counts() -> None:
    p = plan(start="2021-03-27T23:00:00Z", end="2021-03-29T22:00:00Z", resolution="1d",
             tz="Europe/Zurich", agg="max")  # fmt: skip
    times = hours(utc(2021, 3, 27, 23), 47)
    got = shape.local_windows(p, Points(times, [float(h) for h in range(47)], 1))
    assert got is not None
    assert got.values == [22.0, 46.0]


@pytest.mark.parametrize(
    ("fill", "middle"), [("none", None), ("null", None), ("previous", 1.0), ("linear", 2.0)]
)
def test_local_empty_day_with_each_fill(fill: str, middle: float | None) -> None:
    p = plan(start="2021-04-30T22:00:00Z", end="2021-05-03T22:00:00Z", resolution="1d",
             tz="Europe/Zurich", agg="mean", fill=fill)  # fmt: skip
    times = ["2021-04-30T22:00:00Z", "2021-05-02T22:00:00Z"]  # nothing on 2 May
    got = shape.local_windows(p, Points(times, [1.0, 3.0], 1), Points(times, [1, 1], 1))
    assert got is not None
    if fill == "none":
        assert got.times == times
        assert got.values == [1.0, 3.0]
    else:
        assert got.times == ["2021-04-30T22:00:00Z", "2021-05-01T22:00:00Z", times[1]]
        assert got.values == [1.0, middle, 3.0]


def test_local_buckets_of_two_tag_sets_are_left_to_flux() -> None:
    p = plan(start="2021-04-30T22:00:00Z", end="2021-05-01T22:00:00Z", resolution="1d",
             tz="Europe/Zurich", agg="sum")  # fmt: skip
    times = ["2021-04-30T22:00:00Z", "2021-04-30T23:00:00Z"]
    assert shape.local_windows(p, Points(times, [1.0, 2.0], 2)) is None
    interleaved = Points(times + times, [1.0, 2.0, 3.0, 4.0], 1)  # keep() merged the tables
    assert shape.local_windows(p, interleaved) is None


# --- Flux's windows ----------------------------------------------------------------------------


def test_plain_answer_passes_through_unparsed() -> None:
    """UTC windows, fill none: the same object, values still InfluxDB's text."""
    p = plan(resolution="1h")
    points = Points.of_texts(hours(utc(2021, 5, 2), 3), ["1.5", "2", "3.25"], 1)
    got = shape.flux_windows(p, points)
    assert got is points
    assert got.json_numbers() == ["1.5", "2", "3.25"]


def test_cut_first_window_is_relabelled_with_its_aligned_start() -> None:
    p = plan(start="2021-05-02T00:30:00Z", resolution="1h")
    points = Points.of_texts(["2021-05-02T00:30:00Z", "2021-05-02T01:00:00Z"], ["1", "2"], 1)
    got = shape.flux_windows(p, points)
    assert got.times == ["2021-05-02T00:00:00Z", "2021-05-02T01:00:00Z"]
    assert got.json_numbers() == ["1", "2"]


@pytest.mark.parametrize(
    ("agg", "fill", "empty"),
    [("mean", "null", None), ("mean", "previous", None), ("mean", "linear", None),
     ("count", "null", 0), ("count", "previous", 0), ("count", "linear", 0)],
)  # fmt: skip
def test_no_row_makes_every_window_with_each_fill(agg: str, fill: str, empty: int | None) -> None:
    got = shape.flux_windows(plan(resolution="1h", agg=agg, fill=fill), Points())
    assert got.times == hours(utc(2021, 5, 2), 3)
    assert got.values == [empty] * 3


def test_no_row_and_fill_none_is_no_window() -> None:
    assert shape.flux_windows(plan(resolution="1h"), Points()).times == []


def test_linear_fill_across_a_gap() -> None:
    p = plan(end="2021-05-02T04:00:00Z", resolution="1h", fill="linear")
    got = shape.flux_windows(p, Points(hours(utc(2021, 5, 2), 4), [1.0, None, None, 4.0], 1))
    assert got.values == [1.0, 2.0, 3.0, 4.0]


def test_raw_points_are_untouched() -> None:
    points = Points(["2021-05-02T00:30:00Z"], [None], 1)
    assert shape.flux_windows(plan(fill="linear"), points) is points


# --- tiers -------------------------------------------------------------------------------------


def tiered(**kw: str) -> QueryPlan:
    return replace(plan(**kw), tier=Tier(900))


def test_two_tag_sets_merged_into_one_tier_column() -> None:
    p = tiered(resolution="1h", agg="mean")
    times = hours(utc(2021, 5, 2), 3)
    sums = Points([t for t in times for _ in (0, 1)], [1.0, 3.0, 2.0, 4.0, 5.0, 7.0], 2)
    counts = Points(sums.times, [1, 1, 1, 1, 2, 2], 2)
    merged_sums, merged_counts = combine_keys(sums, "sum"), combine_keys(counts, "sum")
    assert merged_sums is not None
    assert merged_counts is not None
    values = shape.tier_column(p, "sum", merged_sums, NONE, [])
    count = shape.tier_column(p, "count", merged_counts, NONE, [])
    got = shape.tier_windows(p, values, count, None, [])
    assert got.times == times
    assert got.values == [2.0, 3.0, 3.0]
    assert (got.tables, got.source) == (1, "tier:15m")


def test_tier_edges_join_the_first_and_last_windows() -> None:
    """00:05-03:10 from a 15 m tier: the tier answers 00:15-03:00 (its first window cut, so
    labelled 00:15 by Flux), the raw points 00:05-00:15 join the 00:00 window and 03:00-03:10
    make the 03:00 window."""
    p = tiered(start="2021-05-02T00:05:00Z", end="2021-05-02T03:10:00Z", resolution="1h",
               agg="mean")  # fmt: skip
    inner_start, inner_end = p.tier_range
    assert (inner_start, inner_end) == (utc(2021, 5, 2, 0, 15), utc(2021, 5, 2, 3))
    inner = replace(p, start=inner_start, end=inner_end)
    labels = ["2021-05-02T00:15:00Z", "2021-05-02T01:00:00Z", "2021-05-02T02:00:00Z"]
    sums = shape.tier_column(inner, "sum", Points(list(labels), [9.0, 8.0, 4.0], 1), NONE, [])
    counts = shape.tier_column(inner, "count", Points(list(labels), [3, 4, 2], 1), NONE, [])
    assert sums.times[0] == "2021-05-02T00:00:00Z"
    edges = shape.edge_pair(p, Points(["2021-05-02T03:05:00Z", "2021-05-02T00:05:00Z",
                                       "2021-05-02T00:10:00Z"], [7.0, 1.0, 2.0], 1))  # fmt: skip
    assert edges is not None
    head, tail = edges
    assert (list(head.count), list(tail.count)) == ([2], [1])
    got = shape.tier_windows(p, sums, counts, edges, [])
    assert got.times == hours(utc(2021, 5, 2), 4)
    assert got.values == [(9.0 + 3.0) / 5, 2.0, 2.0, 7.0]


@pytest.mark.parametrize(
    ("agg", "expected"), [("max", [5.0, 2.0, 7.0]), ("first", [1.0, 2.0, 6.0])]
)
def test_tier_edges_of_an_aggregate(agg: str, expected: list[float]) -> None:
    p = tiered(start="2021-05-02T00:05:00Z", end="2021-05-02T02:10:00Z", resolution="1h",
               agg=agg)  # fmt: skip
    values = Points(["2021-05-02T00:00:00Z", "2021-05-02T01:00:00Z"], [5.0, 2.0], 1)
    edges = shape.edge_pair(p, Points(["2021-05-02T00:05:00Z", "2021-05-02T02:00:00Z",
                                       "2021-05-02T02:05:00Z"], [1.0, 6.0, 7.0], 1))  # fmt: skip
    assert edges is not None
    got = shape.tier_windows(p, values, None, edges, [])
    assert got.times == hours(utc(2021, 5, 2), 3)
    assert got.values == expected


@pytest.mark.parametrize("at", ["2021-05-02T00:05:00Z", "2021-05-02T02:05:00Z"])
def test_edge_of_two_tag_sets_at_one_instant_has_no_first(at: str) -> None:
    """Two tag sets with a point at the same instant in either edge: which came first is not
    in the rows, so the tier cannot answer ``first``/``last`` (the caller reads raw)."""
    p = tiered(start="2021-05-02T00:05:00Z", end="2021-05-02T02:10:00Z", resolution="1h",
               agg="first")  # fmt: skip
    other = "2021-05-02T02:01:00Z" if at < "2021-05-02T01" else "2021-05-02T00:06:00Z"
    same = Points([at, other, at], [1.0, 3.0, 2.0], 2)
    assert shape.edge_pair(p, same) is None
    assert shape.edge_pair(replace(p, agg=Agg.LAST), same) is None
    assert shape.edge_pair(replace(p, agg=Agg.MAX), same) is not None


def test_edge_pair_splits_at_the_tier_part() -> None:
    """Both edges read in one query: a point at the instant the tier's part begins is not an
    edge's (the tier holds it), one just before it is; fractional instants sort as instants."""
    p = tiered(start="2021-05-02T00:05:00Z", end="2021-05-02T02:10:00Z", resolution="1h",
               agg="sum")  # fmt: skip
    assert p.tier_range[0] == utc(2021, 5, 2, 0, 15)
    times = ["2021-05-02T00:14:59.5Z", "2021-05-02T00:05:00Z", "2021-05-02T02:00:00.25Z"]
    edges = shape.edge_pair(p, Points(times, [1.0, 2.0, 4.0], 1))
    assert edges is not None
    head, tail = edges
    assert (list(head.count), list(head.sum)) == ([2], [3.0])
    assert (list(tail.count), list(tail.sum)) == ([1], [4.0])
    none = shape.edge_pair(p, Points())
    assert none is not None
    assert (len(none[0]), len(none[1])) == (0, 0)


def test_tier_stddev_merges_the_edges() -> None:
    p = tiered(start="2021-05-02T00:05:00Z", end="2021-05-02T02:00:00Z", resolution="1h",
               agg="stddev", fill="null")  # fmt: skip
    starts = shape.start_micros(p)
    labels = [format_time(s) for s in p.window_starts()]
    assert starts.tolist() == [(s - EPOCH) // timedelta(microseconds=1) for s in p.window_starts()]
    got_starts, got_labels = shape.tier_labels(p)
    assert (got_starts.tolist(), got_labels) == (starts.tolist(), labels)
    rows = TierRows(["2021-05-02T00:15:00Z"], [2], [6.0], [2.0])  # points 2 and 4
    edges = shape.edge_pair(p, Points(["2021-05-02T00:05:00Z"], [3.0], 1))
    assert edges is not None
    assert len(edges[1]) == 0
    got = shape.tier_stddev(p, rows, edges, starts, labels)
    assert got.times == labels
    assert got.values[0] == pytest.approx(1.0)  # 2, 3, 4
    assert got.values[1] is None
    assert (got.tables, got.source) == (1, "tier:15m")


def test_plain_tier_answer_needs_no_windows() -> None:
    starts, labels = shape.tier_labels(tiered(resolution="1h"))
    assert (len(starts), labels) == (0, [])
    assert len(shape.tier_labels(tiered(resolution="1h", fill="null"))[1]) == 3


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2021-03-20T05:03:00Z", "2021-04-30T17:11:00Z"),  # over the spring change
        ("2021-10-30T18:07:00Z", "2021-11-01T09:00:00Z"),  # over the autumn change
        ("1969-12-20T23:59:59Z", "1970-01-12T00:00:01Z"),  # before and after the epoch
    ],
)
@pytest.mark.parametrize("tz", [None, "Europe/Zurich", "Asia/Kathmandu", "Australia/Lord_Howe"])
@pytest.mark.parametrize("resolution", ["1m", "15m", "1h", "6h", "1d", "1w"])
def test_window_starts_as_one_array_are_the_window_starts(
    start: str, end: str, tz: str | None, resolution: str
) -> None:
    """``start_micros`` and ``format_micros`` (what the tier, local and raw windows are made
    of, without a datetime per window) give ``window_starts`` and ``format_time`` of each,
    local clocks and both changes of the clocks included."""
    p = plan(start=start, end=end, resolution=resolution, **({"tz": tz} if tz else {}))
    want = p.window_starts()
    starts = shape.start_micros(p)
    assert starts.dtype == np.int64
    assert starts.tolist() == [(s - EPOCH) // timedelta(microseconds=1) for s in want]
    assert shape.format_micros(starts) == [format_time(s) for s in want]
