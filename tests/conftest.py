"""Fixtures that start real processes: one influxd per test run, on a free port in a temp dir."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "scripts"))

import influxdb_local as il  # noqa: E402


class InfluxServer:
    """A live influxd owned by the test run; tests may stop and restart it (fault tests)."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = il.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.org = il.ORG
        self.bucket = il.BUCKET
        self.token = secrets.token_urlsafe(32)
        self.proc: il.subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = il.spawn(self.binary, self.data_dir, self.port, self.log_path)
        il.wait_healthy(self.url, self.proc)
        il.onboard(self.url, self.token, self.org, self.bucket)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            il.stop_process(self.proc.pid)
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crashed pod would die."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def env(self) -> dict[str, str]:
        return {
            "INFLUX_URL": self.url,
            "INFLUX_ORG": self.org,
            "INFLUX_BUCKET": self.bucket,
            "INFLUX_TOKEN": self.token,
        }


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
