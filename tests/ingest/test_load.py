"""`python -m ingest load` (what the Kubernetes Job runs) against a live influxd."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from influxdb_client import InfluxDBClient

from tests.conftest import SHARED_DATA, InfluxServer

ENDUSE = SHARED_DATA / "swissgrid-enduse-2019-15min.tsv"
LOSSES = SHARED_DATA / "swissgrid-active-losses-2019-2021-15min.csv"


def ingest(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", *map(str, args)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def flux(env: dict[str, str], query: str, **params: object) -> list[dict[str, str]]:
    """Rows of a Flux query's CSV answer (annotations dropped)."""
    with InfluxDBClient(
        url=env["INFLUX_URL"], token=env["INFLUX_TOKEN"], org=env["INFLUX_ORG"]
    ) as c:
        raw = c.query_api().query_csv(
            query, params={"bucket": env["INFLUX_BUCKET"], **params}, dialect=None
        )
        rows = [r for r in raw if r]
    header: list[str] = []
    out: list[dict[str, str]] = []
    for r in rows:
        if r[0].startswith("#"):
            continue
        if "_value" in r or "_time" in r:
            header = r
            continue
        out.append(dict(zip(header, r, strict=False)))
    return out


ALL = "from(bucket: bucket) |> range(start: 1970-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z)"


def points(env: dict[str, str], series: str) -> pd.DataFrame:
    rows = flux(
        env,
        ALL + ' |> filter(fn: (r) => r._measurement == m and r._field == "value")'
        ' |> keep(columns: ["_time", "_value"])',
        m=series,
    )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame({"time": [], "value": []})
    return pd.DataFrame(
        {"time": pd.to_datetime(frame["_time"], utc=True), "value": frame["_value"].astype(float)}
    )


def count(env: dict[str, str], series: str) -> int:
    rows = flux(env, ALL + " |> filter(fn: (r) => r._measurement == m) |> count()", m=series)
    return sum(int(r["_value"]) for r in rows)


