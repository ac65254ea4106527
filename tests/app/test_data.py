"""The data endpoints against the real influxd, compared with pandas over the same rows."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app import expected
from tests.app.conftest import ROOT, Series, sent_queries

# An unaligned start and an end on a data point: the first window is cut, the last point is out.
START = "2021-05-01T05:07:00Z"
END = "2021-05-02T03:52:30Z"
AGGS = list(expected.AGGS)


async def get_points(api: httpx.AsyncClient, name: str, **params: str) -> dict[str, Any]:
    r = await api.get(f"/v1/series/{name}/data", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["series"] == name
    return body


@pytest.mark.parametrize("resolution", ["1m", "15m", "1h", "1d"])
@pytest.mark.parametrize("agg", AGGS)
async def test_every_agg_matches_pandas(
    api: httpx.AsyncClient, dataset: dict[str, Series], agg: str, resolution: str
) -> None:
    body = await get_points(
        api, "f_soll_aktiv", start=START, end=END, resolution=resolution, agg=agg
    )
    assert body["resolution"] == resolution
    assert body["agg"] == agg
    assert body["unit"] == "Hz"
    want = expected.windows(dataset["f_soll_aktiv"].values, START, END, resolution, agg)
    assert want, "the comparison must not be vacuous"
    expected.same(body["points"], want)


@pytest.mark.parametrize("fill", ["none", "null", "previous", "linear"])
@pytest.mark.parametrize("agg", ["mean", "count", "max"])
async def test_fill_modes_match_pandas(
    api: httpx.AsyncClient, dataset: dict[str, Series], fill: str, agg: str
) -> None:
    body = await get_points(
        api, "f_soll_aktiv", start=START, end=END, resolution="15m", agg=agg, fill=fill
    )
    want = expected.windows(dataset["f_soll_aktiv"].values, START, END, "15m", agg, fill)
    expected.same(body["points"], want)
    times = [p["time"] for p in body["points"]]
    # The data has no rows from 06:00 to 07:30: those six windows exist only when filled.
    assert ("2021-05-01T06:30:00Z" in times) is (fill != "none")
    if fill == "none":
        assert len(times) == 92 - 6  # 05:00 to 03:45, less the gap


async def test_first_window_is_labelled_with_its_aligned_start(api: httpx.AsyncClient) -> None:
    body = await get_points(api, "f_soll_aktiv", start=START, end=END, resolution="1h")
    assert body["points"][0]["time"] == "2021-05-01T05:00:00Z"
    assert body["points"][-1]["time"] == "2021-05-02T03:00:00Z"
    assert body["start"] == START
    assert body["end"] == END


async def test_raw_is_half_open(api: httpx.AsyncClient, dataset: dict[str, Series]) -> None:
    start, end = "2021-05-02T00:00:00Z", "2021-05-02T00:05:00Z"
    body = await get_points(api, "f_soll_aktiv", start=start, end=end, resolution="raw")
    want = expected.raw(dataset["f_soll_aktiv"].values, start, end)
    expected.same(body["points"], want)
    assert body["points"][-1]["time"] < end
    assert body["agg"] is None


@pytest.mark.parametrize(
    ("start", "end", "short_day", "hours"),
    [
        ("2021-03-26T00:00:00+01:00", "2021-04-01T00:00:00+02:00", "2021-03-27T23:00:00Z", 23),
        ("2021-10-29T00:00:00+02:00", "2021-11-03T00:00:00+01:00", "2021-10-30T22:00:00Z", 25),
    ],
)
@pytest.mark.parametrize("agg", ["count", "sum", "mean"])
async def test_zurich_days_across_dst(
    api: httpx.AsyncClient,
    dataset: dict[str, Series],
    start: str,
    end: str,
    short_day: str,
    hours: int,
    agg: str,
) -> None:
    body = await get_points(
        api, "active_losses", start=start, end=end, resolution="1d", tz="Europe/Zurich", agg=agg
    )
    assert body["tz"] == "Europe/Zurich"
    want = expected.windows(
        dataset["active_losses"].values, start, end, "1d", agg, tz="Europe/Zurich"
    )
    expected.same(body["points"], want)
    by_time = {p["time"]: p["value"] for p in body["points"]}
    if agg == "count":
        # 15-minute rows: a 23-hour day has 92, a 25-hour day 100, the others 96.
        assert by_time[short_day] == hours * 4
        assert sorted(set(by_time.values())) == sorted({96, hours * 4})


async def test_days_without_tz_are_utc(api: httpx.AsyncClient) -> None:
    body = await get_points(
        api, "active_losses", start="2021-03-27T00:00:00Z", end="2021-03-30T00:00:00Z",
        resolution="1d", agg="count",
    )  # fmt: skip
    assert [p["time"] for p in body["points"]] == [
        "2021-03-27T00:00:00Z",
        "2021-03-28T00:00:00Z",
        "2021-03-29T00:00:00Z",
    ]
    assert [p["value"] for p in body["points"]] == [96, 96, 96]
    assert body["tz"] is None


async def test_weeks_start_on_monday(api: httpx.AsyncClient) -> None:
    body = await get_points(
        api, "active_losses", start="2021-03-24T00:00:00Z", end="2021-04-02T00:00:00Z",
        resolution="1w", agg="count",
    )  # fmt: skip
    assert [p["time"] for p in body["points"]] == ["2021-03-22T00:00:00Z", "2021-03-29T00:00:00Z"]
    assert [p["value"] for p in body["points"]] == [5 * 96, 4 * 96]


@pytest.mark.parametrize("resolution", ["30s", "15m", "1h"])
async def test_multi_series_alignment(
    api: httpx.AsyncClient, dataset: dict[str, Series], resolution: str
) -> None:
    names = ["f_soll_aktiv", "enduse"]
    r = await api.get(
        "/v1/data",
        params={"series": names, "start": START, "end": END, "resolution": resolution},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["series"] == [
        {"name": "f_soll_aktiv", "unit": "Hz"},
        {"name": "enduse", "unit": "kWh"},
    ]
    columns = {
        n: dict(expected.windows(dataset[n].values, START, END, resolution, "mean")) for n in names
    }
    axis = sorted(set(columns["f_soll_aktiv"]) | set(columns["enduse"]))
    assert [p["time"] for p in body["points"]] == axis
    for point in body["points"]:
        for j, n in enumerate(names):
            want = columns[n].get(point["time"])
            got = point["values"][j]
            assert (got is None) is (want is None), (point, n)
            if want is not None:
                assert got == pytest.approx(want, rel=1e-9)
    # 15-minute energy has no value at the 30 s windows in between: nulls, not missing rows.
    if resolution == "30s":
        assert any(p["values"][1] is None and p["values"][0] is not None for p in body["points"])


async def test_formats_carry_the_same_points(api: httpx.AsyncClient) -> None:
    params = {"start": START, "end": END, "resolution": "1h", "agg": "max"}
    js = (await api.get("/v1/series/f_soll_aktiv/data", params=params)).json()["points"]
    csv = await api.get("/v1/series/f_soll_aktiv/data", params={**params, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "time,value,partial"
    assert [(t, float(v), f == "true") for t, v, f in (x.split(",") for x in lines[1:])] == [
        (p["time"], p["value"], p["partial"]) for p in js
    ]
    # START (05:07) and END (03:52:30) cut the first and the last hour; the others are whole.
    assert [p["partial"] for p in js] == [True] + [False] * (len(js) - 2) + [True]
    nd = await api.get(
        "/v1/series/f_soll_aktiv/data", params=params, headers={"Accept": "application/x-ndjson"}
    )
    assert nd.headers["content-type"] == "application/x-ndjson"
    assert [orjson.loads(x) for x in nd.content.splitlines()] == js
    by_accept = await api.get(
        "/v1/series/f_soll_aktiv/data", params=params, headers={"Accept": "text/csv"}
    )
    assert by_accept.text == csv.text
    multi = await api.get(
        "/v1/data", params={**params, "series": ["f_soll_aktiv", "enduse"], "format": "csv"}
    )
    assert multi.text.splitlines()[0] == "time,f_soll_aktiv,enduse,partial"
    table = await api.get("/v1/data", params={**params, "series": ["f_soll_aktiv", "enduse"]})
    marked = [p["time"] for p in table.json()["points"] if p["partial"]]
    assert marked == ["2021-05-01T05:00:00Z", "2021-05-02T03:00:00Z"]


async def test_catalog(api: httpx.AsyncClient, dataset: dict[str, Series]) -> None:
    r = await api.get("/v1/series")
    assert r.status_code == 200
    listed = {s["name"]: s for s in r.json()["series"]}
    assert set(listed) == {*dataset, "two_sites"}
    assert listed["two_sites"]["tags"] == {"site": ["a", "b"]}
    for name, series in dataset.items():
        assert listed[name]["unit"] == series.unit
        assert listed[name]["first"] == expected.label(series.values.index[0])
        assert listed[name]["last"] == expected.label(series.values.index[-1])
    assert listed["site.load-1"]["tags"] == {"site": ["north"]}
    assert listed["f_soll_aktiv"]["tags"] == {}
    one = await api.get("/v1/series/site.load-1")
    assert one.json() == listed["site.load-1"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    offset=st.integers(0, 2 * 86400),
    span=st.integers(1, 3 * 86400),
    max_points=st.integers(1, 3000),
)
async def test_auto_never_exceeds_max_points(
    api: httpx.AsyncClient, offset: int, span: int, max_points: int
) -> None:
    t0 = datetime(2021, 4, 30, 12, tzinfo=UTC) + timedelta(seconds=offset)
    t1 = t0 + timedelta(seconds=span)
    r = await api.get(
        "/v1/series/f_soll_aktiv/data",
        params={
            "start": t0.isoformat().replace("+00:00", "Z"),
            "end": t1.isoformat().replace("+00:00", "Z"),
            "resolution": "auto",
            "max_points": str(max_points),
            "fill": "null",
        },
    )
    if r.status_code == 422:  # no standard resolution fits: said so, with nothing to suggest
        assert r.json()["error"] == "too_many_points"
        assert r.json()["suggested_resolution"] is None
        return
    assert r.status_code == 200, r.text
    body = r.json()
    assert 1 <= len(body["points"]) <= max_points


@pytest.mark.parametrize(("agg", "resolution"), [("mean", "1h"), ("count", "2h"), ("max", "1d")])
async def test_several_tag_sets_are_one_series(
    api: httpx.AsyncClient, two_sites: list[Series], agg: str, resolution: str
) -> None:
    start, end = "2021-05-01T00:00:00Z", "2021-05-02T00:00:00Z"
    body = await get_points(api, "two_sites", start=start, end=end, resolution=resolution, agg=agg)
    rows = pd.concat([s.values for s in two_sites]).sort_index()
    want = expected.windows(rows, start, end, resolution, agg)
    expected.same(body["points"], want)
    times = [p["time"] for p in body["points"]]
    assert len(times) == len(set(times))  # one row per window, not one per tag set


async def test_several_tag_sets_raw_in_time_order(api: httpx.AsyncClient) -> None:
    body = await get_points(
        api, "two_sites", start="2021-05-01T00:00:00Z", end="2021-05-01T02:00:00Z",
        resolution="raw",
    )  # fmt: skip
    assert [(p["time"], p["value"]) for p in body["points"]] == [
        ("2021-05-01T00:00:00Z", 0.0),
        ("2021-05-01T00:10:00Z", 100.0),
        ("2021-05-01T00:30:00Z", 1.0),
        ("2021-05-01T01:00:00Z", 2.0),
        ("2021-05-01T01:00:00Z", 101.0),
        ("2021-05-01T01:30:00Z", 3.0),
        ("2021-05-01T01:50:00Z", 102.0),
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2019-10-20T00:00:00+02:00", "2019-11-03T00:00:00+01:00"),  # a 25-hour day
        ("2019-03-24T00:00:00+01:00", "2019-04-07T00:00:00+02:00"),  # a 23-hour day
        ("2018-12-27T00:00:00+01:00", "2019-01-04T00:00:00+01:00"),  # days before the data
    ],
)
@pytest.mark.parametrize("fill", ["none", "null", "previous", "linear"])
@pytest.mark.parametrize("agg", ["mean", "min", "max", "sum", "count", "first", "last"])
async def test_zurich_days_composed_from_utc_hours_match_pandas(
    api: httpx.AsyncClient,
    dataset: dict[str, Series],
    start: str,
    end: str,
    fill: str,
    agg: str,
) -> None:
    """Local days of the pushed-down aggregates are composed from UTC hours (no `location`):
    every value and every empty day as pandas makes them from the same rows."""
    body = await get_points(
        api, "active_losses", start=start, end=end, resolution="1d", tz="Europe/Zurich",
        agg=agg, fill=fill,
    )  # fmt: skip
    want = expected.windows(
        dataset["active_losses"].values, start, end, "1d", agg, fill, tz="Europe/Zurich"
    )
    expected.same(body["points"], want)


@pytest.mark.parametrize(
    ("series", "finest"), [("enduse", 900), ("active_losses", 900), ("f_soll_aktiv", 30)]
)
@pytest.mark.parametrize("days", [1, 2, 30])
async def test_auto_is_never_finer_than_the_series_spacing(
    api: httpx.AsyncClient, dataset: dict[str, Series], series: str, finest: int, days: int
) -> None:
    """A 15-minute series at `auto` over two days got 1 m windows: 14 of 15 empty, no line."""
    start = "2021-05-01T00:00:00Z"
    end = (datetime(2021, 5, 1, tzinfo=UTC) + timedelta(days=days)).isoformat()
    body = await get_points(
        api, series, start=start, end=end.replace("+00:00", "Z"), resolution="auto", fill="null"
    )
    assert expected.seconds(body["resolution"]) >= finest
    want = expected.windows(dataset[series].values, start, end, body["resolution"], "mean", "null")
    expected.same(body["points"], want)
    # Windows of at least the spacing: within the data, only the series' own gaps are empty.
    values = dataset[series].values
    inside = [
        p
        for p in body["points"]
        if expected.label(values.index[0]) <= p["time"] <= expected.label(values.index[-1])
    ]
    assert inside
    assert sum(p["value"] is None for p in inside) <= len(inside) // 10 + 180
    # Several series: windows no finer than the coarsest spacing among them.
    other = "enduse" if series == "f_soll_aktiv" else "f_soll_aktiv"
    multi = await api.get(
        "/v1/data",
        params={"series": [series, other], "start": start, "end": end, "resolution": "auto"},
    )
    assert multi.status_code == 200, multi.text
    assert expected.seconds(multi.json()["resolution"]) >= 900


def documented_examples() -> list[str]:
    """Every data URL the README and docs/api.md show to a user."""
    found: list[str] = []
    for doc in (ROOT / "README.md", ROOT / "docs" / "api.md"):
        found += re.findall(
            r"http://127\.0\.0\.1:8000(/v1/[^'\" ]*data\?[^'\" ]+)", doc.read_text()
        )
    return found


@pytest.mark.parametrize("url", documented_examples())
async def test_documented_examples_ask_for_whole_windows(api: httpx.AsyncClient, url: str) -> None:
    """The README's daily sums started at 00:00Z: a first "day" of 88 quarter hours, unmarked."""
    r = await api.get(url.replace("%2B", "+").replace("+", "%2B"))
    assert r.status_code == 200, r.text
    if r.headers["content-type"].startswith("text/csv"):
        rows = r.text.splitlines()
        assert rows[0].endswith(",partial")
        assert len(rows) > 1
        assert all(row.endswith(",false") for row in rows[1:]), rows
    else:
        points = r.json()["points"]
        assert points
        assert not any(p["partial"] for p in points)


