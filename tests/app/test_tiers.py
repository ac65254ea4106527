"""Rollup tiers in the API (issue 10, items 4 and 5): the plan picks the coarsest tier that answers
exactly, and the tiered answer equals the raw answer.

The fixture writes its series as line protocol and has the operator's commands create and fill
the tier buckets (`python -m ingest tiers`, `python -m ingest rollup`): one point per series key
and window that holds points, fields count, sum, min, max, first, last, m2, at the window's
start. Every comparison asks two API instances over the same bucket: one with the default
tiers, one with `API_TIERS=""` (the raw points, as before tiers existed).
"""

from __future__ import annotations

import math
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from app.query.plan import (
    DataParams,
    TierBucket,
    build_plan,
    choose_source,
    pick_tier,
)
from gridts import tiers
from gridts.tiers import Tier, parse_tiers
from tests import prometheus_text
from tests.app.conftest import (
    ROOT,
    AppClient,
    Series,
    line_protocol,
    make_settings,
    sent_queries,
)
from tests.conftest import InfluxServer

TIERS = parse_tiers("1m,15m,1h")
COMPOSABLE = ["mean", "min", "max", "sum", "count", "first", "last", "stddev"]
EXACT = {"count", "min", "max", "first", "last"}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


# ---- the plan's choice, without a database ------------------------------------------------------


def plan(**kw: str) -> Any:
    params = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T00:00:00Z", **kw}
    return build_plan(["s"], DataParams(**params), bucket="grid", max_points_cap=100_000)


ALL = tuple(TierBucket(t) for t in TIERS)


@pytest.mark.parametrize(
    ("kw", "tier"),
    [
        ({"resolution": "1d"}, "1h"),
        ({"resolution": "1h", "agg": "max"}, "1h"),
        ({"resolution": "30m", "agg": "stddev"}, "15m"),
        ({"resolution": "5m", "agg": "first"}, "1m"),
        ({"resolution": "90s"}, None),  # 1m does not divide 90 s
        ({"resolution": "30s"}, None),  # finer than the finest tier
        ({"resolution": "1h", "agg": "median"}, None),  # does not compose
        ({"resolution": "raw"}, None),
        ({"resolution": "1w"}, "1h"),  # weeks start on Monday: four days after the epoch
        # start and end on tier boundaries: the coarsest tier that aligns with both
        ({"resolution": "1h", "start": "2021-05-01T00:15:00Z"}, "15m"),
        ({"resolution": "1h", "end": "2021-05-01T23:59:00Z"}, "1m"),
        # neither: the coarsest tier with a whole window inside answers, the edges are raw
        ({"resolution": "1h", "start": "2021-05-01T00:00:30Z"}, "1h"),
        ({"resolution": "1h", "start": "2021-05-01T00:00:00.5Z"}, "1h"),
        (
            {"resolution": "1d", "start": "2021-05-01T00:07:00Z", "end": "2021-05-01T00:59:00Z"},
            "1m",  # both ends on minutes: no raw edges
        ),
        (
            {"resolution": "1d", "start": "2021-05-01T00:07:30Z", "end": "2021-05-01T00:59:00Z"},
            "15m",
        ),
        # no whole tier window inside the range
        (
            {"resolution": "1m", "start": "2021-05-01T00:00:30Z", "end": "2021-05-01T00:01:30Z"},
            None,
        ),
        # local windows are unions of tier windows: Zurich's days of UTC hours, Kathmandu's
        # (UTC+05:45) hours and days of quarter hours, and its 10-minute windows of 5 minutes
        ({"resolution": "1d", "tz": "Europe/Zurich", "start": "2021-03-27T23:00:00Z"}, "1h"),
        ({"resolution": "1d", "tz": "Asia/Kathmandu", "start": "2021-04-30T18:15:00Z"}, "15m"),
        ({"resolution": "1h", "tz": "Asia/Kathmandu"}, "15m"),
        ({"resolution": "10m", "tz": "Asia/Kathmandu"}, "1m"),
        ({"resolution": "6h", "tz": "Europe/Zurich"}, "1h"),
    ],
)
def test_pick_tier(kw: dict[str, str], tier: str | None) -> None:
    chosen = pick_tier(plan(**kw), ALL, NOW)
    assert (chosen.text if chosen else None) == tier


def test_pick_tier_without_raw_edges_needs_aligned_ends() -> None:
    unaligned = plan(resolution="1h", start="2021-05-01T00:00:30Z")
    assert pick_tier(unaligned, ALL, NOW, edges=False) is None
    assert pick_tier(plan(resolution="1h"), ALL, NOW, edges=False) == Tier(3600)


def test_tier_range() -> None:
    p = plan(resolution="1h", start="2021-05-01T00:00:30Z", end="2021-05-01T05:10:00Z")
    tiered = choose_source(p, ALL, NOW, [], 500_000)
    assert tiered.source == "tier:1h"
    assert tiered.tier_range == (
        datetime(2021, 5, 1, 1, tzinfo=UTC),
        datetime(2021, 5, 1, 5, tzinfo=UTC),
    )
    assert p.tier_range == (p.start, p.end)


def test_pick_tier_needs_the_range_inside_retention() -> None:
    day = TierBucket(Tier(3600), retention_seconds=86_400)
    assert pick_tier(plan(resolution="1h"), (day,), NOW) is None
    now = datetime(2021, 5, 1, 12, tzinfo=UTC)
    assert pick_tier(plan(resolution="1h"), (day,), now) == Tier(3600)
    # a coarse tier kept a year, a fine one a day: the range falls back to what keeps it
    fine = TierBucket(Tier(60), retention_seconds=86_400)
    coarse = TierBucket(Tier(3600), retention_seconds=365 * 86_400)
    later = datetime(2021, 6, 1, tzinfo=UTC)
    assert pick_tier(plan(resolution="1h"), (fine, coarse), later) == Tier(3600)
    assert pick_tier(plan(resolution="1m"), (fine, coarse), later) is None


def test_pick_tier_with_no_tiers_or_missing_buckets() -> None:
    assert pick_tier(plan(resolution="1h"), (), NOW) is None
    only_fine = (TierBucket(Tier(60)),)
    assert pick_tier(plan(resolution="1h"), only_fine, NOW) == Tier(60)


def test_pick_tier_skips_a_tier_whose_windows_meet_a_pending_range() -> None:
    """Open pending-rollup markers (a load's raw points not rolled up yet): a tier answers only
    where the windows it would read do not meet them; half-open ranges, exact at the edges."""
    t = int(datetime(2021, 5, 1, 10, 30, tzinfo=UTC).timestamp())
    marked = tuple(TierBucket(x.tier, pending={"s": ((t, t + 60),)}) for x in ALL)
    other = tuple(TierBucket(x.tier, pending={"other": ((t, t + 60),)}) for x in ALL)
    day = plan(resolution="1h")
    assert pick_tier(day, ALL, NOW) == Tier(3600)
    assert pick_tier(day, other, NOW) == Tier(3600)  # another series' marker
    assert pick_tier(day, marked, NOW) is None
    for end, res, want in [
        ("2021-05-01T10:00:00Z", "1h", 3600),  # stops a window before the 1h window holding it
        ("2021-05-01T11:00:00Z", "1h", None),  # holds it
        ("2021-05-01T10:30:00Z", "30m", 900),  # stops right at its start
        ("2021-05-01T10:45:00Z", "15m", None),  # meets it by one window of each tier
        ("2021-05-01T10:31:00Z", "1m", None),
    ]:
        got = pick_tier(plan(resolution=res, end=end), marked, NOW)
        assert (got.seconds if got else None) == want, (end, res)
    for start, res, want in [
        ("2021-05-01T10:31:00Z", "1m", 60),  # starts right at its stop
        ("2021-05-01T10:30:00Z", "1m", None),
        ("2021-05-01T11:00:00Z", "1h", 3600),
        ("2021-05-01T10:00:00Z", "1h", None),
    ]:
        got = pick_tier(plan(resolution=res, start=start), marked, NOW)
        assert (got.seconds if got else None) == want, (start, res)
    # an unaligned start: the tier's interior starts at the next window, edges are raw
    got = pick_tier(plan(resolution="1m", start="2021-05-01T10:30:59Z"), marked, NOW)
    assert got == Tier(60)