@pytest.mark.parametrize(
    ("path", "series", "kwargs"),
    [
        (ENDUSE, "enduse", {"sep": "\t", "skiprows": 1}),
        (LOSSES, "losses", {"sep": ",", "skiprows": 2}),
    ],
)
def test_real_swissgrid_file_lands_each_row_at_its_own_15_minute_instant(
    influx_env: dict[str, str], path: Path, series: str, kwargs: dict[str, Any]
) -> None:
    proc = ingest("load", path, "--series", series, "--label", "end", "--step", "15m",
                  "--quiet", env=influx_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    source = pd.read_csv(path, header=None, **kwargs)
    got = points(influx_env, series)
    # Both files are gap-free from 01.01.2019 00:15 local (interval end): the n-th row's
    # interval starts exactly n quarter hours after 2018-12-31 23:00 UTC, DST or not.
    expected_time = pd.date_range("2018-12-31 23:00", periods=len(source), freq="15min", tz="UTC")
    assert len(got) == len(source)
    assert got["time"].is_unique
    assert (got["time"].to_numpy() == expected_time.to_numpy()).all()
    assert got["value"].tolist() == source[1].astype(float).tolist()
    assert got["value"].sum() == pytest.approx(source[1].sum(), rel=1e-9)


def test_generated_frequency_file_spans_both_dst_changes(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "Sollfrequenz.csv"
    gen = ingest("generate", "--start", "2021-03-27", "--end", "2021-11-01", "--step", "30s",
                 "--seed", "7", "--out", path, "--quiet")  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    report = tmp_path / "report.json"
    proc = ingest("load", path, "--label", "end", "--report", report, env=influx_env)
    assert proc.returncode == 0, proc.stderr
    rows = path.read_bytes().count(b"\n") - 1
    summary = json.loads(report.read_text())
    assert summary["rows_read"] == rows
    assert summary["points_written"] == rows
    assert summary["rows_rejected"] == 0
    assert summary["series"] == [
        {
            "name": "f_soll_aktiv",
            "unit": "Hz",
            # 27.03 00:00 CET .. 01.11 00:00 CET, stored at interval starts
            "first": "2021-03-26T23:00:00Z",
            "last": "2021-10-31T22:59:30Z",
            "points": rows,
            "existing": 0,  # a fresh bucket: nothing was stored at these instants
            "changed": 0,
        }
    ]
    # n points, all 30 s apart, first and last as computed: every instant is determined
    assert count(influx_env, "f_soll_aktiv") == rows
    gaps = flux(
        influx_env,
        ALL + ' |> filter(fn: (r) => r._measurement == "f_soll_aktiv")'
        ' |> elapsed(unit: 1s) |> group() |> distinct(column: "elapsed")',
    )
    assert [r["_value"] for r in gaps] == ["30"]
    source = pd.read_csv(path, sep=";", decimal=",", skiprows=1, header=None)
    total = flux(
        influx_env, ALL + ' |> filter(fn: (r) => r._measurement == "f_soll_aktiv") |> sum()'
    )
    assert float(total[0]["_value"]) == pytest.approx(source[1].sum(), rel=1e-9)


def test_bad_rows_fail_the_run_then_pass_with_max_errors(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"Datum Zeit;A:f_soll_aktiv [Hz]\n"
        b"Sa. 01.05.21 00:00:30;50\n"
        b"Sa. 01.05.21 00:01:00;\n"  # line 3: empty value
        b"Sa. 01.05.21 00:01:30;50,01\n"
        b"Sa. 31.02.21 00:02:00;50\n"  # line 5: no 31 February
        b"Sa. 01.05.21 00:02:30;fifty\n"  # line 6
        b"Sa. 01.05.21 00:03:00;49,99;1\n"  # line 7: extra column
        b"Sa. 01.05.21 00:03:30;50\n"
    )
    errors = tmp_path / "errors.csv"
    proc = ingest("load", path, "--errors-file", errors, "--quiet", env=influx_env)
    assert proc.returncode == 2
    assert "4 rows rejected" in proc.stderr
    assert "--max-errors 0" in proc.stderr
    with open(errors, newline="", encoding="utf-8") as fh:
        listed = [(int(r["line"]), r["reason"]) for r in csv.DictReader(fh)]
    assert [line for line, _ in listed] == [3, 5, 6, 7]
    assert "empty value" in listed[0][1]
    assert "impossible date" in listed[1][1]
    assert "not a number" in listed[2][1]
    assert "expected 2 columns" in listed[3][1]
    assert count(influx_env, "f_soll_aktiv") == 0  # nothing written from a failed file

    proc = ingest("load", path, "--max-errors", "4", "--quiet", env=influx_env)
    assert proc.returncode == 0, proc.stderr
    assert points(influx_env, "f_soll_aktiv")["value"].tolist() == [50.0, 50.01, 50.0]


def test_second_run_adds_nothing(influx_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    assert ingest("generate", "--start", "2021-05-01", "--end", "2021-05-03", "--step", "30s",
                  "--out", path, "--quiet").returncode == 0  # fmt: skip
    for _ in range(2):
        proc = ingest("load", path, "--label", "end", "--quiet", env=influx_env)
        assert proc.returncode == 0, proc.stderr
    first = points(influx_env, "f_soll_aktiv")
    assert len(first) == 2 * 2880
    assert first["time"].is_unique


def test_input_problems_exit_2_with_one_line(influx_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("Datum Zeit;A:f_soll_aktiv [Hz]\n")
    cases = {
        str(tmp_path / "missing.csv"): "no such file",
        str(empty): "empty",
        str(header_only): "no data row",
    }
    for path, message in cases.items():
        proc = ingest("load", path, "--quiet", env=influx_env)
        assert proc.returncode == 2, path
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    usage = ingest("load", ENDUSE, "--step", "7 minutes", env=influx_env)
    assert usage.returncode == 2
    assert "invalid duration" in usage.stderr


def test_unreachable_database_exits_1(influx_env: dict[str, str], tmp_path: Path) -> None:
    from influxdb_local import free_port

    env = {**influx_env, "INFLUX_URL": f"http://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    proc = ingest("load", ENDUSE, "--series", "enduse", "--label", "end", "--retries", "2",
                  "--quiet", env=env)  # fmt: skip
    assert proc.returncode == 1
    assert "cannot reach InfluxDB" in proc.stderr
    assert "gave up after 3 attempts" in proc.stderr
    assert time.monotonic() - started < 120  # bounded, not a hang


def test_dry_run_prints_line_protocol_without_a_database(tmp_path: Path) -> None:
    proc = ingest("load", ENDUSE, "--series", "enduse", "--label", "end", "--step", "15m",
                  "--dry-run", "--quiet", env={"INFLUX_URL": ""})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 35040
    # 01.01.2019 00:15 CET marks the end of the quarter hour starting 2018-12-31 23:00 UTC
    assert lines[0] == "enduse,unit=kWh value=1540677.903 1546297200"


def test_influxd_killed_mid_ingest_then_rerun_completes_exactly(
    influxd_binary: Path, tmp_path: Path
) -> None:
    server = InfluxServer(influxd_binary, tmp_path / "data", tmp_path / "influxd.log")
    server.start()
    try:
        env = server.env()
        path = tmp_path / "f.csv"
        assert ingest("generate", "--start", "2021-05-01", "--end", "2021-05-08", "--step", "1s",
                      "--out", path, "--quiet").returncode == 0  # fmt: skip
        rows = 7 * 86400
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingest",
                "load",
                str(path),
                "--label",
                "end",
                "--quiet",
                "--batch-size",
                "2000",
                "--concurrency",
                "1",
                "--retries",
                "2",
            ],
            env={**os.environ, **env},
            stderr=subprocess.PIPE,
            text=True,
        )
        # More points visible than one batch holds: the first batch was acknowledged (one write
        # at a time), so it is in the WAL. A point a query sees need not be yet: InfluxDB puts
        # a batch in its cache before its WAL, and a kill in between loses what was never
        # acknowledged (the suite once killed it there, under load, and found nothing).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count(env, "f_soll_aktiv") <= 2000:
            time.sleep(0.05)
        server.kill()
        _, err = job.communicate(timeout=120)
        assert job.returncode == 1, err
        assert "write failed" in err
        assert "cannot reach InfluxDB" in err

        server.start()
        partial = count(env, "f_soll_aktiv")
        assert 2000 <= partial < rows  # every acknowledged batch kept, not the whole file
        rerun = ingest("load", path, "--label", "end", "--quiet", env=env)
        assert rerun.returncode == 0, rerun.stderr
        assert count(env, "f_soll_aktiv") == rows
        source = pd.read_csv(path, sep=";", decimal=",", skiprows=1, header=None)
        total = flux(env, ALL + ' |> filter(fn: (r) => r._measurement == "f_soll_aktiv") |> sum()')
        assert float(total[0]["_value"]) == pytest.approx(source[1].sum(), rel=1e-9)
    finally:
        server.stop()


def test_long_file_with_interleaved_series_across_autumn_dst(
    influx_env: dict[str, str], tmp_path: Path
) -> None:
    """series,time,value rows, two series interleaved, instant labels through the repeated hour."""
    instants = pd.date_range("2021-10-30 22:00", "2021-10-31 04:00", freq="5min", tz="UTC")
    local = instants.tz_convert("Europe/Zurich").tz_localize(None)
    rows = [
        f"{name},{t:%Y-%m-%d %H:%M:%S},{v}"
        for i, t in enumerate(local)
        for name, v in (("load", i), ("losses", -i / 2))
    ]
    path = tmp_path / "long.csv"
    path.write_text("series,time,value\n" + "\n".join(rows) + "\n")
    proc = ingest("load", path, "--format", "long", "--quiet", env=influx_env)
    assert proc.returncode == 0, proc.stderr
    for name, values in (
        ("load", list(range(len(local)))),
        ("losses", [-i / 2 for i in range(len(local))]),
    ):
        got = points(influx_env, name)
        assert (got["time"].to_numpy() == instants.to_numpy()).all()
        assert got["value"].tolist() == [float(v) for v in values]
