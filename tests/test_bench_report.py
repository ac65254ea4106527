"""bench/report.py re-renders docs/results.md from the benchmarks run on this machine, keeping
the last results of those that were not (bench/out/ is not in the repository)."""

from __future__ import annotations

import importlib
import json
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
report = importlib.import_module("report")  # bench/report.py, a script beside the benches
keep_earlier, sections = report.keep_earlier, report.sections

OLD = """# Results

intro

## Ingest

old ingest table

## Query API

old API numbers
"""


def test_a_section_without_new_results_keeps_the_earlier_one() -> None:
    new = """# Results

intro

## Ingest

_No ingest results yet: run `make bench`._

## Query API

new API numbers

## Plain reads

_No results yet: run `bench/influxql.py`._
"""
    got = keep_earlier(new, OLD)
    assert [h for h, _ in sections(got)] == ["", "## Ingest", "## Query API", "## Plain reads"]
    assert "old ingest table" in got
    assert "new API numbers" in got
    assert "old API numbers" not in got
    # a section the page did not have yet stays as it is
    assert got.endswith("## Plain reads\n\n_No results yet: run `bench/influxql.py`._\n")


def test_every_line_is_in_one_section() -> None:
    assert "".join(body for _, body in sections(OLD)) == OLD


def test_the_load_tests_cpu_shares_are_each_parts_own() -> None:
    """bench/load.py's CPU accounting: a child that spins for a while has used about that much
    CPU time (from /proc), and a part's share is its CPU time over all the cores' time.

    /proc gives user and system time in whole clock ticks, each rounded down on its own, so a
    child that stopped just past 0.5 s can read 0.49 s for ever: the check allows two ticks."""
    import os
    import subprocess

    load = importlib.import_module("load")
    procstat = importlib.import_module("procstat")
    spin = (
        "import sys, time\nend = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\n"
        "print('spun', flush=True)\nsys.stdin.read()"
    )
    child = subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"spun\n"
        tick = 1 / os.sysconf("SC_CLK_TCK")
        used = procstat.cpu_seconds(child.pid)
        assert 0.5 - 2 * tick <= used < 0.9
        assert load.cpu_seconds is procstat.cpu_seconds
    finally:
        child.communicate(b"")
    shares = load.cpu_shares({"api": 3.0, "influxdb": 9.0}, seconds=10.0)
    cores = os.cpu_count() or 1
    assert shares["share"] == {
        "api": round(3.0 / (10 * cores), 3),
        "influxdb": round(0.9 / cores, 3),
    }
    assert shares["cpu_seconds"] == {"api": 3.0, "influxdb": 9.0}


def test_the_load_tests_requests_by_when_they_were_asked() -> None:
    """bench/load.py's slices: each request in the slice of its start, the rate per second of
    the slice, and p50/p99 of the slice's own latencies."""
    load = importlib.import_module("load")
    began = [0.5, 3.0, 9.9, 10.0, 25.0]
    latencies = [0.1, 0.3, 0.2, 2.0, 0.4]
    got = load.over_time(began, latencies)
    assert [s["from_s"] for s in got] == [0, 10, 20]
    assert [s["requests"] for s in got] == [3, 1, 1]
    assert [s["per_second"] for s in got] == [0.3, 0.1, 0.1]
    assert got[0]["p50_ms"] == 200.0
    assert got[0]["p99_ms"] == 300.0
    assert got[1]["p99_ms"] == 2000.0
    assert load.summary([]) == {"requests": 0, "p50_ms": 0.0, "p99_ms": 0.0}


def test_the_report_shows_the_runs_over_time_side_by_side() -> None:
    on = {
        "over_time": [
            {"from_s": 0, "per_second": 40.0, "p50_ms": 1500.0, "p99_ms": 3000.0},
            {"from_s": 10, "per_second": 95.0, "p50_ms": 600.0, "p99_ms": 1400.0},
        ],
        "ingest_seconds": 17.4,
        "after_ingest": {"requests": 3900, "p50_ms": 610.0, "p99_ms": 1650.0},
    }
    off = {"over_time": [{"from_s": 0, "per_second": 41.0, "p50_ms": 700.0, "p99_ms": 2400.0}]}
    lines: list[str] = []
    report.over_time_section(lines, on, off)
    text = "\n".join(lines)
    assert "| 0 | 40.0, 1500, 3000 | 41.0, 700, 2400 |" in text
    assert "| 10 | 95.0, 600, 1400 |  |" in text
    assert "the ingest ended 17 s into the mix; the 3,900 requests asked after it: p50 610" in text
    lines = []
    report.over_time_section(lines, {}, None)
    assert lines == []