def test_stddev_from_a_tier_counts_its_rows_against_the_scan_limit() -> None:
    year = {"start": "2021-01-01T00:00:00Z", "end": "2022-01-01T00:00:00Z"}
    p = plan(resolution="1d", agg="stddev", **year)
    assert pick_tier(p, ALL, NOW, max_rows=10_000) == Tier(3600)  # 8,760 rows
    assert pick_tier(p, ALL, NOW, max_rows=5_000) is None
    # pushed-down aggregates read the tier in the storage engine: no limit
    assert pick_tier(plan(resolution="1h", **year), ALL, NOW, max_rows=10) == Tier(3600)


def test_choose_source_answers_a_refused_scan_from_a_tier() -> None:
    from app.errors import ScanTooLarge

    week = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-08T00:00:00Z"}
    p = plan(resolution="1h", agg="stddev", **week)
    with pytest.raises(ScanTooLarge):
        choose_source(p, (), NOW, [1.0], 500_000)  # 604,800 points at 1 s
    tiered = choose_source(p, ALL, NOW, [1.0], 500_000)
    assert tiered.source == "tier:1h"
    # auto: finer windows than the raw scan allows, when a tier answers them
    auto = plan(resolution="auto", agg="stddev", max_points="1000", **week)
    assert auto.window is not None
    assert auto.window.text == "15m"
    raw = choose_source(auto, (), NOW, [2.0], 320_000)  # 302,400 points at 2 s
    assert raw.window is not None
    assert raw.window.text == "30m"
    assert raw.tier is None
    fine = choose_source(auto, ALL, NOW, [2.0], 320_000)
    assert fine.window == auto.window
    assert fine.source == "tier:15m"
    # auto at 30 s (no tier that fine): the next coarser window a tier answers
    day = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T00:00:00Z"}
    thirty = plan(resolution="auto", agg="stddev", max_points="2880", **day)
    assert thirty.window is not None
    assert thirty.window.text == "30s"
    got = choose_source(thirty, ALL, NOW, [1.0], 50_000)
    assert got.window is not None
    assert got.window.text == "1m"
    assert got.source == "tier:1m"


def test_source_of_a_plan() -> None:
    p = plan(resolution="1h")
    assert p.source == "raw"
    assert p.source_bucket == "grid"
    t = choose_source(p, ALL, NOW, [], 500_000)
    assert t.source == "tier:1h"
    assert t.source_bucket == "grid_1h"
    assert t.answered(["tier:1h"]) is t
    assert t.answered(["raw", "tier:1h", "raw"]).source == "tier:1h,raw"


# ---- tiered answers equal raw answers, on the real influxd ---------------------------------------


def _hz_1s() -> Series:
    """Eight hours at 1 s across Zurich's spring change, 50 Hz with millihertz deviations, a
    gap of 17 minutes and 3 % of rows missing."""
    rng = np.random.default_rng(23)
    index = pd.date_range(
        "2021-03-27T20:00:00Z", "2021-03-28T04:00:00Z", freq="1s", inclusive="left"
    )
    values = 50.0 + np.round(rng.normal(0, 0.015, len(index)), 4)
    s = pd.Series(values, index=index)
    s = s[(s.index < "2021-03-27T22:41:13Z") | (s.index >= "2021-03-27T22:58:13Z")]
    return Series("hz_1s", "Hz", s[rng.random(len(s)) > 0.03])


def _autumn() -> Series:
    """A 1 m series across Zurich's autumn change (2021-10-31, 25 hours)."""
    rng = np.random.default_rng(29)
    index = pd.date_range(
        "2021-10-30T12:00:00Z", "2021-11-01T12:00:00Z", freq="1min", inclusive="left"
    )
    s = pd.Series(np.round(rng.uniform(-50, 400, len(index)), 2), index=index)
    return Series("autumn", "MW", s[rng.random(len(s)) > 0.1])


def _two_units() -> list[Series]:
    """One name written under two units at the same instants (two files that disagreed): two
    tag sets, which the catalog's tags do not show (`unit` is its own field there)."""
    index = pd.date_range("2021-05-01T00:00:00Z", "2021-05-01T02:00:00Z", freq="10s")
    rng = np.random.default_rng(31)
    return [
        Series("two_units", unit, pd.Series(np.round(rng.normal(50, 0.02, len(index)), 4), index))
        for unit in ("Hz", "mHz")
    ]


def tier_lines(series: Series, tier: Tier) -> str:
    """The tier's line protocol for one series key: windows from the rows, as the rollup
    computes them (the finest from points, coarser ones merged)."""
    seconds = series.index.as_unit("s").asi8
    windows = tiers.from_points(seconds, series.values.to_numpy(np.float64), TIERS[0].seconds)
    if tier != TIERS[0]:
        windows = tiers.coarsen(windows, tier.seconds)
    tags = dict(series.tags)
    if series.unit is not None:
        tags["unit"] = series.unit
    key = series.name + "".join(f",{k}={v}" for k, v in sorted(tags.items()))
    lines = []
    for i in range(len(windows)):
        fields = (
            f"count={int(windows.count[i])}i,sum={float(windows.sum[i])!r},"
            f"min={float(windows.min[i])!r},max={float(windows.max[i])!r},"
            f"first={float(windows.first[i])!r},last={float(windows.last[i])!r},"
            f"m2={float(windows.m2[i])!r},mean={float(windows.mean[i])!r}"
        )
        lines.append(f"{key} {fields} {int(windows.start[i])}")
    return "\n".join(lines)


@dataclass
class Tiered:
    bucket: str
    series: list[Series]


def _dst_months(series: Series) -> Series:
    """Swissgrid's losses around the two DST changes of 2021 (the rollup of three years of
    15-minute rows would take minutes)."""
    v = series.values
    keep = ((v.index >= "2021-03-22") & (v.index < "2021-04-05")) | (
        (v.index >= "2021-10-27") & (v.index < "2021-11-05")
    )
    return Series(series.name, series.unit, v[keep], series.tags)


def _stretches(every: list[Series]) -> list[tuple[str, str, str]]:
    """(series, start, end) of whole UTC days around each stretch of a series' rows (a gap of
    more than a week splits: the rollup reads its range a day at a time, data or not)."""
    days: dict[str, set[pd.Timestamp]] = {}
    for series in every:
        days.setdefault(series.name, set()).update(series.index.floor("1D"))
    out = []
    for name, found in days.items():
        ordered = sorted(found)
        lo: pd.Timestamp | None = ordered[0]
        prev = ordered[0]
        for day in [*ordered[1:], None]:
            if day is None or day - prev > pd.Timedelta(days=7):
                end = prev + pd.Timedelta(days=1)
                out.append((name, f"{lo:%Y-%m-%dT%H:%M:%SZ}", f"{end:%Y-%m-%dT%H:%M:%SZ}"))
                lo = day
            if day is not None:
                prev = day
    return out


