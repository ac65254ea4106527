"""Fixtures of the backup and restore tests: influxd instances of their own (they are stopped,
wiped and restored, so never the session's shared one), filled by the ingest CLI as an operator
fills them, and what a bucket holds measured per series (count, sum, first, last)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from influxdb_client import InfluxDBClient

from tests.conftest import SHARED_DATA, InfluxServer

ROOT = Path(__file__).resolve().parents[2]
LOSSES = SHARED_DATA / "swissgrid-active-losses-2019-2021-15min.csv"
ENDUSE = SHARED_DATA / "swissgrid-enduse-2019-15min.tsv"


def env_of(server: InfluxServer, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    return {**base, **server.env(), "PYTHONPATH": str(ROOT / "src"), **extra}


def ingest(server: InfluxServer, bucket: str, *args: str) -> None:
    """`python -m ingest load ...` into the bucket."""
    done = subprocess.run(
        [sys.executable, "-m", "ingest", "load", *args, "--quiet"],
        env=env_of(server, INFLUX_BUCKET=bucket),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"ingest failed ({done.returncode}): {done.stderr[-2000:]}"


def generate_day(path: Path, day: str, series: str, seed: int) -> Path:
    """One local day at 1 s in the operator's dialect (86,400 rows)."""
    if not path.exists():
        end = (pd.Timestamp(day) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        subprocess.run(
            [sys.executable, "-m", "ingest", "generate", "--start", day, "--end", end,
             "--step", "1s", "--series", series, "--seed", str(seed), "--kind", "measured",
             "--quiet", "--out", str(path)],
            env=env_of_plain(), check=True, timeout=300,
        )  # fmt: skip
    return path


def env_of_plain(**env: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **env}


def file_totals(path: Path) -> tuple[int, float]:
    frame = pd.read_csv(path, sep=";", decimal=",", skiprows=1, header=None, names=["t", "v"])
    return len(frame), float(frame["v"].sum())


@dataclass(frozen=True)
class Ops:
    code: int
    summary: dict[str, Any]
    stderr: str


def ops(server: InfluxServer | None, *args: str, **env: str) -> Ops:
    """`python -m ops ...` as the CronJob runs it: summary JSON on stdout, progress on stderr."""
    environment = env_of(server, **env) if server is not None else env_of_plain(**env)
    done = subprocess.run(
        [sys.executable, "-m", "ops", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no summary on stdout; stderr: {done.stderr[-2000:]}"
    summary = json.loads(lines[-1])
    assert summary["exitCode"] == done.returncode
    return Ops(done.returncode, summary, done.stderr)


Stats = dict[tuple[str, str], tuple[int, float, str, float, str, float]]


def stats(server: InfluxServer, token: str | None = None) -> Stats:
    """Per bucket and series: count, sum, first time and value, last time and value."""
    counts: dict[tuple[str, str], int] = {}
    sums: dict[tuple[str, str], float] = {}
    edges: dict[str, dict[tuple[str, str], tuple[str, float]]] = {"first": {}, "last": {}}
    with InfluxDBClient(
        url=server.url, token=token or server.token, org=server.org, timeout=120_000
    ) as client:
        buckets = [
            b.name
            for b in client.buckets_api().find_buckets(limit=100).buckets
            if not b.name.startswith("_")
        ]
        for bucket in buckets:
            base = (
                f'from(bucket: "{bucket}") |> range(start: 1970-01-01T00:00:00Z, '
                'stop: 2100-01-01T00:00:00Z) |> group(columns: ["_measurement"])'
            )
            for fn in ("count", "sum", "first", "last"):
                for table in client.query_api().query(f"{base} |> {fn}()"):
                    for record in table.records:
                        key = (bucket, str(record.get_measurement()))
                        value = record.get_value()
                        if fn == "count":
                            counts[key] = int(value)
                        elif fn == "sum":
                            sums[key] = float(value)
                        else:
                            edges[fn][key] = (record.get_time().isoformat(), float(value))
    first, last = edges["first"], edges["last"]
    return {
        key: (count, sums[key], *first[key], *last[key])
        for key, count in counts.items()
        if key in sums and key in first and key in last
    }


def count_of(server: InfluxServer, bucket: str, series: str) -> int:
    flux = (
        f'from(bucket: "{bucket}") |> range(start: 1970-01-01T00:00:00Z) '
        f'|> filter(fn: (r) => r._measurement == "{series}") |> count()'
    )
    with InfluxDBClient(url=server.url, token=server.token, org=server.org) as client:
        tables = client.query_api().query(flux)
    return sum(int(r.get_value()) for t in tables for r in t.records)


MakeServer = Callable[[str], InfluxServer]


@pytest.fixture(scope="module")
def make_server(
    influxd_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeServer]:
    """Starts influxd instances of the module's own (not yet started) and stops them at its end."""
    made: list[InfluxServer] = []

    def make(name: str) -> InfluxServer:
        base = tmp_path_factory.mktemp(f"influxd-{name}")
        server = InfluxServer(influxd_binary, base / "data", base / "influxd.log")
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
