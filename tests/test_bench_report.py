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
