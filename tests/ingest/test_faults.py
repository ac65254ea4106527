"""The ingest against a throttling InfluxDB: a loopback proxy in front of the real influxd answers
some writes with 429 or 503 and Retry-After; the ingest must back off and complete exactly."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import InfluxServer
from tests.ingest.test_load import count


class Throttle:
    """Every ``every``-th write is refused with ``status``; everything else is forwarded."""

    def __init__(self, upstream: str, status: int, every: int) -> None:
        self.upstream = urlparse(upstream)
        self.status = status
        self.every = every
        self.writes = 0
        self.refused = 0
        self.lock = threading.Lock()


def make_handler(throttle: Throttle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self, body: bytes | None) -> None:
            conn = http.client.HTTPConnection(
                throttle.upstream.hostname, throttle.upstream.port, timeout=30
            )
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        def do_GET(self) -> None:
            self._forward(None)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/api/v2/write"):
                with throttle.lock:
                    throttle.writes += 1
                    refuse = throttle.writes % throttle.every == 0
                    throttle.refused += refuse
                if refuse:
                    msg = json.dumps({"code": "too many requests", "message": "slow down"})
                    self.send_response(throttle.status)
                    self.send_header("Retry-After", "0.2")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg.encode())
                    return
            self._forward(body)

    return Handler


@pytest.fixture(params=[429, 503])
def throttled(
    request: pytest.FixtureRequest, influx: InfluxServer
) -> Iterator[tuple[str, Throttle]]:
    throttle = Throttle(influx.url, request.param, every=3)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(throttle))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", throttle
    server.shutdown()
    server.server_close()


def test_ingest_backs_off_and_completes_through_throttling(
    throttled: tuple[str, Throttle], influx_env: dict[str, str], tmp_path: Path
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