def test_a_ratios_interval_holds_its_estimate_and_widens_with_the_noise() -> None:
    """bench/api.py's bootstrap interval of median / median: a constant ratio round by round
    is the interval itself when paired; noisier timings give a wider interval that still holds
    the ratio of the medians; two samples of one distribution give an interval around 1."""
    import random

    api = importlib.import_module("api")  # bench/api.py
    rng = random.Random(3)
    den = [rng.uniform(10, 30) for _ in range(40)]
    assert api.ratio_interval([2 * d for d in den], den, paired=True) == (2.0, 2.0)

    steady = [20 + rng.gauss(0, 0.5) for _ in range(40)]
    noisy = [20 + rng.gauss(0, 5) for _ in range(40)]
    base = [16 + rng.gauss(0, 0.5) for _ in range(40)]
    narrow = api.ratio_interval(steady, base, paired=False)
    wide = api.ratio_interval(noisy, base, paired=False)
    assert wide[1] - wide[0] > 3 * (narrow[1] - narrow[0])
    for (low, high), num in ((narrow, steady), (wide, noisy)):
        estimate = statistics.median(num) / statistics.median(base)
        assert low <= estimate <= high

    same = api.ratio_interval(
        [rng.gauss(20, 2) for _ in range(40)], [rng.gauss(20, 2) for _ in range(40)], paired=False
    )
    assert same[0] < 1.0 < same[1]


def test_the_api_section_shows_each_ratios_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Query API table of results.md gives each ratio's interval, and the tiers' speedup
    its own; a run from before intervals were kept shows n/a, not a made-up one."""
    run = {
        "machine": "m",
        "latency": {
            "one day at 30 s": {"points": 2880, "api_p50_ms": 6.5, "flux_p50_ms": 5.0,
                                "ratio": 1.3, "ratio_interval": [1.21, 1.38]},
            "older run": {"points": 35040, "api_p50_ms": 23.7, "flux_p50_ms": 17.5,
                          "ratio": 1.35},
        },
        "tier_speedup_15m": 12.4,
        "tier_speedup_15m_interval": [11.9, 13.0],
        "tier_equals_raw_random": {"requests": 200, "mismatched": 0, "windows": 123456,
                                   "sources": {"tier:1m": 150, "raw": 50},
                                   "refused_raw_only": 7},
    }  # fmt: skip
    (tmp_path / "api.json").write_text(json.dumps(run))
    monkeypatch.setattr(report, "OUT", tmp_path)  # bench/out/ of a run, here the one above
    lines: list[str] = []
    report.api_section(lines)
    text = "\n".join(lines)
    assert "| one day at 30 s | 2,880 | 6.5 | 5.0 | 1.30 | 1.21 to 1.38 |" in text
    assert "| older run | 35,040 | 23.7 | 17.5 | 1.35 | n/a |" in text
    assert "**12.4 x faster** (95 % interval 11.9 to 13.0 x)" in text
    assert "200 random requests" in text
    assert "**0 differed** (123,456 windows compared" in text
    assert "7 refused as too costly by the tiers-off API only" in text


def test_random_requests_compare_windows_flags_and_values_as_the_issue_says() -> None:
    """bench/api.py's comparison of the tiered and the tiers-off answers: labels and `partial`
    must match; count, min, max, first, last exactly; sum, mean, stddev within 1e-9."""
    import random
    from datetime import UTC, datetime

    api = importlib.import_module("api")
    one = [{"time": "t0", "value": 1.0, "partial": True}, {"time": "t1", "value": 3.0,
                                                           "partial": False}]  # fmt: skip
    near = [{**one[0], "value": 1.0 + 1e-12}, one[1]]
    assert api._same_points(one, one, "max")
    assert api._same_points(one, near, "mean")
    assert not api._same_points(one, near, "max")
    assert not api._same_points(one, [{**one[0], "value": 1.0 + 1e-6}, one[1]], "mean")
    assert not api._same_points(one, [{**one[0], "partial": False}, one[1]], "max")
    assert not api._same_points(one, [{**one[0], "time": "t2"}, one[1]], "max")
    assert not api._same_points(one, [{**one[0], "value": None}, one[1]], "stddev")
    first, end = datetime(2021, 5, 1, tzinfo=UTC), datetime(2022, 5, 1, tzinfo=UTC)
    rng = random.Random(1)
    drawn = [api.random_request(rng, first, end) for _ in range(300)]
    for query in drawn:
        start, stop = (datetime.fromisoformat(query[k].replace("Z", "+00:00"))
                       for k in ("start", "end"))  # fmt: skip
        assert first <= start < stop <= end, query
    assert {q["agg"] for q in drawn} == set(api.FUZZ_AGGS)
    assert {q["resolution"] for q in drawn} == set(api.FUZZ_RESOLUTIONS)
    assert {q.get("tz") for q in drawn} == {None, *api.FUZZ_ZONES}