async def test_local_days_cut_by_the_range_are_partial(api: httpx.AsyncClient) -> None:
    params = {"resolution": "1d", "agg": "count", "tz": "Europe/Zurich", "format": "csv"}
    cut = await api.get(
        "/v1/series/active_losses/data",
        params={**params, "start": "2019-10-01T00:00:00Z", "end": "2019-11-01T00:00:00Z"},
    )
    rows = [row.split(",") for row in cut.text.splitlines()[1:]]
    assert (rows[0][1], rows[0][2]) == ("88", "true")  # 22 of 24 hours (CEST)
    assert (rows[-1][1], rows[-1][2]) == ("4", "true")  # 1 of 24 hours (CET)
    assert {r[2] for r in rows[1:-1]} == {"false"}
    assert [r[1] for r in rows if r[0] == "2019-10-26T22:00:00Z"] == ["100"]  # 25 hours, whole


COUNT_CASES = [
    # (series, start, end, resolution, tz): gaps inside, ranges past the data, no data at all
    (["f_soll_aktiv", "enduse"], "2021-05-01T05:00:00Z", "2021-05-01T09:00:00Z", "15m", None),
    (["enduse", "counter"], "2021-04-30T00:00:00Z", "2021-05-04T00:00:00Z", "1h", None),
    (
        ["enduse", "two_sites"],
        "2021-04-29T22:00:00Z",
        "2021-05-04T22:00:00Z",
        "1d",
        "Europe/Zurich",
    ),
    (["active_losses", "enduse"], "2019-03-30T00:00:00Z", "2019-04-01T00:00:00Z", "6h", None),
    (["counter", "site.load-1"], "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", "1h", None),
    (["f_soll_aktiv", "site.load-1"], "2021-05-02T00:00:00Z", "2021-05-03T00:00:00Z", "1h", None),
    (
        ["f_soll_aktiv", "site.load-1"],
        "2021-05-01T22:00:00Z",
        "2021-05-03T22:00:00Z",
        "1d",
        "Europe/Zurich",
    ),
    (
        ["f_soll_aktiv", "site.load-1"],
        "2021-05-01T22:00:00Z",
        "2021-05-03T22:00:00Z",
        "1d",
        "Asia/Kathmandu",
    ),
]