def operator(influx: InfluxServer, bucket: str, *args: str) -> None:
    """`python -m ingest <args>` on the bucket, as an operator runs it."""
    env = {**os.environ, **influx.env(), "INFLUX_BUCKET": bucket, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"ingest {args[0]} failed: {done.stderr[-2000:]}"


@contextmanager
def tiered_bucket(influx: InfluxServer, prefix: str, series: Series) -> Iterator[tuple[str, Any]]:
    """A fresh raw bucket holding ``series``, its tier buckets made by `python -m ingest tiers`
    (empty), and a synchronous writer; everything removed afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org, timeout=60_000) as c:
        api = c.buckets_api()
        raw = api.create_bucket(bucket_name=name, org=influx.org)
        writer = c.write_api(write_options=SYNCHRONOUS)
        writer.write(name, influx.org, line_protocol(series), write_precision="s")
        operator(influx, name, "tiers")
        try:
            yield name, writer
        finally:
            api.delete_bucket(raw)
            for tier in TIERS:
                found = api.find_bucket_by_name(tier.bucket(name))
                if found is not None:
                    api.delete_bucket(found)


@pytest.fixture(scope="module")
def tiered(
    influx: InfluxServer, dataset: dict[str, Series], two_sites: list[Series]
) -> Iterator[Tiered]:
    """A bucket with the dataset, a 1 s series and a 1 m series across the DST changes, and its
    three tier buckets: created by `python -m ingest tiers` and filled by `python -m ingest
    rollup` from the raw points, as an operator does for data written by other tools."""
    name = f"tiers_{secrets.token_hex(4)}"
    every = [*dataset.values(), *two_sites, *_two_units(), _hz_1s(), _autumn()]
    every = [_dst_months(s) if s.name == "active_losses" else s for s in every]
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org, timeout=60_000) as c:
        api = c.buckets_api()
        raw = api.create_bucket(bucket_name=name, org=influx.org)
        writer = c.write_api(write_options=SYNCHRONOUS)
        for series in every:
            writer.write(name, influx.org, line_protocol(series), write_precision="s")
        operator(influx, name, "tiers")
        for series_name, start, end in _stretches(every):
            operator(influx, name, "rollup", "--series", series_name, "--start", start,
                     "--end", end, "--quiet")  # fmt: skip
        yield Tiered(name, every)
        if influx.proc is not None:
            api.delete_bucket(raw)
            for tier in TIERS:
                found = api.find_bucket_by_name(tier.bucket(name))
                if found is not None:
                    api.delete_bucket(found)


def test_rollup_rows_are_the_statistics_of_the_points(influx: InfluxServer, tiered: Tiered) -> None:
    """The rollup's tier rows of the 1 s series are `gridts.tiers` over the rows written."""
    hz = next(s for s in tiered.series if s.name == "hz_1s")
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org, timeout=60_000) as c:
        for tier in TIERS:
            want = [line.split(" ", 1)[1] for line in tier_lines(hz, tier).splitlines()]
            frame = c.query_api().query_data_frame(
                "from(bucket: b) |> range(start: 2021-03-27T00:00:00Z, stop: 2021-03-29T00:00:00Z)"
                ' |> filter(fn: (r) => r._measurement == "hz_1s")'
                ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
                params={"b": tier.bucket(tiered.bucket)},
            )
            assert len(frame) == len(want), tier
            for (_, row), line in zip(frame.iterrows(), want, strict=True):
                fields = dict(kv.split("=") for kv in line.split(" ")[0].split(","))
                assert int(fields["count"].rstrip("i")) == row["count"], (tier, line)
                for f in ("sum", "min", "max", "first", "last"):
                    assert math.isclose(float(fields[f]), row[f], rel_tol=1e-12), (tier, f, line)
                assert math.isclose(float(fields["m2"]), row["m2"], rel_tol=1e-9, abs_tol=1e-12)
                assert math.isclose(float(fields["mean"]), row["mean"], rel_tol=1e-12)
                assert row["mean"] == row["sum"] / row["count"], (tier, line)


