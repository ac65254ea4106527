"""Pending-rollup markers (ADR 0014 addendum, issue 10): the API never answers from a tier over a
range whose raw points a load wrote without rolling them up (yet), and the repair clears that.

A series is loaded with its tiers (00:00Z-04:00Z, 1 s). Then a second file rewrites the middle
(01:07:30Z-02:30:00Z, other values): killed between its raw and its tier writes (SIGKILL at the
first tier write, through the fault proxy of tests/ingest/proxy.py), or loaded with the tiers
switched off. The tiers' first and last windows still hold the series' first and last points,
so the coverage check alone would answer the middle from stale tier windows. Every answer is
compared with an API that has no tiers (`API_TIERS=""`), for every tier, at both edges of the
marker's range (a query that meets it by one tier window, and one that stops a window short),
and with local days; after the repair (the same load again, or `ingest rollup`) the tiers answer
again, with the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridts.pending import Marker
from ingest.generate import main as generate_main
from ingest.pending import iso, read_open
from ingest.rollup import Influx
from tests.app.conftest import AppClient, make_settings
from tests.app.test_tiers import both, same_answer
from tests.conftest import InfluxServer
from tests.ingest.proxy import Request, Rule, running
from tests.ingest.test_rollup import TIERS
from tests.ingest.test_rollup_faults import (
    SERIES,
    is_marker_write,
    killed_at,
    load,
    rollup_command,
    tier_write,
    tiered,  # noqa: F401 (a fixture)
)
from tests.prometheus_text import values

OUTER = ("2021-05-01T02:00:00+02:00", "2021-05-01T06:00:00+02:00")  # 00:00Z-04:00Z
MIDDLE = ("2021-05-01T03:07:30+02:00", "2021-05-01T04:30:00+02:00")  # 01:07:30Z-02:30Z
# overlaps the middle's last half hour, does not hold all of it
OTHER = ("2021-05-01T04:00:00+02:00", "2021-05-01T05:00:00+02:00")  # 02:00Z-03:00Z
DAY = ("2021-04-30T00:00:00Z", "2021-05-03T00:00:00Z")
AGGS = ("mean", "max", "count")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pending")
    out = {}
    for name, (start, end), seed in (
        ("outer", OUTER, 1),
        ("middle", MIDDLE, 2),
        ("other", OTHER, 3),
    ):
        out[name] = tmp / f"{name}.csv"
        argv = ["--start", start, "--end", end, "--step", "1s", "--kind", "measured",
                "--seed", str(seed), "--series", SERIES, "--out", str(out[name])]  # fmt: skip
        assert generate_main([*argv, "--quiet"]) == 0
    return out


@dataclass
class Apis:
    tiers: httpx.AsyncClient
    raw: httpx.AsyncClient


@pytest.fixture
async def apis(influx: InfluxServer, bucket: str, tiered: Influx) -> AsyncIterator[Apis]:  # noqa: F811
    """Two APIs on the bucket, one with tiers and one without; catalog TTL 0: every request
    reloads the catalog and the markers, as the next reload after a TTL would."""
    async with (
        AppClient(make_settings(influx, bucket, api_catalog_ttl_seconds=0)) as with_tiers,
        AppClient(make_settings(influx, bucket, api_tiers="", api_catalog_ttl_seconds=0)) as raw,
    ):
        yield Apis(with_tiers, raw)


async def answer(apis: Apis, start: int, end: int, res: str, **extra: str) -> str:
    """The tiered API's source for [start, end) at ``res``; its points equal the raw API's for
    every aggregate."""
    sources = set()
    for agg in AGGS:
        params = {"start": iso(start), "end": iso(end), "resolution": res, "agg": agg, **extra}
        a, b = await both(apis.tiers, apis.raw, f"/v1/series/{SERIES}/data", params)
        assert b.json()["points"], f"vacuous: {params}"
        same_answer(agg, a.json()["points"], b.json()["points"], str(params))
        assert a.json()["source"] == a.headers["X-Data-Source"]
        sources.add(a.headers["X-Data-Source"])
    assert len(sources) == 1, sources
    return sources.pop()


async def check_pending(apis: Apis, marker: tuple[int, int], outer: tuple[int, int]) -> None:
    """Raw wherever a query's tier windows meet [lo, stop) of the marker, the tier elsewhere;
    equal to the raw answers everywhere. Every tier, both edges, the whole span, local days."""
    lo, stop = marker
    hi = stop - 1
    for tier in TIERS:
        t, res = tier.seconds, tier.text
        w0, w1 = lo - lo % t, hi - hi % t  # the tier windows holding the first and last points
        assert await answer(apis, *outer, res) == "raw", res
        # meets the marker's first window / stops just before it
        assert await answer(apis, w0 - 3 * t, w0 + t, res) == "raw", res
        assert await answer(apis, w0 - 3 * t, w0, res) == f"tier:{res}", res
        # meets its last window / starts just after it
        assert await answer(apis, w1, w1 + 3 * t, res) == "raw", res
        assert await answer(apis, w1 + t, w1 + 4 * t, res) == f"tier:{res}", res
        # an unaligned range whose tier interior meets the marker by one window: raw too
        assert await answer(apis, w0 - 3 * t + 1, w0 + t + 1, res) == "raw", res
    # local days: Zurich's days are unions of UTC hours
    assert await answer(apis, *_iso_pair(DAY), "1d", tz="Europe/Zurich") == "raw"


async def check_repaired(apis: Apis, outer: tuple[int, int]) -> None:
    for tier in TIERS:
        assert await answer(apis, *outer, tier.text) == f"tier:{tier.text}"
    assert await answer(apis, *_iso_pair(DAY), "1d", tz="Europe/Zurich") == "tier:1h"


def _iso_pair(pair: tuple[str, str]) -> tuple[int, int]:
    a, b = (int(datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp()) for x in pair)
    return a, b


def open_markers(api: Influx) -> dict[str, list[Marker]]:
    return {t.text: read_open(api, t.bucket(api.target.bucket)) for t in TIERS}


def the_marker(api: Influx) -> Marker:
    """The one open marker, the same in every tier bucket."""
    found = open_markers(api)
    assert all(len(m) == 1 for m in found.values()), found
    first = found[TIERS[0].text][0]
    assert all(m[0] == first for m in found.values()), found
    assert first.series == SERIES
    return first


OUTER_S = _iso_pair(("2021-05-01T00:00:00Z", "2021-05-01T04:00:00Z"))
MIDDLE_POINTS = _iso_pair(("2021-05-01T01:07:30Z", "2021-05-01T02:30:00Z"))  # [first, last + 1 s)


@pytest.mark.parametrize("repair", ["load", "rollup"])
async def test_a_load_killed_between_raw_and_tier_writes_is_answered_from_raw_until_repaired(
    capsys: pytest.CaptureFixture[str],
    influx: InfluxServer,
    influx_env: dict[str, str],
    tiered: Influx,  # noqa: F811
    apis: Apis,
    files: dict[str, Path],
    repair: str,
) -> None:
    code, err = load(capsys, influx_env, files["outer"])
    assert code == 0, err
    assert open_markers(tiered) == {t.text: [] for t in TIERS}  # cleared by the load itself
    await check_repaired(apis, OUTER_S)
    rule = Rule(tier_write(tiered.target.bucket, TIERS[0].text), hold=True)
    with running(influx.url, rule) as proxy:
        killed_at(influx_env, files["middle"], proxy.url, rule)
    marker = the_marker(tiered)
    assert marker.state == "written"  # every raw write was acknowledged
    assert (marker.start, marker.stop) == MIDDLE_POINTS
    await check_pending(apis, MIDDLE_POINTS, OUTER_S)
    await check_listed(apis, [(SERIES, *MIDDLE_POINTS)])
    if repair == "load":
        code, err = load(capsys, influx_env, files["middle"])  # clears the killed load's
    else:
        code, err = rollup_command(capsys, influx_env, *DAY)
        assert "3 pending-rollup markers cleared" in err, err  # one per tier bucket
    assert code == 0, err
    assert open_markers(tiered) == {t.text: [] for t in TIERS}
    await check_repaired(apis, OUTER_S)
    await check_listed(apis, [])


async def check_listed(apis: Apis, pending: list[tuple[str, int, int]]) -> None:
    """`GET /v1/tiers` of the tiered API: every tier found and answering, holding the series
    in full, with exactly ``pending`` (series, start, stop) as its ranges not rolled up yet;
    the API without tiers lists none."""
    body = (await apis.tiers.get("/v1/tiers")).json()
    assert body["answering"] is True
    assert [t["window"] for t in body["tiers"]] == [t.text for t in TIERS]
    want = [{"series": s, "start": iso(a), "end": iso(b)} for s, a, b in pending]
    metrics = (await apis.tiers.get("/metrics")).text
    for tier in body["tiers"]:
        assert tier["found"] is True, tier
        assert tier["series_not_held"] == [], tier
        assert tier["pending"] == want, tier
        assert tier["pending_total"] == len(want), tier
        # the same in the metrics, for an alert on a load left unrepaired
        label = {"tier": tier["window"]}
        assert values(metrics, "gridts_api_tier_pending_ranges", **label) == [len(want)]
        assert values(metrics, "gridts_api_tier_series_not_held", **label) == [0]
    assert values(metrics, "gridts_api_tiers_answering") == [1]
    assert (await apis.raw.get("/v1/tiers")).json() == {"answering": False, "tiers": []}
    assert values((await apis.raw.get("/metrics")).text, "gridts_api_tiers_answering") == [0]


async def test_a_load_with_tiers_off_leaves_its_marker_and_says_what_to_run(
    capsys: pytest.CaptureFixture[str],
    influx_env: dict[str, str],
    tiered: Influx,  # noqa: F811
    apis: Apis,
    files: dict[str, Path],
) -> None:
    code, err = load(capsys, influx_env, files["outer"])
    assert code == 0, err
    code, err = load(capsys, influx_env, files["middle"], extra=("--tiers", ""))
    assert code == 0, err
    marker = the_marker(tiered)
    assert (marker.start, marker.stop, marker.state) == (*MIDDLE_POINTS, "written")
    warning = next(line for line in err.splitlines() if "do not hold the points" in line)
    assert "[2021-05-01T01:07:30Z, 2021-05-01T02:30:00Z)" in warning, warning
    await check_pending(apis, MIDDLE_POINTS, OUTER_S)
    # the command the warning names, as the operator would run it
    found = re.search(r"--start (\S+) --end (\S+) --series (\S+)", warning)
    assert found is not None, warning
    assert found[3] == SERIES
    code, err = rollup_command(capsys, influx_env, found[1], found[2])
    assert code == 0, err
    assert open_markers(tiered) == {t.text: [] for t in TIERS}
    await check_repaired(apis, OUTER_S)


async def test_a_rollup_that_does_not_cover_a_marker_leaves_it(
    capsys: pytest.CaptureFixture[str],
    influx_env: dict[str, str],
    tiered: Influx,  # noqa: F811
    apis: Apis,
    files: dict[str, Path],
) -> None:
    code, err = load(capsys, influx_env, files["outer"])
    assert code == 0, err
    code, err = load(capsys, influx_env, files["middle"], extra=("--tiers", ""))
    assert code == 0, err
    code, err = rollup_command(capsys, influx_env, "2021-05-01T01:00:00Z", "2021-05-01T02:00:00Z")
    assert code == 0, err
    assert the_marker(tiered).state == "written"
    await check_pending(apis, MIDDLE_POINTS, OUTER_S)


def raw_write(bucket: str) -> Any:
    return lambda r: r.kind == "write" and r.bucket == bucket


async def test_overlapping_loads_do_not_clear_each_others_markers(
    capsys: pytest.CaptureFixture[str],
    influx: InfluxServer,
    influx_env: dict[str, str],
    tiered: Influx,  # noqa: F811
    apis: Apis,
    files: dict[str, Path],
) -> None:
    """Load A stops in the middle of its raw writes (killed there: to any other load it is a
    load still running); load B over an overlapping range finishes. B clears its own markers,
    not A's: the API answers A's range from raw until a rollup of it. Then A killed after its
    raw writes, with B's range not holding all of A's: A's marker stays too."""
    bucket = tiered.target.bucket
    code, err = load(capsys, influx_env, files["outer"])
    assert code == 0, err
    rule = Rule(raw_write(bucket), hold=True)
    with running(influx.url, rule) as proxy:
        killed_at(influx_env, files["middle"], proxy.url, rule)
    a = the_marker(tiered)
    assert a.state == "writing"
    # while writing, the marker holds more than the points: whole days ahead
    assert a.start <= MIDDLE_POINTS[0]
    assert a.stop >= MIDDLE_POINTS[1]
    code, err = load(capsys, influx_env, files["other"])  # B: covers A's points 02:00-02:30
    assert code == 0, err
    assert the_marker(tiered) == a
    for tier in TIERS:  # A's range is whole days: all of the series
        assert await answer(apis, *OUTER_S, tier.text) == "raw"
    # A again, killed after its raw writes; then B again: B's rollup does not hold A's range
    code, err = rollup_command(capsys, influx_env, *DAY)
    assert code == 0, err
    assert open_markers(tiered) == {t.text: [] for t in TIERS}
    rule = Rule(tier_write(bucket, TIERS[-1].text), hold=True)
    with running(influx.url, rule) as proxy:
        killed_at(influx_env, files["middle"], proxy.url, rule)
    a = the_marker(tiered)
    assert (a.start, a.stop, a.state) == (*MIDDLE_POINTS, "written")
    code, err = load(capsys, influx_env, files["other"])
    assert code == 0, err
    assert the_marker(tiered) == a
    await check_pending(apis, MIDDLE_POINTS, OUTER_S)


