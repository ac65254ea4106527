"""The raw writer (ingest.writer): its backoff, and the ingest against a throttling InfluxDB (a
loopback proxy in front of the real influxd answers some writes with 429 or 503 and Retry-After;
the ingest must back off and complete exactly). Killed mid-write: tests/ingest/test_load.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.writer import retry_delay
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


def test_backoff_doubles_up_to_its_bound() -> None:
    bounds = [retry_delay(n, 0.5, 10.0, None, jitter=False) for n in range(7)]
    assert bounds == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_stays_within_the_bound() -> None:
    for attempt in range(6):
        bound = retry_delay(attempt, 0.5, 10.0, None, jitter=False)
        delays = [retry_delay(attempt, 0.5, 10.0, None) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # full jitter: not stuck at the low end


@pytest.mark.parametrize("jitter", [True, False])
def test_retry_after_is_a_floor_capped_at_a_minute(jitter: bool) -> None:
    assert retry_delay(0, 0.5, 10.0, 7.0, jitter=jitter) == 7.0  # never earlier than asked
    assert retry_delay(0, 0.5, 10.0, 3600.0, jitter=jitter) == 60.0  # a minute at most
    assert retry_delay(6, 0.5, 10.0, 0.0, jitter=False) == 10.0  # the backoff when it is longer