@pytest.fixture(autouse=True)
def fluxs_raw_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The raw answers these tests compare the tiers with are Flux's own: the API's medians and
    standard deviations from the raw points (``COMPUTE_READ_POINTS``) have a test of their own
    against Flux (test_data.py)."""
    from app import store

    monkeypatch.setattr(store, "COMPUTE_READ_POINTS", 0)


@pytest.fixture(scope="module")
async def with_tiers(influx: InfluxServer, tiered: Tiered) -> AsyncIterator[httpx.AsyncClient]:
    async with AppClient(make_settings(influx, tiered.bucket)) as client:
        yield client


@pytest.fixture(scope="module")
async def raw_only(influx: InfluxServer, tiered: Tiered) -> AsyncIterator[httpx.AsyncClient]:
    async with AppClient(make_settings(influx, tiered.bucket, api_tiers="")) as client:
        yield client


def same_answer(agg: str, tiered: list[Any], raw: list[Any], where: str) -> None:
    """Equal labels and `partial`; values exactly equal for count/min/max/first/last, within
    1e-9 relative for sum, mean and stddev (the tier adds in another order)."""
    assert [p["time"] for p in tiered] == [p["time"] for p in raw], where
    assert [p.get("partial") for p in tiered] == [p.get("partial") for p in raw], where
    key = "values" if tiered and "values" in tiered[0] else "value"
    for a, b in zip(tiered, raw, strict=True):
        got = a[key] if key == "values" else [a[key]]
        want = b[key] if key == "values" else [b[key]]
        for x, y in zip(got, want, strict=True):
            if y is None or x is None:
                assert x is None, (where, a, b)
                assert y is None, (where, a, b)
            elif agg in EXACT:
                assert x == y, (where, a, b)
            else:
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)


async def both(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, path: str, params: Any
) -> tuple[httpx.Response, httpx.Response]:
    a = await with_tiers.get(path, params=params)
    b = await raw_only.get(path, params=params)
    assert a.status_code == b.status_code == 200, (params, a.text, b.text)
    assert b.headers["X-Data-Source"] == "raw"
    assert b.json()["source"] == "raw"
    head_a = {k: v for k, v in a.json().items() if k not in ("points", "source")}
    head_b = {k: v for k, v in b.json().items() if k not in ("points", "source")}
    assert head_a == head_b
    return a, b


# Ranges of the series (start, end) that the random cases draw from.
SPANS = {
    "hz_1s": ("2021-03-27T20:00:00Z", "2021-03-28T04:00:00Z"),
    "f_soll_aktiv": ("2021-05-01T00:00:00Z", "2021-05-03T00:00:00Z"),
    "active_losses": ("2021-03-24T00:00:00Z", "2021-04-03T00:00:00Z"),
    "enduse": ("2021-05-01T00:00:00Z", "2021-05-03T00:00:00Z"),
    "two_sites": ("2021-05-01T00:00:00Z", "2021-05-02T02:00:00Z"),
    "autumn": ("2021-10-30T12:00:00Z", "2021-11-01T12:00:00Z"),
}
# hz_1s's range, begun and ended inside a minute
CUT_BOTH = {"start": "2021-03-27T20:00:13Z", "end": "2021-03-28T03:59:47Z"}
RESOLUTIONS = ["1m", "2m", "5m", "10m", "15m", "30m", "1h", "2h", "3h", "6h", "1d"]
ZONES = [None, None, "Europe/Zurich", "Asia/Kathmandu"]
FILLS = ["none", "none", "null", "previous", "linear"]


def _case(seed: int) -> dict[str, str]:
    """A random request: series, resolution, aggregate, fill, zone, and a range whose ends are
    on the hour, on a quarter, on a minute or anywhere (unaligned: raw must answer)."""
    rng = np.random.default_rng(seed)
    name = str(rng.choice(list(SPANS)))
    lo, hi = (pd.Timestamp(t) for t in SPANS[name])
    total = int((hi - lo).total_seconds())
    grid = int(rng.choice([3600, 3600, 900, 60, 1]))

    def instant(a: int, b: int) -> pd.Timestamp:
        return lo + pd.Timedelta(seconds=int(rng.integers(a, b)) // grid * grid)

    start = instant(0, total - 3600)
    end = start + pd.Timedelta(seconds=max(grid, int(rng.integers(1, total)) // grid * grid))
    end = min(end, hi + pd.Timedelta(hours=6))
    params = {
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resolution": str(rng.choice(RESOLUTIONS)),
        "agg": str(rng.choice(COMPOSABLE)),
        "fill": str(rng.choice(FILLS)),
        "name": name,
    }
    tz = ZONES[rng.choice(len(ZONES))]  # as rng.choice(ZONES), which the stubs refuse (None)
    if tz is not None:
        params["tz"] = str(tz)
    return params


def _tier_expected(name: str, params: dict[str, str]) -> bool:
    """Whether a tier must answer: the range holds a whole minute (every window here is a
    multiple of a minute, and Zurich's and Kathmandu's local windows unions of minutes), and
    not first/last of the series whose two tag sets share windows."""
    start, end = pd.Timestamp(params["start"]), pd.Timestamp(params["end"])
    whole_minute = start.ceil("min") < end.floor("min")
    shared = name == "two_sites" and params["agg"] in ("first", "last")
    return whole_minute and not shared


@pytest.mark.parametrize("seed", range(160))
async def test_tiered_equals_raw(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, seed: int
) -> None:
    params = _case(seed)
    name = params.pop("name")
    a, b = await both(with_tiers, raw_only, f"/v1/series/{name}/data", params)
    same_answer(params["agg"], a.json()["points"], b.json()["points"], str(params))
    source = a.headers["X-Data-Source"]
    assert a.json()["source"] == source
    if _tier_expected(name, params):
        assert source.startswith("tier:"), (params, source)
    elif name != "two_sites":
        assert source == "raw", (params, source)


@pytest.mark.parametrize("agg", COMPOSABLE)
@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("hz_1s", "2021-03-27T00:00:00+01:00", "2021-03-29T00:00:00+02:00"),  # spring, 23 h
        ("autumn", "2021-10-30T00:00:00+02:00", "2021-11-02T00:00:00+01:00"),  # autumn, 25 h
        ("active_losses", "2021-03-26T00:00:00+01:00", "2021-04-01T00:00:00+02:00"),
        ("active_losses", "2021-10-29T00:00:00+02:00", "2021-11-03T00:00:00+01:00"),
    ],
)
@pytest.mark.parametrize("fill", ["none", "previous"])
async def test_zurich_dst_days_from_tiers(
    with_tiers: httpx.AsyncClient,
    raw_only: httpx.AsyncClient,
    name: str,
    start: str,
    end: str,
    agg: str,
    fill: str,
) -> None:
    params = {"start": start, "end": end, "resolution": "1d", "tz": "Europe/Zurich", "agg": agg}
    params["fill"] = fill
    a, b = await both(with_tiers, raw_only, f"/v1/series/{name}/data", params)
    same_answer(agg, a.json()["points"], b.json()["points"], name)
    assert a.headers["X-Data-Source"] == "tier:1h"
    assert len(b.json()["points"]) >= 1


@pytest.mark.parametrize("agg", COMPOSABLE)
@pytest.mark.parametrize("resolution", ["15m", "1h", "2h", "1d"])
async def test_kathmandu_from_tiers(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, agg: str, resolution: str
) -> None:
    params = {
        "start": "2021-03-27T18:15:00Z",  # local midnight, UTC+05:45
        "end": "2021-03-28T03:45:00Z",
        "resolution": resolution,
        "tz": "Asia/Kathmandu",
        "agg": agg,
        "fill": "null",
    }
    a, b = await both(with_tiers, raw_only, "/v1/series/hz_1s/data", params)
    same_answer(agg, a.json()["points"], b.json()["points"], resolution)
    assert a.headers["X-Data-Source"] == "tier:15m"


@pytest.mark.parametrize("agg", COMPOSABLE)
async def test_several_series_from_tiers(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, agg: str
) -> None:
    params = {
        "series": ["f_soll_aktiv", "enduse", "two_sites"],
        "start": "2021-05-01T05:00:00Z",
        "end": "2021-05-02T03:00:00Z",
        "resolution": "1h",
        "agg": agg,
        "fill": "linear",
    }
    a, b = await both(with_tiers, raw_only, "/v1/data", params)
    same_answer(agg, a.json()["points"], b.json()["points"], agg)
    # first/last of two tag sets sharing an hour: only the raw points know which came first
    want = "tier:1h,raw" if agg in ("first", "last") else "tier:1h"
    assert a.headers["X-Data-Source"] == want
    assert a.json()["source"] == want


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"resolution": "1h", "agg": "median"}, "median"),
        ({"resolution": "raw"}, "raw"),
        ({"resolution": "30s"}, "finer than the finest tier"),
        ({"resolution": "90s"}, "not a multiple of a tier"),
        (
            {"resolution": "1m", "start": "2021-05-01T05:00:30Z", "end": "2021-05-01T05:01:30Z"},
            "no whole tier window in the range",
        ),
    ],
)
async def test_falls_back_to_raw(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, params: dict[str, str], why: str
) -> None:
    full = {"start": "2021-05-01T05:00:00Z", "end": "2021-05-02T03:00:00Z", **params}
    a, b = await both(with_tiers, raw_only, "/v1/series/f_soll_aktiv/data", full)
    assert a.headers["X-Data-Source"] == "raw", why
    assert a.json()["source"] == "raw"
    assert a.json()["points"] == b.json()["points"]


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("fill", ["none", "null"])
@pytest.mark.parametrize("resolution", ["1m", "15m", "1h"])
async def test_stddev_of_the_tiers_own_windows(
    with_tiers: httpx.AsyncClient,
    raw_only: httpx.AsyncClient,
    resolution: str,
    fill: str,
    cut: bool,
) -> None:
    """Each window one row of the tier and one tag set, or (a range begun and ended inside a
    window) the raw points of an edge alone: count and m2 (no sum) give each window's stddev,
    over a 1 s series' DST night."""
    span = CUT_BOTH if cut else {"start": "2021-03-27T20:00:00Z", "end": "2021-03-28T04:00:00Z"}
    params = {**span, "resolution": resolution, "agg": "stddev", "fill": fill}
    a, b = await both(with_tiers, raw_only, "/v1/series/hz_1s/data", params)
    assert a.json()["source"] == f"tier:{resolution}"
    seconds = {"1m": 60, "15m": 900, "1h": 3600}[resolution]
    # (the series has gaps: nine tenths of the hours' windows hold points)
    assert len(a.json()["points"]) >= 0.9 * 8 * 3600 // seconds
    same_answer("stddev", a.json()["points"], b.json()["points"], resolution)


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("resolution", ["1m", "15m", "1h"])
async def test_stddev_of_two_tag_sets_the_catalog_does_not_show(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, resolution: str, cut: bool
) -> None:
    """Two units under one name: the catalog lists no tags, so the tier's own windows are
    read without the sums first; two rows in a window refuse that answer, and the rows read
    again with their sums merge into the raw answer."""
    info = (await with_tiers.get("/v1/series/two_units")).json()
    assert info["tags"] == {}
    span = ("2021-05-01T00:00:07Z", "2021-05-01T01:59:53Z") if cut else (
        "2021-05-01T00:00:00Z", "2021-05-01T02:00:00Z")  # fmt: skip
    params = {"start": span[0], "end": span[1], "resolution": resolution, "agg": "stddev"}
    a, b = await both(with_tiers, raw_only, "/v1/series/two_units/data", params)
    # (two hours cut at both ends hold no whole hour: the 15 m tier answers them)
    want = "tier:15m" if cut and resolution == "1h" else f"tier:{resolution}"
    assert a.json()["source"] == want
    assert len(a.json()["points"]) == 7200 // {"1m": 60, "15m": 900, "1h": 3600}[resolution]
    same_answer("stddev", a.json()["points"], b.json()["points"], resolution)