@pytest.mark.parametrize(("names", "start", "end", "resolution", "tz"), COUNT_CASES)
@pytest.mark.parametrize("fill", ["null", "previous", "linear"])
async def test_count_of_an_empty_window_is_zero_on_every_endpoint(
    api: httpx.AsyncClient,
    names: list[str],
    start: str,
    end: str,
    resolution: str,
    tz: str | None,
    fill: str,
) -> None:
    """One rule: a window without points has count 0 whatever `fill` says (fill is for
    aggregates that have no value on an empty window); it was 0 on one endpoint, null on the
    other."""
    params = {"start": start, "end": end, "resolution": resolution, "agg": "count", "fill": fill}
    if tz:
        params["tz"] = tz
    multi = await api.get("/v1/data", params={**params, "series": names})
    assert multi.status_code == 200, multi.text
    rows = multi.json()["points"]
    assert rows
    for j, name in enumerate(names):
        one = await get_points(api, name, **params)
        assert [p["time"] for p in one["points"]] == [r["time"] for r in rows]
        assert [p["value"] for p in one["points"]] == [r["values"][j] for r in rows], name
        assert all(isinstance(p["value"], int) for p in one["points"]), one["points"][:3]


LOCAL_CASES = [
    # (series, start, end, resolution, tz)
    ("f_soll_aktiv", START, END, "1h", "Asia/Kathmandu"),  # UTC+05:45: hours start at :15 UTC
    ("f_soll_aktiv", START, END, "10m", "Asia/Kathmandu"),  # 10 min windows at :05, :15, ...
    ("f_soll_aktiv", START, END, "1h", "Europe/Zurich"),  # the same as UTC hours
    ("f_soll_aktiv", START, END, "6h", "Europe/Zurich"),  # local 00, 06, 12, 18
    ("active_losses", "2019-03-30T21:07:00Z", "2019-04-01T02:00:00Z", "2h", "Europe/Zurich"),
    ("active_losses", "2019-10-26T20:00:00Z", "2019-10-28T01:30:00Z", "1h", "Europe/Zurich"),
    ("active_losses", "2019-10-26T20:00:00Z", "2019-10-28T01:30:00Z", "3h", "Europe/Zurich"),
    ("active_losses", "2019-04-06T00:00:00Z", "2019-04-08T00:00:00Z", "1h", "Australia/Lord_Howe"),
    ("active_losses", "2019-10-05T00:00:00Z", "2019-10-07T00:00:00Z", "1h", "Australia/Lord_Howe"),
]


