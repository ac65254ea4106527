"""Fixtures that start real processes: one influxd per test run, on a free port in a temp dir."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import influxdb_local as il  # scripts/: on the path by pyproject.toml (pytest's pythonpath)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# The real-cluster test builds and starts a Kubernetes: only `make e2e` (GRIDTS_E2E=1) runs it.
collect_ignore = [] if os.environ.get("GRIDTS_E2E") else ["e2e"]

# A live influxd owned by the test run; tests may stop, kill and restart it (fault tests).
InfluxServer = il.Server


@pytest.fixture(scope="session")
def influxd_binary() -> Path:
    return il.ensure_binary()


@pytest.fixture(scope="session")
def influx(
    influxd_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfluxServer]:
    """The run's influxd. Tests that need a clean slate use their own bucket (see `bucket`)."""
    base = tmp_path_factory.mktemp("influxd")
    server = InfluxServer(influxd_binary, base / "data", base / "influxd.log")
    server.start()
    sys.stderr.write(f"\nlive {il.binary_version(influxd_binary)} at {server.url}\n")
    yield server
    server.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    found = il.find_binary()
    if found is None:
        return ["influxd: not built yet (the session fixture builds it)"]
    return [f"influxd: {il.binary_version(found)} ({found})"]


@pytest.fixture
def bucket(influx: InfluxServer) -> Iterator[str]:
    """A fresh, empty bucket for one test, dropped afterwards."""
    from influxdb_client import InfluxDBClient

    name = f"test_{secrets.token_hex(6)}"
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        api = client.buckets_api()
        created = api.create_bucket(bucket_name=name, org=influx.org)
        yield name
        if influx.proc is not None:
            api.delete_bucket(created)


@pytest.fixture
def influx_env(influx: InfluxServer, bucket: str) -> dict[str, str]:
    """INFLUX_* variables pointing at the test's own bucket."""
    return {**influx.env(), "INFLUX_BUCKET": bucket}