@pytest.mark.parametrize("resolution", ["1m", "15m", "1h"])
async def test_stddev_of_two_tag_sets_from_a_tier(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, resolution: str
) -> None:
    """One name under two tag sets: the tier's count, sum and m2 are paired per tag set (by
    Flux's pivot: unpivoted, nothing in the answer's columns says which tag set a field's table
    belongs to) and merged."""
    params = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T02:00:00Z",
              "resolution": resolution, "agg": "stddev"}  # fmt: skip
    a, b = await both(with_tiers, raw_only, "/v1/series/two_sites/data", params)
    assert a.json()["source"] == f"tier:{resolution}"
    assert len(a.json()["points"]) >= 20
    same_answer("stddev", a.json()["points"], b.json()["points"], resolution)


# Windows of one point: the first and the last of a 1 s series' range (1 s of each), and the
# 1 m windows of a 30 s series with rows missing: 00:12 and 00:15 hold one point each, 00:14
# none (a window to fill, between 00:13 and 00:16: 00:15 has no value to fill from).
ONE_POINT = [
    ("hz_1s", "2021-03-27T20:59:59Z", "2021-03-27T21:05:01Z",
     ["2021-03-27T20:59:00Z", "2021-03-27T21:05:00Z"], None),
    ("f_soll_aktiv", "2021-05-01T00:10:00Z", "2021-05-01T00:20:00Z",
     ["2021-05-01T00:12:00Z", "2021-05-01T00:15:00Z"],
     ("2021-05-01T00:14:00Z", "2021-05-01T00:13:00Z", "2021-05-01T00:16:00Z")),
]  # fmt: skip


@pytest.mark.parametrize("fill", ["none", "null", "previous", "linear"])
@pytest.mark.parametrize(("name", "start", "end", "lone", "empty"), ONE_POINT)
@pytest.mark.parametrize("answer", ["tier", "raw, computed by the API", "raw, Flux's"])
async def test_a_window_of_one_point_has_no_stddev_whatever_the_fill(
    with_tiers: httpx.AsyncClient,
    raw_only: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    name: str,
    start: str,
    end: str,
    lone: list[str],
    empty: tuple[str, str, str] | None,
    fill: str,
) -> None:
    """A sample standard deviation needs two points: a window of one has none, from every
    source of the answer, and a fill (meant for windows without points) does not invent one,
    nor interpolates from it. A tier once answered the previous window's value there with
    `fill=previous`; `fill=linear` interpolated over it."""
    from app import store

    if answer == "raw, computed by the API":
        monkeypatch.setattr(store, "COMPUTE_READ_POINTS", 1_000_000)
    api = with_tiers if answer == "tier" else raw_only
    url = f"/v1/series/{name}/data"
    params = {"start": start, "end": end, "resolution": "1m", "agg": "stddev"}
    plain = (await api.get(url, params={**params, "fill": "none"})).json()
    assert plain["source"] == ("tier:1m" if answer == "tier" else "raw")
    base = {p["time"]: p["value"] for p in plain["points"]}
    assert all(base[t] is None for t in lone), (base, lone)
    assert all(v is not None and v > 0 for t, v in base.items() if t not in lone), base
    r = await api.get(url, params={**params, "fill": fill})
    assert r.status_code == 200, r.text
    got = {p["time"]: p["value"] for p in r.json()["points"]}
    assert {t: got[t] for t in base} == base  # windows with points: as without a fill
    if empty is not None:
        t, before, after = empty
        assert t not in base
        want = {
            "none": "absent",
            "null": None,
            "previous": base[before],
            "linear": base[before] + (base[after] - base[before]) / 3,  # 1 of 3 minutes on
        }[fill]
        if want is None or want == "absent":
            assert got.get(t, "absent") == want, got
        else:
            assert got[t] == pytest.approx(want, rel=1e-12), got


