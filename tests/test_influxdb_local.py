"""`scripts/influxdb-local`: start (idempotent), env, and a write/query round trip over plain HTTP
with the env file's connection, then stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "influxdb-local"


def call(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def http(method: str, url: str, token: str, body: bytes | None = None, ctype: str = "") -> bytes:
    req = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    req.add_header("Authorization", f"Token {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return bytes(resp.read())


def test_start_env_roundtrip_stop(influxd_binary: Path, tmp_path: Path) -> None:
    from influxdb_local import free_port

    env = {
        "GRIDTS_LOCAL_DIR": str(tmp_path / "local"),
        "INFLUX_PORT": str(free_port()),
        "INFLUXD": str(influxd_binary),
    }
    try:
        first = call("start", env=env)
        assert first.returncode == 0, first.stderr
        again = call("start", env=env)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stderr
        exports = call("env", env=env).stdout.splitlines()
        conn = dict(line.removeprefix("export ").split("=", 1) for line in exports)
        assert sorted(conn) == ["INFLUX_BUCKET", "INFLUX_ORG", "INFLUX_TOKEN", "INFLUX_URL"]

        with urllib.request.urlopen(f"{conn['INFLUX_URL']}/health", timeout=10) as resp:  # noqa: S310
            assert json.load(resp)["status"] == "pass"
        org, bucket, token = conn["INFLUX_ORG"], conn["INFLUX_BUCKET"], conn["INFLUX_TOKEN"]
        http(
            "POST",
            f"{conn['INFLUX_URL']}/api/v2/write?org={org}&bucket={bucket}&precision=s",
            token,
            b"probe,unit=Hz value=49.99 1619820030\n",
        )
        flux = (
            f'from(bucket: "{bucket}") |> range(start: 2021-04-30T00:00:00Z, '
            'stop: 2021-05-02T00:00:00Z) |> filter(fn: (r) => r._measurement == "probe")'
        )
        answer = http(
            "POST",
            f"{conn['INFLUX_URL']}/api/v2/query?org={org}",
            token,
            json.dumps({"query": flux, "type": "flux"}).encode(),
            "application/json",
        ).decode()
        assert "2021-04-30T22:00:30Z,49.99,value,probe,Hz" in answer
    finally:
        stopped = call("stop", env=env)
    assert stopped.returncode == 0
    assert call("status", env=env).returncode == 1
