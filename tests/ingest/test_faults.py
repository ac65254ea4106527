"""The ingest against a throttling InfluxDB: a loopback proxy in front of the real influxd answers
some writes with 429 or 503 and Retry-After; the ingest must back off and complete exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import InfluxServer
from tests.ingest.proxy import Rule, running
from tests.ingest.test_load import count


@pytest.fixture(params=[429, 503])
def throttled(request: pytest.FixtureRequest, influx: InfluxServer) -> Iterator[tuple[str, Rule]]:
    """Every third write is refused with the status and Retry-After; the rest is forwarded."""
    rule = Rule(lambda r: r.kind == "write", status=request.param, every=3)
    with running(influx.url, rule) as proxy:
        yield proxy.url, rule


def test_ingest_backs_off_and_completes_through_throttling(
    throttled: tuple[str, Rule], influx_env: dict[str, str], tmp_path: Path
) -> None:
    url, throttle = throttled
    path = tmp_path / "f.csv"
    gen = subprocess.run(
        [sys.executable, "-m", "ingest", "generate", "--start", "2021-05-01", "--end",
         "2021-05-02", "--step", "1s", "--out", str(path), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "load", str(path), "--label", "end", "--quiet",
         "--batch-size", "2000", "--report", str(report)],
        env={**os.environ, **influx_env, "INFLUX_URL": url},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(report.read_text())
    assert throttle.refused >= 10  # 44 batches, every third write refused at least once
    assert summary["write_retries"] == throttle.refused
    assert summary["points_written"] == 86400
    assert count(influx_env, "f_soll_aktiv") == 86400
    # Even with --quiet the log says why the run waited (an operator reads `kubectl logs`).
    assert f"ingest: warning: InfluxDB answered {throttle.status}" in proc.stderr, proc.stderr
    assert "retrying in" in proc.stderr
