"""bench/report.py re-renders docs/results.md from the benchmarks run on this machine, keeping
the last results of those that were not (bench/out/ is not in the repository)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

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
    CPU time (from /proc), and a part's share is its CPU time over all the cores' time."""
    import os
    import subprocess
    import time

    load = importlib.import_module("load")
    spin = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", spin + "\nimport sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while load.cpu_seconds(child.pid) < 0.4:
            assert time.monotonic() < deadline, "the child's CPU time never reached 0.4 s"
            time.sleep(0.05)
        time.sleep(0.3)  # it waits on stdin now: its CPU time stays put
        assert 0.4 <= load.cpu_seconds(child.pid) < 0.8
    finally:
        child.communicate(b"")
    shares = load.cpu_shares({"api": 3.0, "influxdb": 9.0}, seconds=10.0)
    cores = os.cpu_count() or 1
    assert shares["share"] == {
        "api": round(3.0 / (10 * cores), 3),
        "influxdb": round(0.9 / cores, 3),
    }
    assert shares["cpu_seconds"] == {"api": 3.0, "influxdb": 9.0}
