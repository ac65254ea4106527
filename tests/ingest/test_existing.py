"""``--existing``: points already stored at a load's instants are counted, compared exactly and,
on request, refused (issue 11, item 8). Every test runs the CLI (or the pipeline) against the live
influxd of the test run, in a bucket of its own."""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from ingest.existing import Existing, SeriesKey
from ingest.pipeline import Options, RejectLog, run_source
from ingest.sources import open_source
from ingest.writer import Target
from tests.conftest import InfluxServer
from tests.ingest.test_load import count, ingest, points

START = datetime(2021, 5, 1, 0, 1)  # local (Europe/Zurich): 2021-04-30T22:01:00Z
START_UTC = datetime(2021, 4, 30, 22, 1, tzinfo=UTC)


def series_file(
    path: Path,
    values: list[str],
    *,
    first: int = 0,
    name: str = "load",
    unit: str = "MW",
) -> Path:
    """Minute values in local time, ``values[i]`` at minute ``first + i`` after ``START``."""
    rows = [
        f"{START + timedelta(minutes=first + i):%Y-%m-%d %H:%M:%S},{v}"
        for i, v in enumerate(values)
    ]
    path.write_text(f"time,{name} [{unit}]\n" + "\n".join(rows) + "\n")
    return path


def instant(minute: int) -> str:
    return f"{START_UTC + timedelta(minutes=minute):%Y-%m-%dT%H:%M:%SZ}"


