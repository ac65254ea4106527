"""`ingest load --shard K/N`: N processes load one wide file between them, split by its value
columns (issue 10, item 6). Together they store what one load stores, point for point and tier
window for tier window; each series is loaded by exactly one shard; a bad row is rejected by
all alike and listed once, by shard 0."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridts.tiers import parse_tiers
from ingest.pipeline import Options, RejectLog, Shard, run_source
from ingest.rollup import Influx, ensure_tier_buckets
from ingest.sources import Source, _lines
from ingest.timelayout import WEEKDAYS_DE
from ingest.writer import Target
from tests.conftest import ROOT, InfluxServer

TIERS = parse_tiers("1m,15m,1h")
SERIES = [f"f_ist_{i}" for i in range(1, 8)]  # 7 columns: 3 shards own 3, 2 and 2


# --- the pipeline alone: shards against one load, whatever the rows and the chunking ------------


class Collect:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def submit(self, body: bytes, lines: int) -> None:
        self.lines.extend(body.splitlines())


def source(data: bytes, block: int) -> Source:
    def blocks() -> Iterator[bytes]:
        for i in range(0, len(data), block):
            yield data[i : i + block]

    return Source("wide.csv", len(data), _lines(blocks(), "wide.csv"), lambda: 0)


def label(t: datetime) -> bytes:
    return f"{WEEKDAYS_DE[t.weekday()]}. {t:%d.%m.%y %H:%M:%S}".encode()


HEADER = b"Datum Zeit;" + b";".join(f"A:{n} [Hz]".encode() for n in SERIES[:4]) + b"\n"
base = datetime(2021, 10, 31, 1, 30)  # the autumn change: 02:00-03:00 comes twice
times = st.integers(0, 240).map(lambda k: base + timedelta(seconds=30 * k))
value = st.sampled_from([b"50", b"49,99", b"50,01", b"-0,5"])
good_row = st.tuples(times, st.lists(value, min_size=4, max_size=4)).map(
    lambda tv: label(tv[0]) + b";" + b";".join(tv[1])
)
bad_row = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    # one bad cell in any column: the whole row is rejected, in every shard
    st.tuples(times, st.integers(0, 3), st.sampled_from([b"", b"x", b"5,0,1"])).map(
        lambda t: label(t[0]) + b";" + b";".join(b"50" if j != t[1] else t[2] for j in range(4))
    ),
    st.just(b"Sa. 31.02.21 00:00:00;50;50;50;50"),
    st.just(b"So. 31.10.21 02:30:00;50;50"),  # too few columns
)
rows = st.tuples(good_row, st.lists(st.one_of(good_row, good_row, bad_row), max_size=120)).map(
    lambda fr: [fr[0], *fr[1]]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.integers(16, 4096), st.integers(2, 5))
def test_shards_together_give_one_load_whatever_the_rows_and_chunking(
    lines: list[bytes], block: int, count: int
) -> None:
    data = HEADER + b"\n".join(lines) + b"\n"
    opts = Options(label="end", step=30, max_errors=10**9)
    whole_sink, whole_log = Collect(), RejectLog(None, keep=10**6)
    whole = run_source(source(data, 1 << 20), opts, whole_sink, whole_log)
    union: list[bytes] = []
    owners: dict[str, int] = {}
    for k in range(count):
        shard = Shard(k, count)
        sink, log = Collect(), RejectLog(None, keep=10**6, listed=shard.lists_rejects)
        got = run_source(source(data, block), replace(opts, shard=shard), sink, log)
        union += sink.lines
        # every shard reads and judges every row as the whole load does
        assert (got.rows_read, got.rows_rejected, log.count) == (
            whole.rows_read,
            whole.rows_rejected,
            whole_log.count,
        )
        listed = [(r.line, r.reason) for _, r in log.kept]
        assert listed == ([(r.line, r.reason) for _, r in whole_log.kept] if k == 0 else [])
        for s in got.series:
            assert s.name not in owners
            owners[s.name] = k
        assert [s.name for s in got.series] == SERIES[k:4:count]
    assert sorted(union) == sorted(whole_sink.lines)
    assert sorted(owners) == SERIES[:4]


def test_a_long_file_is_not_sharded() -> None:
    data = b"series;time;value\na;" + label(base) + b";50\n"
    from ingest.dialect import DialectError

    with pytest.raises(DialectError, match="--shard splits a wide file by its columns"):
        run_source(source(data, 1 << 20), Options(label="end", step=30, shard=Shard(0, 2)),
                   Collect(), RejectLog(None))  # fmt: skip


@pytest.mark.parametrize("text", ["2/2", "-1/2", "0/0", "1", "a/b", "1/2/3", "$(JOB_INDEX)/4"])
def test_shard_specs_outside_0_to_n_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--shard"):
        Shard.parse(text)


# --- through the command line, against the live influxd -----------------------------------------


def run(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", *map(str, args)],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def two_buckets(influx: InfluxServer, bucket: str) -> Iterator[tuple[dict[str, str], ...]]:
    """Two buckets with their tier buckets: one for a whole load, one for the shards."""
    env = {**influx.env(), "INFLUX_BUCKET": bucket}
    sharded = {**env, "INFLUX_BUCKET": f"{bucket}_sharded"}
    apis = [Influx(Target(influx.url, influx.org, e["INFLUX_BUCKET"], influx.token))
            for e in (env, sharded)]  # fmt: skip
    apis[1].api("POST", "/api/v2/buckets", "create", json={
        "orgID": org_id(apis[1], influx.org), "name": sharded["INFLUX_BUCKET"],
        "retentionRules": []})  # fmt: skip
    for api in apis:
        ensure_tier_buckets(api, TIERS)
    yield env, sharded
    for api in apis:
        names = [api.target.bucket] if api is apis[1] else []
        names += [t.bucket(api.target.bucket) for t in TIERS]
        for name in names:
            found = api.api("GET", "/api/v2/buckets", "lookup", absent_ok=True,
                            params={"name": name})  # fmt: skip
            for b in (found or {}).get("buckets", []):
                api.api("DELETE", f"/api/v2/buckets/{b['id']}", "drop")
        api.close()


def org_id(api: Influx, org: str) -> str:
    return str(api.api("GET", "/api/v2/orgs", "org", params={"org": org})["orgs"][0]["id"])


def stored(env: dict[str, str], bucket: str) -> pd.DataFrame:
    """Every point of a bucket: measurement, tags, field, time, value; sorted."""
    api = Influx(Target(env["INFLUX_URL"], env["INFLUX_ORG"], bucket, env["INFLUX_TOKEN"]))
    try:
        frame = api.query(
            f'from(bucket: "{bucket}") |> range(start: 2021-01-01T00:00:00Z, '
            "stop: 2022-01-01T00:00:00Z)"
            ' |> keep(columns: ["_measurement", "unit", "_field", "_time", "_value"])'
            " |> toString() |> group()"
        )
    finally:
        api.close()
    cols = ["_measurement", "unit", "_field", "_time", "_value"]
    return frame[cols].sort_values(cols[:4]).reset_index(drop=True)


def bad_wide_file(tmp: Path) -> tuple[Path, list[int]]:
    """Seven measured series at 10 s over the autumn change (local 00:00 to 05:00 on
    31 October 2021, the hour 02-03 twice), with three bad rows; their line numbers."""
    path = tmp / "wide.csv"
    done = run({}, "generate", "--start", "2021-10-31T00:00:00+02:00",
               "--end", "2021-10-31T05:00:00+01:00", "--step", "10s", "--kind", "measured",
               "--series", ",".join(SERIES), "--wide", "--seed", "3", "--out", path,
               "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = path.read_bytes().split(b"\n")
    cells = lines[100].split(b";")
    cells[6] = b"fifty"  # a bad value in column 6 (0-based 5): shard 2/3's column f_ist_6
    lines[100] = b";".join(cells)
    lines[200] = b"Sa. 31.02.21 00:00:00" + lines[200][21:]  # no 31 February
    lines[1000] = lines[1000].rsplit(b";", 1)[0]  # a column short (02:46, the first pass)
    path.write_bytes(b"\n".join(lines))
    return path, [101, 201, 1001]


def test_shards_in_parallel_store_what_one_load_stores(
    two_buckets: tuple[dict[str, str], dict[str, str]], tmp_path: Path
) -> None:
    whole_env, shard_env = two_buckets
    path, bad = bad_wide_file(tmp_path)
    common = ("--label", "end", "--max-errors", "3")
    whole = run(whole_env, "load", path, *common, "--errors-file", tmp_path / "whole.csv",
                "--report", tmp_path / "whole.json")  # fmt: skip
    assert whole.returncode == 0, whole.stderr

    # three processes at once, as the pods of an Indexed Job
    procs = []
    for k in range(3):
        args = ["--shard", f"{k}/3", "--errors-file", tmp_path / f"errors-{k}.csv",
                "--report", tmp_path / f"report-{k}.json"]  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ingest", "load", str(path), *common, *map(str, args)],
                env={**os.environ, **shard_env, "PYTHONPATH": str(ROOT / "src")},
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs

    # point for point, raw and every tier
    for suffix in ["", *(f"_{t.text}" for t in TIERS)]:
        one = stored(whole_env, whole_env["INFLUX_BUCKET"] + suffix)
        union = stored(shard_env, shard_env["INFLUX_BUCKET"] + suffix)
        assert len(one) > 0, suffix
        pd.testing.assert_frame_equal(one, union, obj=f"bucket{suffix or ' raw'}")
    raw = stored(whole_env, whole_env["INFLUX_BUCKET"])
    rows = path.read_bytes().count(b"\n") - 1  # the header is not a row
    assert len(raw) == len(SERIES) * (rows - len(bad))

    # each series in exactly one shard: columns j with j mod 3 == k
    reports = [json.loads((tmp_path / f"report-{k}.json").read_text()) for k in range(3)]
    one_report = json.loads((tmp_path / "whole.json").read_text())
    owned = [[s["name"] for s in r["series"]] for r in reports]
    assert owned == [SERIES[0::3], SERIES[1::3], SERIES[2::3]]
    assert sorted(name for names in owned for name in names) == sorted(SERIES)
    assert [r["shard"] for r in reports] == ["0/3", "1/3", "2/3"]
    assert sum(r["points_written"] for r in reports) == one_report["points_written"]
    by_name = {s["name"]: s for r in reports for s in r["series"]}
    for s in one_report["series"]:
        assert by_name[s["name"]]["points"] == s["points"]
        assert (by_name[s["name"]]["first"], by_name[s["name"]]["last"]) == (s["first"], s["last"])

    # the bad rows: judged alike by every shard, listed once, by shard 0, as one load lists them
    def listed(name: str) -> list[tuple[str, str]]:
        with open(tmp_path / name, newline="", encoding="utf-8") as fh:
            return [(r["line"], r["reason"]) for r in csv.DictReader(fh)]

    assert [int(line) for line, _ in listed("whole.csv")] == bad
    assert listed("errors-0.csv") == listed("whole.csv")
    assert listed("errors-1.csv") == listed("errors-2.csv") == []
    assert all(r["rows_rejected"] == 3 and r["rows_read"] == one_report["rows_read"]
               for r in reports)  # fmt: skip
    assert "not a number" in errs[0]
    for k in (1, 2):
        assert "3 rows rejected, listed by shard 0/3" in errs[k]
        assert "not a number" not in errs[k]
    assert "3 of 7 series (shard 0/3)" in errs[0]


def test_too_many_bad_rows_stop_every_shard_alike(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    path, _ = bad_wide_file(tmp_path)
    for k in range(2):
        done = run(influx_env, "load", path, "--label", "end", "--shard", f"{k}/2",
                   "--tiers", "")  # fmt: skip
        assert done.returncode == 2
        assert "3 rows rejected (more than --max-errors 0)" in done.stderr


def test_invalid_shard_specs_exit_2_with_a_clear_message(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    path, _ = bad_wide_file(tmp_path)
    for spec, says in [
        ("2/2", "want 0 <= K < N"),
        ("0/0", "want 0 <= K < N"),
        ("1", "--shard wants K/N"),
        ("$(JOB_INDEX)/2", "only inside an Indexed Job: python -m ops submit --shards N"),
    ]:
        done = run(influx_env, "load", path, "--label", "end", "--shard", spec)
        assert done.returncode == 2, spec
        assert "argument --shard" in done.stderr, done.stderr
        assert says in done.stderr, done.stderr
    env = {**influx_env, "INGEST_SHARD": "3/2"}
    done = run(env, "load", path, "--label", "end")
    assert done.returncode == 2
    assert "INGEST_SHARD='3/2': --shard 3/2: want 0 <= K < N" in done.stderr
    long = tmp_path / "long.csv"
    long.write_text("series;time;value\na;2021-05-01T00:00:00Z;50\n")
    done = run(influx_env, "load", long, "--shard", "0/2")
    assert done.returncode == 2
    assert "--shard splits a wide file by its columns; this file is long" in done.stderr
    # a shard that owns no column of a file loads nothing and says so
    one = tmp_path / "one.csv"
    one.write_text("Datum Zeit;A:f [Hz]\nSa. 01.05.21 00:00:30;50\nSa. 01.05.21 00:01:00;50\n")
    done = run(influx_env, "load", one, "--label", "end", "--step", "30s", "--shard", "1/2")
    assert done.returncode == 0, done.stderr
    assert "shard 1/2 owns none of the 1 value columns" in done.stderr
    assert "0 points written" in done.stderr
