"""Unit tests of the Flux builder: the text's shape per plan, and user values only as params."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.query import flux
from app.query.plan import Agg, DataParams, Fill, QueryPlan, TierBucket, build_plan, choose_source
from gridts.tiers import parse_tiers

CAP = 100_000


def plan(series: tuple[str, ...] = ("f_soll_aktiv",), **kw: str) -> QueryPlan:
    params = DataParams(**{"start": "2021-05-02T00:00:00Z", "end": "2021-05-03T00:00:00Z", **kw})
    return build_plan(list(series), params, bucket="grid", max_points_cap=CAP)


def test_aggregate_query_shape_and_params() -> None:
    q = flux.series_query(plan(resolution="15m", agg="max"), "f_soll_aktiv")
    assert q.text == (
        "from(bucket: p_bucket)\n"
        "    |> range(start: p_start, stop: p_stop)\n"
        '    |> filter(fn: (r) => r._measurement == p_series and r._field == "value")\n'
        "    |> aggregateWindow(every: p_every, offset: p_offset, fn: max, "
        'timeSrc: "_start", createEmpty: false)\n'
        '    |> keep(columns: ["_time", "_value"])'
    )
    assert q.params == {
        "p_bucket": "grid",
        "p_series": "f_soll_aktiv",
        "p_start": datetime(2021, 5, 2, tzinfo=UTC),
        "p_stop": datetime(2021, 5, 3, tzinfo=UTC),
        "p_every": timedelta(minutes=15),
        "p_offset": timedelta(0),
    }


@pytest.mark.parametrize(
    ("agg", "fn"),
    [
        (Agg.MEAN, "fn: mean,"),
        (Agg.MIN, "fn: min,"),
        (Agg.MAX, "fn: max,"),
        (Agg.SUM, "fn: sum,"),
        (Agg.COUNT, "fn: count,"),
        (Agg.FIRST, "fn: first,"),
        (Agg.LAST, "fn: last,"),
        (Agg.STDDEV, "fn: stddev,"),
        (Agg.MEDIAN, 'median(column: column, method: "exact_mean")'),
    ],
)
def test_every_agg_has_its_function(agg: Agg, fn: str) -> None:
    q = flux.series_query(plan(resolution="1h", agg=agg.value), "f_soll_aktiv")
    assert fn in q.text
    assert 'timeSrc: "_start"' in q.text


@pytest.mark.parametrize(
    ("fill", "create_empty", "previous"),
    [
        (Fill.NONE, "false", False),
        (Fill.NULL, "true", False),
        (Fill.PREVIOUS, "true", True),
        (Fill.LINEAR, "true", False),  # interpolated after the query
    ],
)
def test_fill_modes(fill: Fill, create_empty: str, previous: bool) -> None:
    q = flux.series_query(plan(resolution="1h", fill=fill.value), "f_soll_aktiv")
    assert f"createEmpty: {create_empty}" in q.text
    assert ("usePrevious: true" in q.text) is previous
    assert "interpolate" not in q.text


def test_days_with_tz_use_location_param() -> None:
    q = flux.series_query(plan(resolution="1d", tz="Europe/Zurich"), "f_soll_aktiv")
    assert q.text.startswith('import "timezone"\n')
    assert "location: timezone.location(name: p_tz)" in q.text
    assert q.params["p_tz"] == "Europe/Zurich"
    assert q.params["p_every"] == timedelta(days=1)


def test_sub_day_windows_ignore_tz() -> None:
    q = flux.series_query(plan(resolution="1h", tz="Europe/Zurich"), "f_soll_aktiv")
    assert "timezone" not in q.text
    assert "p_tz" not in q.params


def test_weeks_are_offset_to_monday() -> None:
    q = flux.series_query(plan(resolution="1w", start="2021-01-01T00:00:00Z"), "f_soll_aktiv")
    assert q.params["p_offset"] == timedelta(days=4)


def test_raw_query_limits_to_cap_plus_one() -> None:
    q = flux.series_query(plan(resolution="raw", max_points="500"), "f_soll_aktiv")
    assert "aggregateWindow" not in q.text
    assert q.text.endswith("|> limit(n: p_limit)")
    assert q.params["p_limit"] == 501


def test_series_must_belong_to_plan() -> None:
    with pytest.raises(ValueError, match="not part of the plan"):
        flux.series_query(plan(), "other")


def test_catalog_query() -> None:
    q = flux.catalog_query("grid")
    assert 'yield(name: "first")' in q.text
    assert 'yield(name: "last")' in q.text
    assert q.params["p_bucket"] == "grid"
    start, stop = q.params["p_start"], q.params["p_stop"]
    assert isinstance(start, datetime)
    assert isinstance(stop, datetime)
    assert start < stop


_IDENTIFIER = re.compile(r"\bp_[a-z]+\b")
_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", fullmatch=True)  # gridts.names


@settings(max_examples=200, deadline=None)
@given(
    name=_name,
    resolution=st.sampled_from(["raw", "auto", "1s", "90s", "15m", "1h", "1d", "2w"]),
    agg=st.sampled_from([a.value for a in Agg]),
    fill=st.sampled_from([f.value for f in Fill]),
    tz=st.sampled_from(["", "Europe/Zurich", "America/St_Johns"]),
)
def test_user_values_never_reach_the_text(
    name: str, resolution: str, agg: str, fill: str, tz: str
) -> None:
    p = plan((name,), resolution=resolution, agg=agg, fill=fill, tz=tz)
    q = flux.series_query(p, name)
    # The text is the same whatever the series is called: only parameters change.
    other = flux.series_query(plan(("zz",), resolution=resolution, agg=agg, fill=fill, tz=tz), "zz")
    assert q.text == other.text
    assert set(_IDENTIFIER.findall(q.text)) <= set(q.params)
    assert q.params["p_series"] == name
    assert "2021" not in q.text
    if tz:
        assert tz not in q.text


@pytest.mark.parametrize("resolution", ["raw", "15m"])
def test_merged_tag_sets(resolution: str) -> None:
    p = plan(resolution=resolution)
    merged = flux.series_query(p, "f_soll_aktiv", merge_keys=True)
    plain = flux.series_query(p, "f_soll_aktiv")
    assert "group(" not in plain.text
    head, tail = merged.text.split('group(columns: ["_measurement", "_field"])')
    assert "filter(" in head  # merged after selecting the series, before windowing
    assert tail.index('sort(columns: ["_time"])') < (
        tail.index("aggregateWindow") if "aggregateWindow" in tail else len(tail)
    )
    assert merged.params == plain.params


def _tiered(start: str, end: str, resolution: str) -> QueryPlan:
    plan = build_plan(
        ["f"],
        DataParams(start=start, end=end, resolution=resolution),
        bucket="grid",
        max_points_cap=100_000,
    )
    buckets = [TierBucket(t) for t in parse_tiers("1m,15m,1h")]
    return choose_source(plan, buckets, datetime(2030, 1, 1, tzinfo=UTC), [1.0], 500_000)


@pytest.mark.parametrize(
    ("start", "end", "seconds", "offset", "windowed"),
    [
        ("2021-05-01T00:00:00Z", "2021-05-02T00:00:00Z", 900, 0, False),  # its own windows
        ("2021-05-01T00:00:00Z", "2021-05-02T00:00:00Z", 3600, 0, True),  # coarser
        ("2021-05-01T00:00:30Z", "2021-05-02T00:00:00Z", 900, 0, True),  # not on its windows
        ("2021-05-01T00:00:00Z", "2021-05-01T23:59:59.5Z", 900, 0, True),
        ("2021-05-03T00:00:00Z", "2021-05-10T00:00:00Z", 900, 345_600, True),  # an offset
    ],
)
def test_a_tiers_own_windows_are_read_as_stored(
    start: str, end: str, seconds: int, offset: int, windowed: bool
) -> None:
    """The tier's points are its windows, one each at its start: over a range on their
    boundaries they are read without `aggregateWindow` (the same rows, less work for
    InfluxDB); any other window or range is aggregated."""
    plan = _tiered(start, end, "15m")
    assert plan.tier is not None
    assert plan.tier.seconds == 900
    q = flux.tier_query(plan, "f", "max", seconds, offset)
    assert ("aggregateWindow" in q.text) is windowed
    assert ("p_every" in q.params) is windowed
    assert (q.params["p_start"], q.params["p_stop"]) == (plan.start, plan.end)


def test_edges_query_reads_each_range_in_one_query() -> None:
    p = plan(resolution="1h")
    a = (datetime(2021, 5, 2, 0, 5, tzinfo=UTC), datetime(2021, 5, 2, 1, tzinfo=UTC))
    b = (datetime(2021, 5, 2, 23, tzinfo=UTC), datetime(2021, 5, 2, 23, 10, tzinfo=UTC))
    one = flux.edges_query(p, "f_soll_aktiv", [a])
    assert "union" not in one.text
    assert one.params == {"p_raw_bucket": "grid", "p_series": "f_soll_aktiv",
                          "p_edge_start0": a[0], "p_edge_stop0": a[1]}  # fmt: skip
    two = flux.edges_query(p, "f_soll_aktiv", [a, b])
    assert two.text.startswith("union(tables: [")
    assert two.text.count("from(bucket: p_raw_bucket)") == 2
    assert (two.params["p_edge_start1"], two.params["p_edge_stop1"]) == b
    assert two.text.endswith('|> keep(columns: ["_time", "_value"])')
    with pytest.raises(ValueError, match="no range"):
        flux.edges_query(p, "f_soll_aktiv", [])


def test_with_edges_is_one_query_of_two_results() -> None:
    p = plan(resolution="1h")
    core = flux.series_query(p, "f_soll_aktiv")
    edge = (datetime(2021, 5, 2, 0, 5, tzinfo=UTC), datetime(2021, 5, 2, 1, tzinfo=UTC))
    edges = flux.edges_query(p, "f_soll_aktiv", [edge])
    both = flux.with_edges(core, edges)
    assert both.text.startswith(core.text)
    assert both.text.count("|> yield(") == 2
    assert '|> yield(name: "core")' in both.text
    assert both.text.endswith('|> yield(name: "edges")')
    assert both.params == {**core.params, **edges.params}
    # a parameter both name must mean the same in both
    clash = flux.FluxQuery(edges.text, {**edges.params, "p_series": "other"})
    with pytest.raises(ValueError, match="p_series"):
        flux.with_edges(core, clash)


def test_count_query_is_pushed_down() -> None:
    """`range |> filter |> count()`: the shape InfluxDB counts in its storage engine."""
    q = flux.count_query(plan(resolution="raw"), "f_soll_aktiv")
    assert q.text == (
        "from(bucket: p_bucket)\n"
        "    |> range(start: p_start, stop: p_stop)\n"
        '    |> filter(fn: (r) => r._measurement == p_series and r._field == "value")\n'
        "    |> count()\n"
        '    |> keep(columns: ["_value"])'
    )
    assert q.params["p_series"] == "f_soll_aktiv"