def load(
    env: dict[str, str], path: Path | str, *args: str | Path, report: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = report or Path(str(path) + f".{secrets.token_hex(3)}.json")
    proc = ingest("load", path, *args, "--report", report, env=env)
    return proc, json.loads(report.read_text()) if report.exists() else {}


def values(env: dict[str, str], series: str = "load") -> list[float]:
    return points(env, series)["value"].tolist()


def stored(env: dict[str, str], series: str = "load") -> pd.DataFrame:
    return points(env, series).sort_values("time").reset_index(drop=True)


def decimals(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.uniform(-5000, 5000):.{rng.randint(0, 6)}f}" for _ in range(n)]


def test_same_file_twice_every_point_existed_none_changed(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    path = series_file(tmp_path / "a.csv", decimals(500))
    proc, rep = load(influx_env, path)
    assert proc.returncode == 0, proc.stderr
    assert (rep["existing_check"], rep["points_existing"], rep["points_changed"]) == (
        "report",
        0,
        0,
    )
    assert "0 were stored already, 0 changed value" in proc.stderr

    proc, rep = load(influx_env, path)
    assert proc.returncode == 0, proc.stderr
    assert rep["points_written"] == 500
    assert (rep["points_existing"], rep["points_changed"], rep["changes"]) == (500, 0, [])
    assert rep["series"][0]["existing"] == 500
    assert rep["series"][0]["changed"] == 0
    assert "500 were stored already, 0 changed value" in proc.stderr
    assert "warning" not in proc.stderr
    assert count(influx_env, "load") == 500


def test_corrected_file_counts_exactly_the_changed_values_and_stores_them(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    original = [*decimals(400), "0.1", "100", "-0", "5e-324", "1.7976931348623157e308", "2.5"]
    assert load(influx_env, series_file(tmp_path / "a.csv", original))[0].returncode == 0
    corrected = list(original)
    changed_at = sorted(random.Random(7).sample(range(400), 6))
    for i in changed_at:
        corrected[i] = f"{float(original[i]) + 0.001:.6f}"
    # the same stored float written differently is no change ...
    corrected[400:404] = ["0.10", "1e2", "-0.0", "4.9406564584124654e-324"]
    corrected[404] = "1.7976931348623157e+308"
    # ... a different one is, even -0 against 0
    corrected[402] = "0"
    proc, rep = load(influx_env, series_file(tmp_path / "b.csv", corrected))
    assert proc.returncode == 0, proc.stderr
    assert rep["points_existing"] == 406
    assert rep["points_changed"] == 7
    first = rep["changes"][0]
    assert first["time"] == instant(changed_at[0])
    assert first["line"] == changed_at[0] + 2
    assert first["stored"] == float(original[changed_at[0]])
    assert first["new"] == float(corrected[changed_at[0]])
    assert "warning: 7 of the 406 points already stored were replaced" in proc.stderr
    assert instant(changed_at[0]) in proc.stderr
    got = stored(influx_env)["value"].to_numpy()
    want = np.array([float(v) for v in corrected])
    assert (got.view(np.int64) == want.view(np.int64)).all()  # -0 stored as -0, 0 as 0


def test_refuse_with_a_change_exits_2_and_writes_nothing(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    original = decimals(300)
    assert load(influx_env, series_file(tmp_path / "a.csv", original))[0].returncode == 0
    before = stored(influx_env)
    corrected = [*original, *decimals(50, seed=2)]  # 50 new points after the stored ones ...
    for i in (17, 18, 250):  # ... and three changed values
        corrected[i] = "12345.5"
    proc, rep = load(influx_env, series_file(tmp_path / "b.csv", corrected), "--existing", "refuse")
    assert proc.returncode == 2, proc.stderr
    assert "3 of the 300 points already stored would change value" in proc.stderr
    assert "nothing written" in proc.stderr
    assert f"load,unit=MW at {instant(17)}" in proc.stderr
    assert f"b.csv line {17 + 2}" in proc.stderr
    assert (rep["points_written"], rep["points_existing"], rep["points_changed"]) == (0, 300, 3)
    assert rep["exit_status"] == 2
    pd.testing.assert_frame_equal(stored(influx_env), before)  # not even the new points

    # the same file again, on purpose: the default mode replaces the values and says so
    proc, rep = load(influx_env, tmp_path / "b.csv")
    assert proc.returncode == 0, proc.stderr
    assert (rep["points_existing"], rep["points_changed"]) == (300, 3)
    assert values(influx_env) == [float(v) for v in corrected]


def test_refuse_with_identical_values_writes_the_new_points(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    original = decimals(300)
    assert load(influx_env, series_file(tmp_path / "a.csv", original))[0].returncode == 0
    longer = [*original, *decimals(100, seed=3)]
    longer[5] = original[5] + "000" if "." in original[5] else original[5] + ".000"
    proc, rep = load(influx_env, series_file(tmp_path / "b.csv", longer), "--existing", "refuse")
    assert proc.returncode == 0, proc.stderr
    assert (rep["points_written"], rep["points_existing"], rep["points_changed"]) == (400, 300, 0)
    assert rep["existing_check"] == "refuse"
    assert values(influx_env) == [float(v) for v in longer]


def test_partial_overlap_counts_only_the_shared_instants(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    a = decimals(300, seed=4)  # minutes 0..299
    b = decimals(300, seed=5)  # minutes 200..499: 100 shared
    b[:100] = a[200:]
    for i in (3, 50, 99):
        b[i] = "-1.25"
    b[150] = "-1.25"  # not shared: a new point, no change
    assert load(influx_env, series_file(tmp_path / "a.csv", a))[0].returncode == 0
    proc, rep = load(influx_env, series_file(tmp_path / "b.csv", b, first=200))
    assert proc.returncode == 0, proc.stderr
    assert (rep["points_existing"], rep["points_changed"]) == (100, 3)
    assert [c["time"] for c in rep["changes"]] == [instant(203), instant(250), instant(299)]
    assert values(influx_env) == [float(v) for v in a[:200] + b]


def test_existing_means_same_measurement_tags_and_instant(
    influx: InfluxServer, influx_env: dict[str, str], tmp_path: Path
) -> None:
    path = series_file(tmp_path / "a.csv", decimals(120))
    assert load(influx_env, path, "--tag", "area=north")[0].returncode == 0
    # a point of another series key at the same instants, and one at a fractional second
    t = int(START_UTC.timestamp()) * 10**9
    lp = f"load,area=north,site=x,unit=MW value=1 {t}\n"
    lp += f"load,area=north,unit=MW value=2 {t + 500_000_000}\n"
    httpx.post(
        f"{influx.url}/api/v2/write",
        params={"org": influx.org, "bucket": influx_env["INFLUX_BUCKET"]},
        headers={"Authorization": f"Token {influx.token}"},
        content=lp.encode(),
    ).raise_for_status()
    for extra, existed in [
        ((), 0),  # no area tag: another series key
        (("--tag", "area=south"), 0),
        (("--tag", "area=north", "--tag", "site=x"), 1),  # the point written above
        (("--tag", "area=north"), 120),
    ]:
        proc, rep = load(influx_env, path, *extra)
        assert proc.returncode == 0, proc.stderr
        assert rep["points_existing"] == existed, extra
    other_unit = series_file(tmp_path / "kw.csv", decimals(120), unit="kW")
    proc, rep = load(influx_env, other_unit, "--tag", "area=north")
    assert rep["points_existing"] == 0  # another unit: another series key


def test_tag_keys_that_need_escaping_in_flux(influx_env: dict[str, str], tmp_path: Path) -> None:
    path = series_file(tmp_path / "a.csv", decimals(30))
    tag = 'we"ird ${key}=a "quoted", value'
    for expect in (0, 30):
        proc, rep = load(influx_env, path, "--tag", tag)
        assert proc.returncode == 0, proc.stderr
        assert rep["points_existing"] == expect


def test_a_file_loaded_with_the_wrong_label_shows_up_as_changed_values(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    """Interval data compared at its stored instants: loading an interval-end export without
    --label end stores every value one step late, so each instant already held the next value."""
    path = series_file(tmp_path / "a.csv", [str(i) for i in range(1, 61)])
    proc, rep = load(influx_env, path, "--label", "end")
    assert proc.returncode == 0, proc.stderr
    proc, rep = load(influx_env, path)  # --label instant, the default
    assert (rep["points_existing"], rep["points_changed"]) == (59, 59)
    proc, rep = load(influx_env, path, "--label", "end", "--existing", "refuse")
    assert proc.returncode == 2  # and back: all 60 instants are stored, all but the first differ
    assert (rep["points_existing"], rep["points_changed"]) == (60, 59)


class _Discard:
    def __init__(self) -> None:
        self.points = 0

    def submit(self, body: bytes, lines: int) -> None:
        self.points += lines


@pytest.mark.parametrize("chunk", [700, 2048, 5000, 1 << 20])
def test_chunks_and_dst_hold_back_compare_each_point_once(
    influx_env: dict[str, str], tmp_path: Path, chunk: int
) -> None:
    """Autumn DST at 1 min, interval-end labels: rows of the repeated hour wait for the next
    chunk when a chunk ends among them (700-byte chunks, about 25 rows, always split the 120
    rows of that zone); they are compared when they are written, each once."""
    path = tmp_path / "dst.csv"
    gen = ingest("generate", "--start", "2021-10-28", "--end", "2021-11-01", "--step", "1m",
                 "--kind", "measured", "--out", path, "--quiet")  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    assert ingest("load", path, "--label", "end", "--quiet", env=influx_env).returncode == 0
    lines = path.read_text().splitlines()
    rows = len(lines) - 1
    # rows of the repeated hour (31.10. 02:00-03:00 local, 00:00-02:00 UTC), past the first
    # 64 KiB (read whole for the dialect): 00:05 and 01:05 UTC
    for n in (1 + 3 * 1440 + 125, 1 + 3 * 1440 + 185):
        stamp, value = lines[n].split(";")
        lines[n] = f"{stamp};{value}9"
    changed = tmp_path / "dst2.csv"
    changed.write_text("\n".join(lines) + "\n")
    target = Target(**{k.removeprefix("INFLUX_").lower(): v for k, v in influx_env.items()})
    existing = Existing(target, strict=True)
    sink = _Discard()
    try:
        result = run_source(
            open_source(str(changed), chunk=chunk),
            Options(label="end"),
            sink,
            RejectLog(None),
            existing=existing,
        )
    finally:
        existing.close()
    assert (result.rows_read, result.rows_rejected, sink.points) == (rows, 0, rows)
    assert (existing.existing, existing.changed) == (rows, 2)
    assert existing.queries >= 3  # first, last, then the chunks that hold stored instants
    key = SeriesKey.of("f_ist", {"unit": "Hz"})
    assert existing.tallies[key].changed == 2
    assert [c.time for c in existing.changes] == [
        int(datetime(2021, 10, 31, h, 5, tzinfo=UTC).timestamp()) for h in (0, 1)
    ]


@pytest.fixture
def write_only_token(influx: InfluxServer, influx_env: dict[str, str]) -> Iterator[str]:
    headers = {"Authorization": f"Token {influx.token}"}
    with httpx.Client(base_url=influx.url, headers=headers) as c:
        org = c.get("/api/v2/orgs", params={"org": influx.org}).json()["orgs"][0]["id"]
        bucket = c.get("/api/v2/buckets", params={"name": influx_env["INFLUX_BUCKET"]})
        resource = {"type": "buckets", "id": bucket.json()["buckets"][0]["id"], "orgID": org}
        auth = c.post(
            "/api/v2/authorizations",
            json={"orgID": org, "permissions": [{"action": "write", "resource": resource}]},
        ).json()
        yield auth["token"]
        c.delete(f"/api/v2/authorizations/{auth['id']}")


def test_a_write_only_token_loads_with_a_warning_and_cannot_refuse(
    influx_env: dict[str, str], write_only_token: str, tmp_path: Path
) -> None:
    env = {**influx_env, "INFLUX_TOKEN": write_only_token}
    path = series_file(tmp_path / "a.csv", decimals(60))
    proc, rep = load(env, path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: cannot read bucket" in proc.stderr
    assert "needs read access" in proc.stderr
    assert (rep["existing_check"], rep["points_existing"], rep["points_changed"]) == (
        "unreadable",
        None,
        None,
    )
    assert rep["points_written"] == 60
    proc, rep = load(env, path, "--existing", "unchecked")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    assert rep["existing_check"] == "unchecked"
    bigger = series_file(tmp_path / "b.csv", decimals(90))
    proc, rep = load(env, bigger, "--existing", "refuse")
    assert proc.returncode == 1
    assert "cannot compare with the stored points" in proc.stderr
    assert count(influx_env, "load") == 60


def test_two_sources_of_one_run_over_the_same_instants(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    a = series_file(tmp_path / "a.csv", decimals(200, seed=8))
    b_values = decimals(200, seed=8)
    b_values[10] = "7"
    b = series_file(tmp_path / "b.csv", b_values[100:], first=100)
    proc, rep = load(influx_env, a, b, "--existing", "refuse")
    assert proc.returncode == 2
    assert "load them in separate runs" in proc.stderr
    assert count(influx_env, "load") == 0
    # the default compares b with what a has just written: a is drained first
    b_values[150] = "7"
    b = series_file(tmp_path / "b.csv", b_values[100:], first=100)
    proc, rep = load(influx_env, a, b)
    assert proc.returncode == 0, proc.stderr
    assert (rep["points_existing"], rep["points_changed"]) == (100, 1)
    assert rep["changes"][0]["time"] == instant(150)


def test_dry_run_never_reads_the_database(tmp_path: Path) -> None:
    path = series_file(tmp_path / "a.csv", decimals(10))
    env = {"INFLUX_URL": ""}
    proc, rep = load(env, path, "--dry-run", "--output", tmp_path / "a.lp")
    assert proc.returncode == 0, proc.stderr
    assert (rep["existing_check"], rep["points_existing"]) == ("unchecked", None)
    proc = ingest("load", path, "--dry-run", "--existing", "refuse", env=env)
    assert proc.returncode == 2
    assert "--dry-run never reads" in proc.stderr


def test_help_documents_the_modes() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "ingest", "load", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "1000"},  # no wrapping inside a word such as write-only
    ).stdout
    flat = " ".join(text.split())
    for phrase in ("--existing {report,refuse,unchecked}", "exits 2 with nothing written",
                   "token without read access", "series and time range",
                   "To re-send corrected data on purpose", "add --existing refuse"):  # fmt: skip
        assert phrase in flat, phrase


def test_ingest_existing_sets_the_default_and_the_flag_wins(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    original = decimals(40)
    assert load(influx_env, series_file(tmp_path / "a.csv", original))[0].returncode == 0
    changed = series_file(tmp_path / "b.csv", ["1.5", *original[1:]])
    refusing = {**influx_env, "INGEST_EXISTING": "refuse"}
    proc, rep = load(refusing, changed)
    assert proc.returncode == 2, proc.stderr
    assert (rep["existing_check"], rep["points_written"], rep["points_changed"]) == ("refuse", 0, 1)
    proc, rep = load(refusing, changed, "--existing", "report")
    assert proc.returncode == 0, proc.stderr
    assert rep["points_changed"] == 1
    proc = ingest("load", changed, env={**influx_env, "INGEST_EXISTING": "never"})
    assert proc.returncode == 2
    assert "INGEST_EXISTING='never'" in proc.stderr