async def test_csv_and_ndjson_say_the_source_in_a_header(with_tiers: httpx.AsyncClient) -> None:
    for fmt in ("csv", "ndjson"):
        r = await with_tiers.get(
            "/v1/series/hz_1s/data",
            params={"start": "2021-03-27T20:00:00Z", "end": "2021-03-28T04:00:00Z",
                    "resolution": "15m", "format": fmt},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.headers["X-Data-Source"] == "tier:15m"


async def test_metrics_count_the_source(with_tiers: httpx.AsyncClient) -> None:
    r = await with_tiers.get("/metrics")
    assert 'gridts_api_data_source_total{source="tier:1h"}' in r.text


async def test_a_refused_scan_succeeds_from_a_tier(influx: InfluxServer, tiered: Tiered) -> None:
    """stddev over 8 hours of 1 s data with a scan limit of 10,000 points: refused from raw
    points, answered from the 1 m tier (480 rows); `auto` picks the tier's windows."""
    params = {"start": "2021-03-27T20:00:00Z", "end": "2021-03-28T04:00:00Z", "agg": "stddev"}
    limits = {"api_max_scan_points": 10_000}
    async with AppClient(make_settings(influx, tiered.bucket, api_tiers="", **limits)) as raw:
        r = await raw.get("/v1/series/hz_1s/data", params={**params, "resolution": "1m"})
        assert r.status_code == 422
        assert r.json()["error"] == "scan_too_large"
        r = await raw.get("/v1/series/hz_1s/data", params={**params, "resolution": "auto"})
        assert r.status_code == 422, r.text  # no standard window's raw scan fits
    async with AppClient(make_settings(influx, tiered.bucket, **limits)) as api:
        r = await api.get("/v1/series/hz_1s/data", params={**params, "resolution": "1m"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Data-Source"] == "tier:1m"
        r = await api.get("/v1/series/hz_1s/data", params={**params, "resolution": "auto"})
        assert r.status_code == 200, r.text
        assert r.json()["resolution"] == "1m"
        assert r.json()["source"] == "tier:1m"


@pytest.mark.parametrize(
    ("name", "start", "end", "cap", "counted"),
    [
        ("hz_1s", "2021-03-27T20:00:00Z", "2021-03-28T04:00:00Z", 1000, "tier"),
        ("hz_1s", "2021-03-27T20:00:17Z", "2021-03-28T03:59:59Z", 1000, "tier"),  # raw edges
        ("hz_1s", "2021-03-27T22:40:30Z", "2021-03-27T23:05:10Z", 1000, "tier"),  # the gap
        ("f_soll_aktiv", "2021-05-01T00:00:00Z", "2021-05-03T00:00:00Z", 100, "tier"),
        ("two_sites", "2021-05-01T00:00:00Z", "2021-05-02T02:00:00Z", 10, "tier"),
        ("hz_1s", "2021-03-27T20:00:05Z", "2021-03-27T20:00:50Z", 10, "count"),  # no minute
    ],
)
async def test_raw_over_the_cap_is_counted_from_a_tier(
    with_tiers: httpx.AsyncClient,
    raw_only: httpx.AsyncClient,
    tiered: Tiered,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    start: str,
    end: str,
    cap: int,
    counted: str,
) -> None:
    """A raw range its spacing says is over the cap (and, here, over no minimum: the ranges
    that the tier counts by default hold more than 500,000 points): the points are counted
    from the tier's counts (and the raw edges) instead of in the storage engine, to the same
    answer: the 422 with the exact number, or, for a range sparser than its spacing (the 1 s
    series' 17-minute gap), the points read. A range without a whole tier window is counted
    as before."""
    from app import store

    monkeypatch.setattr(store, "TIER_COUNT_POINTS", 0)
    params = {"start": start, "end": end, "resolution": "raw", "max_points": str(cap)}
    path = f"/v1/series/{name}/data"
    await with_tiers.get(path, params=params)  # the series' spacing, once
    await raw_only.get(path, params=params)
    ours, sent = await sent_queries(with_tiers, with_tiers.get(path, params=params))
    theirs, sent_raw = await sent_queries(raw_only, raw_only.get(path, params=params))
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())
    stored = sum(
        int(((s.index >= pd.Timestamp(start)) & (s.index < pd.Timestamp(end))).sum())
        for s in tiered.series
        if s.name == name
    )
    if stored > cap:
        assert ours.status_code == 422
        assert ours.json()["points"] == stored
        assert sent == {counted: 1}
    else:
        assert len(ours.json()["points"]) == stored
        assert sent == {counted: 1, "data": 1}
    assert sent_raw.get("count") == 1


async def test_a_short_raw_range_over_the_cap_is_counted_in_the_storage_engine(
    with_tiers: httpx.AsyncClient,
) -> None:
    """Below ``TIER_COUNT_POINTS`` by the spacing (8 hours of 1 s data) Flux's count is the
    cheaper one, tiers or not."""
    params = {"start": "2021-03-27T20:00:17Z", "end": "2021-03-28T03:59:59Z",
              "resolution": "raw", "max_points": "1000"}  # fmt: skip
    await with_tiers.get("/v1/series/hz_1s/data", params=params)
    r, sent = await sent_queries(with_tiers, with_tiers.get("/v1/series/hz_1s/data", params=params))
    assert r.status_code == 422
    assert sent == {"count": 1}


async def test_the_api_learns_which_tier_buckets_exist(
    influx: InfluxServer, tiered: Tiered
) -> None:
    """Configured tiers without a bucket are not used; a tier left out of API_TIERS neither."""
    app = AppClient(make_settings(influx, tiered.bucket, api_tiers="1m,15m,1h,1d"))
    async with app as client:
        store = app.app.state.store
        assert sorted(t.tier.text for t in store.tiers) == ["15m", "1h", "1m"]
        # and says so: the 1 d tier configured, its bucket not found
        listed = (await client.get("/v1/tiers")).json()["tiers"]
        assert [(t["window"], t["bucket"], t["found"]) for t in listed] == [
            (w, f"{tiered.bucket}_{w}", w != "1d") for w in ("1m", "15m", "1h", "1d")
        ]
        assert all(t["retention_seconds"] is None for t in listed if t["found"])
    async with AppClient(make_settings(influx, tiered.bucket, api_tiers="1m,15m")) as api:
        r = await api.get(
            "/v1/series/hz_1s/data",
            params={"start": "2021-03-27T20:00:00Z", "end": "2021-03-28T04:00:00Z",
                    "resolution": "1h"},
        )  # fmt: skip
        assert r.headers["X-Data-Source"] == "tier:15m"


async def test_read_only_token_sees_the_tiers_it_may_read(
    influx: InfluxServer, tiered: Tiered
) -> None:
    """The API's read-only token lists exactly the buckets it may read (/api/v2/buckets): the
    raw bucket and the 15m tier, not the others."""
    from influxdb_client import Permission, PermissionResource

    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as c:
        org = c.organizations_api().find_organizations(org=influx.org)[0]
        buckets = c.buckets_api()
        readable = [buckets.find_bucket_by_name(n) for n in (tiered.bucket, f"{tiered.bucket}_15m")]
        perms = [
            Permission(  # type: ignore[no-untyped-call]
                action="read",
                resource=PermissionResource(  # type: ignore[no-untyped-call]
                    type="buckets", id=b.id, org_id=org.id
                ),
            )
            for b in readable
        ]
        auth = c.authorizations_api().create_authorization(org_id=org.id, permissions=perms)
    try:
        settings = make_settings(influx, tiered.bucket, influx_token=auth.token)
        app = AppClient(settings)
        async with app as api:
            store = app.app.state.store
            assert [t.tier.text for t in store.tiers] == ["15m"]
            r = await api.get(
                "/v1/series/hz_1s/data",
                params={"start": "2021-03-27T20:00:00Z", "end": "2021-03-28T04:00:00Z",
                        "resolution": "1h", "agg": "max"},
            )  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.headers["X-Data-Source"] == "tier:15m"
    finally:
        with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as c:
            c.authorizations_api().delete_authorization(auth)


@pytest.mark.parametrize("agg", ["mean", "first", "last", "sum"])
async def test_local_days_of_two_tag_sets_from_raw(
    raw_only: httpx.AsyncClient, two_sites: list[Series], agg: str
) -> None:
    """Found by the comparison above: local days composed from UTC hours took one name's two
    tag sets for one (keep() merges their tables), so a mean divided by one set's counts."""
    from tests.app import expected

    start, end = "2021-05-01T00:00:00+02:00", "2021-05-03T00:00:00+02:00"
    params = {"start": start, "end": end, "resolution": "1d", "tz": "Europe/Zurich", "agg": agg}
    r = await raw_only.get("/v1/series/two_sites/data", params=params)
    assert r.status_code == 200, r.text
    values = pd.concat([s.values for s in two_sites]).sort_index(kind="stable")
    want = expected.windows(values, start, end, "1d", agg, tz="Europe/Zurich")
    expected.same(r.json()["points"], want)


@pytest.mark.parametrize("agg", COMPOSABLE)
@pytest.mark.parametrize(
    ("name", "params", "source"),
    [
        ("hz_1s", {"start": "2021-03-27T20:07:13Z", "end": "2021-03-28T03:42:59Z"}, "tier:1h"),
        (
            "hz_1s",
            {"start": "2021-03-27T20:07:13Z", "end": "2021-03-27T21:42:59Z", "resolution": "1d"},
            "tier:15m",
        ),
        (
            "hz_1s",
            {"start": "2021-03-27T20:00:01Z", "end": "2021-03-27T20:20:00Z", "resolution": "15m"},
            "tier:1m",
        ),
        (
            "hz_1s",
            {
                "start": "2021-03-27T20:07:13.5Z",
                "end": "2021-03-28T03:00:00Z",
                "tz": "Europe/Zurich",
                "resolution": "1d",
            },
            "tier:1h",
        ),
        (
            "hz_1s",
            {
                "start": "2021-03-27T20:07:13Z",
                "end": "2021-03-28T03:42:59Z",
                "tz": "Asia/Kathmandu",
                "resolution": "1h",
            },
            "tier:15m",
        ),
        ("two_sites", {"start": "2021-05-01T00:10:00Z", "end": "2021-05-01T23:59:59Z"}, "tier:1h"),
        (
            "f_soll_aktiv",
            {"start": "2021-05-01T05:59:45Z", "end": "2021-05-01T07:30:15Z", "resolution": "30m"},
            "tier:15m",
        ),
    ],
)
@pytest.mark.parametrize("fill", ["none", "previous"])
async def test_unaligned_ranges_read_the_edges_raw(
    with_tiers: httpx.AsyncClient,
    raw_only: httpx.AsyncClient,
    name: str,
    params: dict[str, str],
    source: str,
    agg: str,
    fill: str,
) -> None:
    """A range that does not start or end on a tier boundary: the tier answers its interior,
    the raw points the pieces before and after it, merged into the first and last windows."""
    full = {"resolution": "1h", **params, "agg": agg, "fill": fill}
    a, b = await both(with_tiers, raw_only, f"/v1/series/{name}/data", full)
    same_answer(agg, a.json()["points"], b.json()["points"], str(full))
    assert b.json()["points"], "the comparison must not be vacuous"
    shared = name == "two_sites" and agg in ("first", "last")
    assert a.headers["X-Data-Source"] == ("raw" if shared else source)


@pytest.mark.parametrize("agg", ["mean", "max", "count", "stddev"])
async def test_an_unaligned_range_is_one_flux_query(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, agg: str
) -> None:
    """The tier's part and both raw edges in one request to InfluxDB (two results of one
    query): a query's own cost is most of a small answer's; and the answer is the raw one."""
    params = {"start": "2021-03-27T20:07:13Z", "end": "2021-03-28T03:52:01Z",
              "resolution": "1h", "agg": agg}  # fmt: skip
    await with_tiers.get("/v1/series/hz_1s/data", params=params)  # the catalog, the steps
    a, sent = await sent_queries(with_tiers, with_tiers.get("/v1/series/hz_1s/data", params=params))
    b = await raw_only.get("/v1/series/hz_1s/data", params=params)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.headers["X-Data-Source"] == "tier:1h"
    assert sent == {"tier": 1}
    same_answer(agg, a.json()["points"], b.json()["points"], str(params))
    assert len(b.json()["points"]) == 8  # 20:00 to 03:00, the first and last partial


async def test_tiers_that_do_not_hold_a_series_never_answer_it(
    influx: InfluxServer, dataset: dict[str, Series]
) -> None:
    """A release upgraded to tiers has empty tier buckets over raw data that is already there;
    a tier filled for new data only starts late. Such a tier must not answer (it would say
    count 0, or miss the old windows): raw answers, until `ingest rollup` fills the tier."""
    series = dataset["f_soll_aktiv"]
    params = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-03T00:00:00Z",
              "resolution": "1h", "agg": "count"}  # fmt: skip
    with tiered_bucket(influx, "upgraded", series) as (name, _):  # empty tiers: the upgrade
        app = AppClient(make_settings(influx, name))
        async with app as client:
            store = app.app.state.store
            empty = await client.get(f"/v1/series/{series.name}/data", params=params)
            assert empty.headers["X-Data-Source"] == "raw"
            assert await not_held(client) == {t.text: [series.name] for t in TIERS}
            want = [p["value"] for p in empty.json()["points"]]
            assert sum(want) == len(series.values)
            # the second day only, as a load of new data would fill it: still raw
            operator(influx, name, "rollup", "--start", "2021-05-02T00:00:00Z",
                     "--end", "2021-05-03T00:00:00Z", "--quiet")  # fmt: skip
            await store.catalog(refresh=True)
            late = await client.get(f"/v1/series/{series.name}/data", params=params)
            assert late.headers["X-Data-Source"] == "raw"
            assert await not_held(client) == {t.text: [series.name] for t in TIERS}
            assert [p["value"] for p in late.json()["points"]] == want
            # the whole range rolled up: the tier answers, with the same numbers
            operator(influx, name, "rollup", "--start", "2021-05-01T00:00:00Z",
                     "--end", "2021-05-03T00:00:00Z", "--quiet")  # fmt: skip
            await store.catalog(refresh=True)
            full = await client.get(f"/v1/series/{series.name}/data", params=params)
            assert full.headers["X-Data-Source"] == "tier:1h"
            assert await not_held(client) == {t.text: [] for t in TIERS}
            assert full.json()["source"] == "tier:1h"
            assert [p["value"] for p in full.json()["points"]] == want


async def test_the_tiers_list_gives_each_buckets_retention(
    influx: InfluxServer, dataset: dict[str, Series]
) -> None:
    """`GET /v1/tiers` gives each tier's retention as its bucket keeps it (`ingest tiers
    --retention`): seconds, or null for forever."""
    with tiered_bucket(influx, "kept", dataset["f_soll_aktiv"]) as (name, _):
        operator(influx, name, "tiers", "--retention", "1h=3650d,15m=0")
        app = AppClient(make_settings(influx, name))
        async with app as client:
            listed = (await client.get("/v1/tiers")).json()["tiers"]
            assert {t["window"]: t["retention_seconds"] for t in listed} == {
                "1m": None,
                "15m": None,
                "1h": 3650 * 86_400,
            }
            # a tier bucket deleted: not found from the next reload on, its gauges gone
            with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as c:
                buckets = c.buckets_api()
                buckets.delete_bucket(buckets.find_bucket_by_name(f"{name}_1h"))
            await app.app.state.store.refresh_tiers()  # (what every catalog reload does)
            listed = (await client.get("/v1/tiers")).json()["tiers"]
            assert [t["found"] for t in listed] == [True, True, False]
            metrics = (await client.get("/metrics")).text
            # (the tiers are empty: never rolled up, they do not hold the series)
            for gauge, kept in (("gridts_api_tier_pending_ranges", [0]),
                                ("gridts_api_tier_series_not_held", [1])):  # fmt: skip
                assert prometheus_text.values(metrics, gauge, tier="1h") == [], gauge
                assert prometheus_text.values(metrics, gauge, tier="15m") == kept, gauge


async def not_held(client: httpx.AsyncClient) -> dict[str, list[str]]:
    """Per tier (`GET /v1/tiers`), the series it does not hold in full; their number the same
    in the metrics."""
    body = (await client.get("/v1/tiers")).json()
    metrics = (await client.get("/metrics")).text
    for t in body["tiers"]:
        counted = prometheus_text.values(
            metrics, "gridts_api_tier_series_not_held", tier=t["window"]
        )
        assert counted == [len(t["series_not_held"])], (t, counted)
    return {t["window"]: t["series_not_held"] for t in body["tiers"]}


@pytest.mark.parametrize("resolution", [t.text for t in TIERS])
@pytest.mark.parametrize("name", ["hz_1s", "two_sites", "active_losses", "autumn"])
async def test_means_on_a_tiers_own_windows(
    with_tiers: httpx.AsyncClient, raw_only: httpx.AsyncClient, name: str, resolution: str
) -> None:
    """A mean at a tier's own window reads the stored means (one field); two tag sets sharing
    windows need the sums and counts instead. Both equal the raw answer."""
    start, end = SPANS[name]
    params = {"start": start, "end": end, "resolution": resolution, "agg": "mean"}
    a, b = await both(with_tiers, raw_only, f"/v1/series/{name}/data", params)
    assert b.json()["points"], "the comparison must not be vacuous"
    same_answer("mean", a.json()["points"], b.json()["points"], str(params))
    assert a.headers["X-Data-Source"] == f"tier:{resolution}"


async def test_tiers_rolled_up_without_stored_means_never_answer(
    influx: InfluxServer, dataset: dict[str, Series]
) -> None:
    """Tier points written before tiers stored `mean` (count, sum, ..., m2 only): such a tier
    does not answer (a mean read from it would find no rows) until `ingest rollup` rewrites it."""
    series = dataset["f_soll_aktiv"]
    params = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-03T00:00:00Z",
              "resolution": "15m", "agg": "mean"}  # fmt: skip
    with tiered_bucket(influx, "oldtiers", series) as (name, writer):
        for tier in TIERS:
            old = "\n".join(
                line.split(",mean=")[0] + " " + line.rsplit(" ", 1)[1]
                for line in tier_lines(series, tier).splitlines()
            )
            assert "mean=" not in old
            assert "m2=" in old
            writer.write(tier.bucket(name), influx.org, old, write_precision="s")
        app = AppClient(make_settings(influx, name))
        async with app as client:
            before = await client.get(f"/v1/series/{series.name}/data", params=params)
            assert before.headers["X-Data-Source"] == "raw"
            want = before.json()["points"]
            assert len(want) > 96  # two days of quarter hours, some missing
            operator(influx, name, "rollup", "--start", "2021-05-01T00:00:00Z",
                     "--end", "2021-05-03T00:00:00Z", "--quiet")  # fmt: skip
            await app.app.state.store.catalog(refresh=True)
            after = await client.get(f"/v1/series/{series.name}/data", params=params)
            assert after.headers["X-Data-Source"] == "tier:15m"
            same_answer("mean", after.json()["points"], want, "after the rollup")


