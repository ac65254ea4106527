"""Rollup tiers against the real influxd: every tier window equals the statistics of the raw
points InfluxDB holds, whichever way the raw points arrived (issue 10, item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridts import tiers as stats
from gridts.tiers import Tier, parse_tiers
from ingest.rollup import (
    Influx,
    TagSet,
    ensure_tier_buckets,
    missing_tier_buckets,
    raw_points,
    refresh,
)
from ingest.writer import Target
from tests.conftest import ROOT, InfluxServer

TIERS = parse_tiers("1m,15m,1h")
T0 = 1_619_827_200  # 2021-05-01T00:00:00Z
UNIT: TagSet = (("unit", "Hz"),)


@pytest.fixture
def influx_api(influx: InfluxServer, bucket: str) -> Iterator[Influx]:
    api = Influx(Target(influx.url, influx.org, bucket, influx.token))
    ensure_tier_buckets(api, TIERS)
    yield api
    for tier in TIERS:
        found = api.api(
            "GET", "/api/v2/buckets", "lookup", absent_ok=True, params={"name": tier.bucket(bucket)}
        )
        for b in (found or {}).get("buckets", []):
            api.api("DELETE", f"/api/v2/buckets/{b['id']}", "drop")
    api.close()


def frequency(n: int, seed: int, start: int = T0, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = start + np.arange(n, dtype=np.int64) * step
    keep = rng.random(n) > 0.03  # a few missing seconds
    return times[keep], np.round(50.0 + rng.normal(0, 0.02, n), 4)[keep]


def write_raw(api: Influx, series: str, times: np.ndarray, values: np.ndarray) -> None:
    body = "".join(
        f"{series},unit=Hz value={v!r} {t}\n"
        for t, v in zip(times.tolist(), values.tolist(), strict=True)
    )
    api.write(api.target.bucket, body.encode())


def read_tier(api: Influx, tier: Tier, series: str) -> pd.DataFrame:
    bucket = tier.bucket(api.target.bucket)
    frame = api.query(
        f'from(bucket: "{bucket}")'
        " |> range(start: 2021-01-01T00:00:00Z, stop: 2022-01-01T00:00:00Z)"
        f' |> filter(fn: (r) => r._measurement == "{series}")'
        ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
        ' |> keep(columns: ["_time", "unit", "count", "sum", "min", "max", "first", "last", "m2",'
        ' "mean"])'
    )
    frame["start"] = pd.to_datetime(frame["_time"], utc=True).dt.as_unit("s").astype("int64")
    return frame


def assert_tiers_equal_points(
    api: Influx, series: str, times: np.ndarray, values: np.ndarray
) -> None:
    order = np.argsort(times, kind="stable")
    for tier in TIERS:
        want = stats.from_points(times[order], values[order], tier.seconds)
        got = read_tier(api, tier, series)
        assert got["start"].tolist() == want.start.tolist(), tier
        assert set(got["unit"]) == {"Hz"}
        assert got["count"].astype(int).tolist() == want.count.tolist(), tier
        for name in ("min", "max", "first", "last"):
            assert got[name].astype(float).tolist() == getattr(want, name).tolist(), (tier, name)
        np.testing.assert_allclose(got["sum"].astype(float), want.sum, rtol=1e-12)
        np.testing.assert_allclose(got["m2"].astype(float), want.m2, rtol=1e-9, atol=1e-12)
        # the stored mean is exactly the stored sum / count, as the API would divide them
        means = got["sum"].astype(float) / got["count"].astype(int)
        assert got["mean"].astype(float).tolist() == means.tolist(), tier


def test_tier_buckets_are_set_up_idempotently_with_retention(influx_api: Influx) -> None:
    assert missing_tier_buckets(influx_api, TIERS) == []
    again = ensure_tier_buckets(influx_api, TIERS)
    assert all(line.startswith("kept ") for line in again), again
    changed = ensure_tier_buckets(influx_api, TIERS, {TIERS[0]: 7 * 86400})
    assert changed[0].startswith("updated ")
    assert "604800s" in changed[0]
    assert ensure_tier_buckets(influx_api, TIERS, {TIERS[0]: 7 * 86400})[0].startswith("kept ")
    # shorter than a forever bucket's 7-day shard groups: the groups come down with it
    short = ensure_tier_buckets(influx_api, TIERS, {TIERS[1]: 86400})
    assert short[1].startswith("updated ")
    assert "86400s" in short[1]


def test_rollup_from_raw_equals_the_points(influx_api: Influx) -> None:
    times, values = frequency(3 * 3600 + 123, seed=1, start=T0 + 600)  # unaligned both ends
    write_raw(influx_api, "f", times, values)
    done = refresh(influx_api, TIERS, "f", int(times[0]), int(times[-1]))
    assert done.windows_from_file == 0
    assert done.points_read == len(times)
    assert_tiers_equal_points(influx_api, "f", times, values)


def test_a_rollup_over_a_wide_range_reads_only_the_days_with_points(influx_api: Influx) -> None:
    """A month's range around two hours of data: one count per day of the range in one query,
    then only the busy day is counted per minute and read (it took 0.7 s per empty day)."""
    times, values = frequency(7200, seed=6, start=T0 + 10 * 86400 + 3600)
    write_raw(influx_api, "f", times, values)
    before = influx_api.queries
    refresh(influx_api, TIERS, "f", T0, T0 + 30 * 86400 - 1)
    # days, the busy day's minutes, its points; the settle step's count per hour (one query)
    assert influx_api.queries - before == 4
    assert_tiers_equal_points(influx_api, "f", times, values)


def test_two_files_meeting_mid_window_give_the_tiers_of_one(influx_api: Influx) -> None:
    """Each load gives its parsed windows; the edge windows they share come from raw."""
    times, values = frequency(7200, seed=2, start=T0)
    cut = 2 * 3600 // 2 + 1234  # inside a minute, a quarter hour and an hour
    cut = int(np.searchsorted(times, T0 + cut))
    for part in (slice(None, cut), slice(cut, None)):
        t, v = times[part], values[part]
        write_raw(influx_api, "f", t, v)
        parsed = {UNIT: stats.from_points(t, v, 60)}
        done = refresh(influx_api, TIERS, "f", int(t[0]), int(t[-1]), parsed)
        assert done.windows_from_file > 0
        # Read back: only the minutes of the hours this part touches that hold earlier points.
        start, stop = int(t[0]) - int(t[0]) % 3600, int(t[-1]) - int(t[-1]) % 3600 + 3600
        stored = times[times <= t[-1]]
        earlier = stored[(stored < t[0]) & (stored >= start) & (stored < stop)]
        shared = np.isin(stored - stored % 60, earlier - earlier % 60)
        assert done.points_read == int(np.sum(shared))
    assert_tiers_equal_points(influx_api, "f", times, values)
    # a re-run changes nothing (idempotent)
    again = refresh(influx_api, TIERS, "f", int(times[0]), int(times[-1]))
    assert again.windows_from_raw > 0
    assert_tiers_equal_points(influx_api, "f", times, values)


def test_parsed_windows_that_disagree_with_raw_are_recomputed(influx_api: Influx) -> None:
    """A file with a duplicate instant (raw keeps the last value), and a window that another
    series key shares: the raw counts differ, so those windows come from raw."""
    times, values = frequency(1800, seed=3)
    write_raw(influx_api, "f", times, values)
    dup_t = np.concatenate([times[:10], times[9:10], times[10:]])
    dup_v = np.concatenate([values[:10], [values[9] + 1.0], values[10:]])
    parsed = {UNIT: stats.from_points(dup_t, dup_v, 60)}  # the first minute counts 61 rows
    done = refresh(influx_api, TIERS, "f", int(times[0]), int(times[-1]), parsed)
    assert done.windows_from_raw >= 1
    assert_tiers_equal_points(influx_api, "f", times, values)


def test_a_sparse_series_is_read_back_a_day_at_a_time(influx_api: Influx) -> None:
    """A point every 15 minutes makes every minute window with a point dirty, a few windows
    apart: one read per day, not one per point (20 days were 1,900 queries)."""
    times, values = frequency(20 * 96, seed=7, step=900)
    write_raw(influx_api, "f", times, values)
    before = influx_api.queries
    done = refresh(influx_api, TIERS, "f", int(times[0]), int(times[-1]))
    assert done.raw_reads == 20
    assert done.points_read == len(times)
    # the days, the minutes of the block, the reads, the settle step's count
    assert influx_api.queries - before == 1 + 1 + 20 + 1
    assert_tiers_equal_points(influx_api, "f", times, values)


def test_a_read_joining_dirty_windows_takes_only_theirs(influx_api: Influx) -> None:
    """Two dirty minutes half an hour apart are read together; the minutes between them come
    from the file and must not be counted twice."""
    times, values = frequency(7200, seed=8)
    write_raw(influx_api, "f", times, values)
    wrong = stats.from_points(times, values, 60)
    for minute in (10, 40):  # parsed counts the raw counts disagree with: recomputed
        wrong.count[minute] += 1
    done = refresh(influx_api, TIERS, "f", int(times[0]), int(times[-1]), {UNIT: wrong})
    assert done.raw_reads == 1
    assert done.windows_from_raw == 2
    minutes = (times - T0) // 60
    assert done.points_read == int(np.sum(minutes == 10) + np.sum(minutes == 40))
    assert_tiers_equal_points(influx_api, "f", times, values)


# --- through the command line, as an operator runs it -------------------------------------------


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def assert_tiers_match_raw(api: Influx, series: str) -> None:
    """Every tier equals the statistics of the raw points InfluxDB holds now."""
    raw = raw_points(api, series, T0 - 40 * 86400, T0 + 40 * 86400)
    assert len(raw) == 1
    ((_, (times, values)),) = raw.items()
    assert_tiers_equal_points(api, series, times, values)


def generate(tmp: Path, start: str, end: str, seed: int, name: str = "f") -> Path:
    out = tmp / f"{name}-{seed}-{start[:10]}.csv"
    done = run(
        {}, "generate", "--start", start, "--end", end, "--step", "1s", "--kind", "measured",
        "--seed", str(seed), "--series", name, "--out", str(out), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_loads_refresh_the_tiers_of_what_they_write(
    influx_api: Influx, influx_env: dict[str, str], tmp_path: Path
) -> None:
    """Two operator files meeting mid-hour, then a corrected file over part of the first:
    after each load, every tier equals the raw points; the summary says what was refreshed."""
    a = generate(tmp_path, "2021-05-01T02:00:00+02:00", "2021-05-01T03:37:13+02:00", seed=1)
    b = generate(tmp_path, "2021-05-01T03:37:13+02:00", "2021-05-01T05:00:00+02:00", seed=2)
    fix = generate(tmp_path, "2021-05-01T02:40:00+02:00", "2021-05-01T02:50:07+02:00", seed=3)
    for path in (a, b, fix):
        report = tmp_path / "report.json"
        done = run(influx_env, "load", str(path), "--label", "end", "--report", str(report))
        assert done.returncode == 0, done.stderr
        assert "tiers 1m,15m,1h:" in done.stderr
        summary = json.loads(report.read_text())
        assert summary["tiers"] == ["1m", "15m", "1h"]
        assert summary["tier_windows_written"] > 0
        assert_tiers_match_raw(influx_api, "f")
    # the same load again: the same tiers (idempotent)
    assert run(influx_env, "load", str(b), "--label", "end").returncode == 0
    assert_tiers_match_raw(influx_api, "f")


def test_rollup_command_builds_tiers_for_data_other_tools_wrote(
    influx_api: Influx, influx_env: dict[str, str]
) -> None:
    times, values = frequency(5000, seed=4, start=T0 + 1234)
    write_raw(influx_api, "other", times, values)  # line protocol, no tiers
    done = run(influx_env, "rollup", "--start", "2021-05-01T00:00:00Z",
               "--end", "2021-05-02T00:00:00Z", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rollup of 1 series" in done.stderr
    assert_tiers_match_raw(influx_api, "other")
    bad = run(
        influx_env, "rollup", "--start", "2021-05-02T00:00:00Z", "--end", "2021-05-01T00:00:00Z"
    )
    assert bad.returncode == 2
    assert "--end must be after --start" in bad.stderr


def test_tiers_command_and_loads_without_tier_buckets(
    influx: InfluxServer, bucket: str, influx_env: dict[str, str], tmp_path: Path
) -> None:
    """No tier buckets: a load warns and writes raw only (the API answers from raw); the
    tiers command creates them, twice is harmless, retention is set per tier."""
    path = generate(tmp_path, "2021-05-01T02:00:00+02:00", "2021-05-01T02:10:00+02:00", seed=5)
    done = run(influx_env, "load", str(path), "--label", "end")
    assert done.returncode == 0, done.stderr
    assert "tiers not refreshed (python -m ingest tiers creates them)" in done.stderr
    assert "warning" not in done.stderr
    for _ in range(2):
        made = run(influx_env, "tiers", "--retention", "1m=90d,1h=0")
        assert made.returncode == 0, made.stderr
    assert f"kept {bucket}_1m (retention 7776000s)" in made.stderr
    assert f"kept {bucket}_1h (kept forever)" in made.stderr
    unknown = run(influx_env, "tiers", "--retention", "5m=1d")
    assert unknown.returncode == 2
    assert "not in --tiers" in unknown.stderr
    # a tier that keeps 90 days takes no window of 2021: the load still succeeds
    short = run(influx_env, "load", str(path), "--label", "end")
    assert short.returncode == 0, short.stderr
    forever = run(influx_env, "tiers")
    assert f"updated {bucket}_1m (kept forever)" in forever.stderr
    api = Influx(Target(influx.url, influx.org, bucket, influx.token))
    try:
        assert missing_tier_buckets(api, TIERS) == []
        again = run(influx_env, "load", str(path), "--label", "end")
        assert again.returncode == 0, again.stderr
        assert_tiers_match_raw(api, "f")
    finally:
        for tier in TIERS:
            found = api.api("GET", "/api/v2/buckets", "l", absent_ok=True,
                            params={"name": tier.bucket(bucket)})  # fmt: skip
            for b in (found or {}).get("buckets", []):
                api.api("DELETE", f"/api/v2/buckets/{b['id']}", "drop")
        api.close()
