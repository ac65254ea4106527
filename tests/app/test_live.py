"""The API as a real uvicorn process: readiness, 503 and 504 when InfluxDB fails, clean logs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import LiveApi, start_live_api, stop_live_api
from tests.conftest import InfluxServer

DAY = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T00:00:00Z"}


@pytest.fixture(scope="module")
def own_influx(
    influxd_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfluxServer]:
    """An influxd of this module alone, to freeze, kill and restart."""
    base = tmp_path_factory.mktemp("fault-influxd")
    server = InfluxServer(influxd_binary, base / "data", base / "influxd.log")
    server.start()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Token {server.token}"}) as c:
        r = c.post(
            "/api/v2/write",
            params={"org": server.org, "bucket": server.bucket, "precision": "s"},
            content="\n".join(
                f"freq,unit=Hz value={50 + i / 100} {1619827200 + 30 * i}" for i in range(2880)
            ),
        )
        r.raise_for_status()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture(scope="module")
def fault_api(
    own_influx: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    log = tmp_path_factory.mktemp("fault-api") / "api.log"
    live = start_live_api(
        {
            **own_influx.env(),
            "API_QUERY_TIMEOUT_SECONDS": "1",
            "API_CATALOG_TTL_SECONDS": "600",
            "API_TOKENS": "bearer-secret-1",
        },
        log,
    )
    yield live
    stop_live_api(live)


AUTH = {"Authorization": "Bearer bearer-secret-1"}


def test_live_server_serves_and_fails_cleanly(own_influx: InfluxServer, fault_api: LiveApi) -> None:
    with httpx.Client(base_url=fault_api.url, timeout=30) as c:
        assert c.get("/readyz").json() == {"status": "ready"}
        catalog = c.get("/v1/series", headers=AUTH)
        assert [s["name"] for s in catalog.json()["series"]] == ["freq"]
        ok = c.get("/v1/series/freq/data", params={**DAY, "resolution": "1h"}, headers=AUTH)
        assert ok.status_code == 200
        assert len(ok.json()["points"]) == 24

        # Frozen: connections open but nothing answers. Queries stop at their budget (504),
        # readiness at its own (503); nothing hangs.
        assert own_influx.proc is not None
        os.kill(own_influx.proc.pid, signal.SIGSTOP)
        try:
            slow = c.get("/v1/series/freq/data", params={**DAY, "resolution": "1m"}, headers=AUTH)
            assert slow.status_code == 504
            assert slow.json() == {
                "error": "query_timeout",
                "message": "the query took longer than 1s; narrow the range or coarsen the "
                "resolution",
            }
            frozen = c.get("/readyz")
            assert frozen.status_code == 503
            assert frozen.headers["retry-after"] == "5"
        finally:
            os.kill(own_influx.proc.pid, signal.SIGCONT)

        # Dead: connections refused: 503 with Retry-After.
        own_influx.kill()
        dead = c.get("/v1/series/freq/data", params={**DAY, "resolution": "15m"}, headers=AUTH)
        assert dead.status_code == 503
        assert dead.headers["retry-after"] == "5"
        assert dead.json() == {
            "error": "influx_unavailable",
            "message": "InfluxDB is not reachable; retry later",
        }
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200

        # Back: the same process recovers without a restart.
        own_influx.start()
        assert c.get("/readyz").status_code == 200
        again = c.get("/v1/series/freq/data", params={**DAY, "resolution": "1h"}, headers=AUTH)
        assert again.json()["points"] == ok.json()["points"]

        # Wrong tokens, for the log check below.
        assert (
            c.get("/v1/series", headers={"Authorization": "Bearer wrong-secret-2"}).status_code
            == 401
        )

    log = fault_api.log_text()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines, "the API logs JSON lines"
    requests = [x for x in lines if x.get("event") == "request"]
    assert {"method", "route", "status", "duration_ms", "timestamp", "level"} <= set(requests[0])
    assert any(x.get("route") == "/v1/series/{name}/data" and x["status"] == 504 for x in requests)
    assert any(x.get("error") == "influx_unavailable" for x in requests)
    for secret in ("bearer-secret-1", "wrong-secret-2", own_influx.token):
        assert secret not in log
    assert "Traceback" not in log


def test_live_api_over_dataset(live_api: LiveApi) -> None:
    """`python -m app` serves the docs and the data of the shared dataset."""
    with httpx.Client(base_url=live_api.url, timeout=30) as c:
        spec = c.get("/openapi.json").json()
        params = spec["paths"]["/v1/series/{name}/data"]["get"]["parameters"]
        assert {p["name"] for p in params} >= {
            "start",
            "end",
            "resolution",
            "agg",
            "fill",
            "tz",
            "max_points",
            "format",
        }
        assert all(p["examples"]["example"]["value"] for p in params)
        r = c.get("/v1/series/enduse/data", params={**DAY, "resolution": "1d"})
        assert r.status_code == 200
        assert r.json()["points"][0]["time"] == "2021-05-01T00:00:00Z"
        assert c.get("/docs").status_code == 200