def test_marker_writes_go_before_the_raw_points(
    capsys: pytest.CaptureFixture[str],
    influx: InfluxServer,
    influx_env: dict[str, str],
    tiered: Influx,  # noqa: F811
    files: dict[str, Path],
) -> None:
    """Every tier bucket has the load's marker before the first raw write, and its `done`
    after the last tier write."""
    bucket = tiered.target.bucket
    order: list[tuple[str, str | None]] = []

    def watch(r: Request) -> bool:
        if r.kind == "write":
            kind = "marker" if is_marker_write(r) else "raw" if r.bucket == bucket else "tier"
            if kind == "marker" and b'state="done"' in r.body:
                kind = "done"
            order.append((kind, r.bucket))
        return False

    with running(influx.url, Rule(watch)) as proxy:
        code, err = load(capsys, influx_env, files["middle"], url=proxy.url)
    assert code == 0, err
    kinds = [k for k, _ in order]
    first_raw = kinds.index("raw")
    tier_buckets = {t.bucket(bucket) for t in TIERS}
    assert {b for k, b in order[:first_raw] if k == "marker"} == tier_buckets
    last_tier = max(i for i, k in enumerate(kinds) if k == "tier")
    assert {b for k, b in order[last_tier:] if k == "done"} == tier_buckets
    assert "done" not in kinds[:last_tier]