@pytest.mark.parametrize(("series", "start", "end", "resolution", "tz"), LOCAL_CASES)
@pytest.mark.parametrize("agg", AGGS)
async def test_windows_under_a_day_in_a_zone_follow_its_clock(
    api: httpx.AsyncClient,
    dataset: dict[str, Series],
    series: str,
    start: str,
    end: str,
    resolution: str,
    tz: str,
    agg: str,
) -> None:
    """Issue 11: `resolution=1h&tz=Asia/Kathmandu` answered UTC hours with "tz": null. Every
    aggregate, through DST changes both ways, against windows found by brute force."""
    body = await get_points(
        api, series, start=start, end=end, resolution=resolution, agg=agg, tz=tz, fill="null"
    )
    assert body["tz"] == tz
    want = expected.windows(dataset[series].values, start, end, resolution, agg, "null", tz)
    assert len(want) >= 4
    expected.same(body["points"], want)


# Ranges of the series the median and stddev cases draw from: a 30 s series with a gap and rows
# missing, the 15 min losses across both 2021 DST changes, and a series under two tag sets.
COMPUTED_SPANS = {
    "f_soll_aktiv": ("2021-05-01T00:00:00Z", 2 * 86400),
    "active_losses": ("2021-03-26T00:00:00Z", 6 * 86400),
    "active_losses ": ("2021-10-29T00:00:00Z", 6 * 86400),
    "two_sites": ("2021-05-01T00:00:00Z", 86400),
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(sorted(COMPUTED_SPANS)),
    offset=st.floats(0, 1),
    length=st.floats(0.01, 1),
    resolution=st.sampled_from(["1m", "5m", "15m", "1h", "3h", "1d"]),
    tz=st.sampled_from([None, "Europe/Zurich", "Asia/Kathmandu"]),
    fill=st.sampled_from(["none", "null", "previous", "linear"]),
    agg=st.sampled_from(["median", "stddev"]),
)
async def test_medians_and_stddevs_equal_fluxs_own(
    api: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    offset: float,
    length: float,
    resolution: str,
    tz: str | None,
    fill: str,
    agg: str,
) -> None:
    """The API computes medians and standard deviations from the raw points itself (Flux's
    cost InfluxDB 4-8 x as much); they equal Flux's own, which the API falls back to above
    ``COMPUTE_READ_POINTS``: labels, partial windows, fills and nulls exactly, values exactly
    for medians and within 1e-9 relative for standard deviations (summed in another order)."""
    from app import store as store_module

    first, seconds = COMPUTED_SPANS[which]
    begin = datetime.fromisoformat(first.replace("Z", "+00:00"))
    start = begin + timedelta(seconds=int(offset * seconds * 0.9))
    end = start + timedelta(seconds=max(60, int(length * (seconds - (start - begin).seconds))))
    params = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "resolution": resolution,
              "agg": agg, "fill": fill, **({"tz": tz} if tz else {})}  # fmt: skip
    name = which.strip()
    url = f"/v1/series/{name}/data"
    await api.get(url, params=params)  # the series' spacing, once
    ours, sent = await sent_queries(api, api.get(url, params=params))
    with monkeypatch.context() as m:
        m.setattr(store_module, "COMPUTE_READ_POINTS", 0)
        m.setattr(store_module, "READ_POINTS_AS_WINDOWS", False)
        fluxs, sent_flux = await sent_queries(api, api.get(url, params=params))
    assert ours.status_code == fluxs.status_code, (params, ours.text, fluxs.text)
    if agg == "median" or ours.status_code != 200:
        assert ours.json() == fluxs.json(), params
    else:
        got, want = ours.json(), fluxs.json()
        assert {**got, "points": []} == {**want, "points": []}, params
        assert [(p["time"], p["partial"], p["value"] is None) for p in got["points"]] == [
            (p["time"], p["partial"], p["value"] is None) for p in want["points"]
        ], params
        for a, b in zip(got["points"], want["points"], strict=True):
            if a["value"] is not None:
                assert math.isclose(a["value"], b["value"], rel_tol=1e-9, abs_tol=1e-12), params
    if ours.status_code == 200:  # one read of the raw points (as they are: windows of one)
        assert sent in ({"data": 1}, {"as_windows": 1}), params
    if fill == "none" and ours.json().get("points"):  # there were points: Flux's after
        assert sent_flux["data"] >= 2, params  # the read (two tag sets: once more, merged)