# ---- points that stay Flux's CSV: the spliced JSON (issue 10, item 7) ---------------------------


@pytest.mark.parametrize(
    ("which", "name", "params", "spliced"),
    [
        # a tier's own windows: the stored means, untouched
        ("tiers", "hz_1s", {"resolution": "1m"}, True),
        ("tiers", "hz_1s", {"resolution": "15m"}, True),
        ("tiers", "active_losses", {"resolution": "15m"}, True),
        ("tiers", "active_losses", {"resolution": "1h", "agg": "max"}, True),
        ("tiers", "two_sites", {"resolution": "1h", "agg": "sum"}, False),  # tag sets combined
        ("tiers", "hz_1s", {"resolution": "5m", "fill": "null"}, False),  # filled
        # a range inside windows at both ends: the edges read raw, windows of their own beside
        # the tier's (points.bracket); as the stored means, maxima, counts
        *(
            ("tiers", "hz_1s", {**CUT_BOTH, "resolution": res, "agg": agg}, True)
            for res, agg in [("1m", "mean"), ("15m", "mean"), ("1m", "max"), ("15m", "count")]
        ),
        # the raw points' windows from Flux, the last one cut; and raw points
        ("raw", "f_soll_aktiv", {"resolution": "30s"}, True),
        ("raw", "f_soll_aktiv", {"end": "2021-05-02T23:50:00Z", "resolution": "1h"}, True),
        # the first window cut by the start: relabelled in the bytes (Points.relabel_first)
        ("raw", "f_soll_aktiv", {"start": "2021-05-01T00:07:00Z", "resolution": "1h"}, True),
        ("raw", "f_soll_aktiv", {"start": "2021-05-01T00:07:13Z", "resolution": "30s"}, True),
        ("raw", "f_soll_aktiv", {"end": "2021-05-01T02:00:00Z", "resolution": "raw"}, True),
        ("raw", "active_losses", {"resolution": "15m", "agg": "count"}, True),
    ],
)
async def test_spliced_json_is_the_text_paths_bytes(
    with_tiers: httpx.AsyncClient,
    raw_only: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    name: str,
    params: dict[str, str],
    spliced: bool,
) -> None:
    """Against the real InfluxDB: the JSON written from Flux's CSV bytes (``CsvCells``) is,
    byte for byte, what the text path writes from the same answer (InfluxDB's texts, at any
    size: pandas' floats not asked for)."""
    from app import formats
    from app import points as module

    client = with_tiers if which == "tiers" else raw_only
    start, end = SPANS[name]
    query = {"start": start, "end": end, "agg": "mean", **params}
    done: list[bool] = []
    splice = formats._points_spliced

    def counted(plan: Any, cells: Any) -> Any:
        out = splice(plan, cells)
        done.append(out is not None)
        return out

    monkeypatch.setattr(formats, "_points_spliced", counted)
    fast = await client.get(f"/v1/series/{name}/data", params=query)
    assert fast.status_code == 200, fast.text
    assert any(done) == spliced, query
    monkeypatch.setattr(module.CsvCells, "parse", classmethod(lambda *a, **k: None))
    monkeypatch.setattr(module, "PANDAS_FROM_BYTES", 10**12)
    slow = await client.get(f"/v1/series/{name}/data", params=query)
    assert slow.status_code == 200, slow.text
    assert fast.json()["points"], "the comparison must not be vacuous"
    assert fast.content == slow.content, query
    assert fast.headers["X-Data-Source"] == slow.headers["X-Data-Source"]
    if which == "tiers" and spliced:
        assert fast.headers["X-Data-Source"].startswith("tier:")


async def test_a_range_cut_at_its_start_has_its_json_made_while_it_arrives(
    raw_only: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, prerendered: list[int]
) -> None:
    """Two days at 1 m (Flux's CSV read in pieces of 8 kB here) from a start inside a window:
    each piece's JSON is made as it arrives, not all after the last byte, and the answer is
    the text path's to the byte (the first piece's JSON made again, relabelled)."""
    from app import points as module

    monkeypatch.setattr(module, "PIECE_BYTES", 8192)
    query = {"start": "2021-05-01T00:07:13Z", "end": "2021-05-03T00:00:00Z", "resolution": "1m"}
    fast = await raw_only.get("/v1/series/f_soll_aktiv/data", params=query)
    assert fast.status_code == 200, fast.text
    assert len(prerendered) >= 2, prerendered
    points = fast.json()["points"]
    assert points[0] == {**points[0], "time": "2021-05-01T00:07:00Z", "partial": True}
    monkeypatch.setattr(module.CsvCells, "parse", classmethod(lambda *a, **k: None))
    monkeypatch.setattr(module, "PANDAS_FROM_BYTES", 10**12)
    slow = await raw_only.get("/v1/series/f_soll_aktiv/data", params=query)
    assert fast.content == slow.content
