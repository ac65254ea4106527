"""The chart's gateway (ADR 0020): the HAProxy configuration the chart renders, checked and run
by the real `haproxy` in front of real API processes over the real influxd."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

import gateway_local  # scripts/: on the path by pyproject.toml (pytest's pythonpath)
import influxdb_local as il
from tests import prometheus_text
from tests.app.conftest import LiveApi, start_live_api, stop_live_api
from tests.conftest import InfluxServer


def check(files: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c` of the chart's configuration as it is, its error pages where it says."""
    gateway_local.write_error_pages(files, tmp_path)
    path = tmp_path / "haproxy.cfg"
    path.write_text(files["haproxy.cfg"].replace(gateway_local.CONFIG_DIR, f"{tmp_path}/"))
    return subprocess.run(
        [gateway_local.binary(), "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "POD_NAMESPACE": "grid"},  # as the chart's pods have it
    )


@pytest.mark.parametrize(
    ("values", "maxconn", "queue"),
    [
        ({}, "maxconn 2", "timeout queue 30000ms"),  # 4 turns over 2 gateways
        ({"gateway.replicas": 1}, "maxconn 4", "timeout queue 30000ms"),
        ({"gateway.replicas": 3}, "maxconn 1", "timeout queue 30000ms"),  # at least one
        ({"gateway.replicas": 8, "api.settings.concurrentRequests": 3}, "maxconn 1", None),
        ({"api.settings.concurrentRequests": 0}, None, None),  # no limit: no maxconn
        ({"gateway.queueSeconds": 0.25}, "maxconn 2", "timeout queue 250ms"),
        ({"api.settings.queryTimeoutSeconds": 12.5}, "maxconn 2", "timeout queue 12500ms"),
        ({"api.autoscaling.enabled": False, "api.replicas": 5}, "maxconn 2", None),
    ],
)
def test_the_charts_configuration_is_valid_and_shares_each_pods_turns(
    values: dict[str, Any], maxconn: str | None, queue: str | None, tmp_path: Path
) -> None:
    files = gateway_local.chart_files(values)
    done = check(files, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    template = next(line for line in files["haproxy.cfg"].splitlines() if "server-template" in line)
    assert ("maxconn" in template) is (maxconn is not None), template
    if maxconn is not None:
        assert template.endswith(maxconn), template
    if queue is not None:
        assert queue in files["haproxy.cfg"]
    # slots for the most API pods there may be, and a rollout's surge
    most = 5 if "api.replicas" in values else 6  # the HPA's maxReplicas by default
    assert f'server-template pod {most + 2} "gw-gridts-api-pods.${{POD_NAMESPACE}}.svc.' in template


ERRORS = {
    500: "internal",
    502: "api_failed",
    503: "api_unavailable",
    504: "api_timeout",
}


def test_every_answer_of_the_gateways_own_is_the_apis_error_shape() -> None:
    """Each status HAProxy answers itself (not an API pod) has a page in the API's JSON error
    shape (docs/api.md), and the configuration uses each one: not HAProxy's HTML page."""
    files = gateway_local.chart_files()
    pages = gateway_local.error_pages(files)
    assert sorted(pages) == sorted(ERRORS)
    for status, page in pages.items():
        head, _, body = page.partition("\n\n")
        lines = head.splitlines()
        assert lines[0] == f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"
        assert "Content-Type: application/json" in lines
        assert f"Content-Length: {len(body.encode())}" in lines
        assert ("Retry-After: 5" in lines) is (status == 503)
        error = json.loads(body)
        assert error["error"] == ERRORS[status]
        assert error["message"]
        assert (
            f"errorfile {status} {gateway_local.CONFIG_DIR}error-{status}.http"
            in files["haproxy.cfg"]
        )
    timeout = json.loads(pages[504].partition("\n\n")[2])["message"]
    assert timeout.endswith("within 60 s")  # the gateway's wait: the query timeout and 30 s


@pytest.fixture
def replicas(influx: InfluxServer, api_bucket: str, tmp_path: Path) -> Iterator[list[LiveApi]]:
    """Two API processes over the dataset, each working on one data request at a time."""
    env = {**influx.env(), "INFLUX_BUCKET": api_bucket, "API_CONCURRENT_REQUESTS": "1"}
    started = [start_live_api(env, tmp_path / f"api{i}.log") for i in range(2)]
    yield started
    for live in started:
        if live.proc.poll() is None:
            stop_live_api(live)


class Gateway:
    def __init__(self, tmp_path: Path, backends: list[int], values: dict[str, Any]) -> None:
        self.port, self.stats = il.free_port(), il.free_port()
        self.work = tmp_path / "gateway"
        self.proc = gateway_local.spawn(
            self.work, self.port, backends, values=values, stats_port=self.stats
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.stats}/healthz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not come up")

    def log(self) -> str:
        """What HAProxy printed (the pod's log in the chart)."""
        return (self.work / "haproxy.log").read_text()

    def logged(self, pattern: str, seconds: float = 10) -> str:
        """The log once `pattern` is in it. HAProxy writes a request's line when its session
        ends, which may be after the client has read the whole answer."""
        deadline = time.monotonic() + seconds
        while not re.search(pattern, log := self.log()):
            assert time.monotonic() < deadline, f"not logged: {pattern}\n{log}"
            time.sleep(0.05)
        return log

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.stats}/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> list[float]:
        return prometheus_text.values(self.metrics(), name, **labels)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def gateway_of(tmp_path: Path) -> Iterator[Any]:
    made: list[Gateway] = []

    def make(backends: list[int], **values: Any) -> Gateway:
        made.append(Gateway(tmp_path, backends, values))
        return made[-1]

    yield make
    for g in made:
        g.stop()


def port_of(live: LiveApi) -> int:
    return int(live.url.rsplit(":", 1)[1])


def test_one_queue_for_every_replica(replicas: list[LiveApi], gateway_of: Any) -> None:
    """12 requests at once through one gateway that sends each replica one at a time (its
    API_CONCURRENT_REQUESTS): every answer is the replica's own, no replica ever had two at
    once or queued one itself, and the rest waited in the gateway."""
    gateway = gateway_of(
        [port_of(r) for r in replicas],
        **{"gateway.replicas": 1, "api.settings.concurrentRequests": 1},
    )
    catalog = httpx.get(f"{replicas[0].url}/v1/series", timeout=10).json()["series"]
    series = next(s for s in catalog if s["name"] == "f_soll_aktiv")  # two days at 30 s
    query = {"start": series["first"], "end": series["last"], "resolution": "raw"}
    path = f"/v1/series/{series['name']}/data"
    direct = httpx.get(replicas[0].url + path, params=query, timeout=30)
    assert direct.status_code == 200
    assert len(direct.json()["points"]) > 1000

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as http:
            return await asyncio.gather(*(http.get(path, params=query) for _ in range(12)))

    # ready: it has replicas to send requests to
    assert httpx.get(f"http://127.0.0.1:{gateway.stats}/readyz", timeout=5).status_code == 200
    answers = asyncio.run(many())
    assert [a.status_code for a in answers] == [200] * 12
    assert all(a.content == direct.content for a in answers)
    # never more than one at once per replica; each answered some; some waited in the queue
    assert gateway.metric("haproxy_server_max_sessions", proxy="api") == [1.0, 1.0]
    served = gateway.metric("haproxy_server_http_responses_total", proxy="api", code="2xx")
    assert sum(served) == 12
    assert all(n > 0 for n in served), served
    assert gateway.metric("haproxy_backend_max_queue", proxy="api")[0] >= 1
    # requests that went well are not logged, one per request would drown the failures
    assert path not in gateway.log()
    # ... and not in a replica: none of their data requests waited for its turn
    for r in replicas:
        text = httpx.get(f"{r.url}/metrics", timeout=5).text
        waited = prometheus_text.values(text, "gridts_api_turn_wait_seconds_bucket", le="0.005")
        total = prometheus_text.values(text, "gridts_api_turn_wait_seconds_count")
        assert len(total) == 1
        assert total[0] > 0  # its data requests took turns
        assert waited == total, (waited, total)


def test_no_replica_is_a_503_in_the_apis_shape(gateway_of: Any) -> None:
    """Nothing listens where the replicas should be: 503 `api_unavailable`, JSON, Retry-After."""
    gateway = gateway_of([il.free_port(), il.free_port()])
    resp = httpx.get(f"{gateway.url}/v1/series", timeout=30)
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["retry-after"] == "5"
    assert resp.json()["error"] == "api_unavailable"
    # the log says why: the replicas refused the checks, and the request found none
    log = gateway.logged(r'api/<NOSRV> \S+ 503 .*"GET /v1/series HTTP/1.1"')
    for server in ("pod0", "pod1"):
        assert f"Server api/{server} is DOWN" in log, log
    # alive, but not ready: `helm install --wait` and a rollout wait for a replica
    stats = f"http://127.0.0.1:{gateway.stats}"
    assert httpx.get(f"{stats}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{stats}/readyz", timeout=5).status_code == 503


def test_a_wait_past_the_queue_timeout_is_the_same_503(
    replicas: list[LiveApi], gateway_of: Any
) -> None:
    """One replica, one request at a time, stopped (SIGSTOP) while it holds one: the next
    request waits the queue timeout (0.5 s) in the gateway, then gets the 503 above."""
    live = replicas[0]
    gateway = gateway_of(
        [port_of(live)],
        **{
            "gateway.replicas": 1,
            "api.settings.concurrentRequests": 1,
            "gateway.queueSeconds": 0.5,
        },
    )
    assert httpx.get(f"{gateway.url}/v1/series", timeout=10).status_code == 200
    os.kill(live.proc.pid, signal.SIGSTOP)
    holder = threading.Thread(  # holds the replica's one turn, unanswered while it is stopped
        target=lambda: httpx.get(f"{gateway.url}/v1/series", timeout=30), daemon=True
    )
    try:
        holder.start()
        deadline = time.monotonic() + 10
        while gateway.metric("haproxy_server_current_sessions", proxy="api") != [1.0]:
            assert time.monotonic() < deadline, "the first request never reached the replica"
            time.sleep(0.05)
        began = time.monotonic()
        resp = httpx.get(f"{gateway.url}/v1/series", timeout=30)
        waited = time.monotonic() - began
    finally:
        os.kill(live.proc.pid, signal.SIGCONT)
    holder.join(timeout=30)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "api_unavailable"
    assert waited >= 0.4, waited  # it waited in the queue, not refused at once
    # logged with its termination state: the timeout struck in the queue (sQ)
    gateway.logged(r' 503 .* sQ-- .*"GET /v1/series HTTP/1.1"')


class _Junk(socketserver.BaseRequestHandler):
    """A pod that answers its health check and then sends bytes that are not HTTP."""

    def handle(self) -> None:
        request = self.request.recv(65536)
        if request.startswith(b"GET /healthz "):
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:
            self.request.sendall(b"this is not HTTP\r\n\r\n")


@pytest.fixture
def junk_pod() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Junk)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def gateway_error(resp: httpx.Response) -> str:
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["message"]
    return str(body["error"])


def test_an_answer_that_is_not_http_is_a_502_in_the_apis_shape(
    junk_pod: int, gateway_of: Any
) -> None:
    """A pod's answer that is not HTTP reaches the client as a 502 `api_failed` in the API's
    error shape, not HAProxy's HTML page, and is logged with its termination state."""
    gateway = gateway_of([junk_pod])
    deadline = time.monotonic() + 10
    while gateway.metric("haproxy_backend_active_servers", proxy="api") != [1.0]:
        assert time.monotonic() < deadline, "the pod's health check never passed"
        time.sleep(0.1)
    resp = httpx.get(f"{gateway.url}/v1/series", timeout=30)
    assert resp.status_code == 502, resp.text
    assert gateway_error(resp) == "api_failed"
    gateway.logged(r' 502 .* PH-- .*"GET /v1/series HTTP/1.1"')
