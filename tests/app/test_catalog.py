"""The catalog the API keeps of its series: reloaded after its TTL without making requests wait,
and at once for a name it does not know yet."""

from __future__ import annotations

import asyncio
import time

import httpx
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from app.store import MIN_RELOAD_SECONDS, Store
from tests.app.conftest import AppClient, make_settings
from tests.conftest import InfluxServer

DAY = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T00:00:00Z", "resolution": "1h"}


def write(influx: InfluxServer, bucket: str, name: str) -> None:
    """A day of hourly points of ``name``, the value of each its hour."""
    lines = "\n".join(f"{name},unit=MW value={h}.5 {1619827200 + 3600 * h}" for h in range(24))
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        writer = client.write_api(write_options=SYNCHRONOUS)
        writer.write(bucket, influx.org, lines, write_precision="s")


async def names(api: httpx.AsyncClient) -> set[str]:
    r = await api.get("/v1/series")
    assert r.status_code == 200, r.text
    return {s["name"] for s in r.json()["series"]}


async def test_a_series_written_later_answers_its_first_request(
    influx: InfluxServer, bucket: str
) -> None:
    """A catalog with an hour's TTL does not know a series written since its load: a request
    for it reloads the catalog instead of answering 404 until the TTL (once the last load is
    ``MIN_RELOAD_SECONDS`` old: requests for a name that does not exist reload it at most
    that often)."""
    write(influx, bucket, "load_a")
    app = AppClient(make_settings(influx, bucket, api_catalog_ttl_seconds=3600))
    async with app as api:
        assert await names(api) == {"load_a"}
        write(influx, bucket, "load_b")
        store: Store = app.app.state.store
        since = time.monotonic() - store._catalog.loaded_at
        await asyncio.sleep(max(0.0, MIN_RELOAD_SECONDS - since))
        r = await api.get("/v1/series/load_b/data", params=DAY)
        assert r.status_code == 200, r.text
        assert [p["value"] for p in r.json()["points"]] == [h + 0.5 for h in range(24)]
        assert await names(api) == {"load_a", "load_b"}
        missing = await api.get("/v1/series/load_c/data", params=DAY)
        assert missing.status_code == 404
        assert missing.json()["error"] == "unknown_series"


async def test_a_stale_catalog_answers_while_it_reloads(influx: InfluxServer, bucket: str) -> None:
    """Past its TTL the catalog answers as it is, and reloads behind the requests: a request
    does not wait for the reload (here one that cannot finish: its lock is held), and the
    reload, once free, brings a series written meanwhile."""
    write(influx, bucket, "load_a")
    app = AppClient(make_settings(influx, bucket, api_catalog_ttl_seconds=0.05))
    async with app as api:
        store: Store = app.app.state.store
        assert await names(api) == {"load_a"}
        write(influx, bucket, "load_b")
        loaded = store._catalog.loaded_at
        await asyncio.sleep(max(0.0, loaded + 0.1 - time.monotonic()))  # past the TTL
        async with store._catalog_lock:
            # waiting for the reload would wait forever: the timeout is a hang's, not a speed
            r = await asyncio.wait_for(api.get("/v1/series/load_a/data", params=DAY), 60)
            assert r.status_code == 200, r.text
            assert len(r.json()["points"]) == 24
            assert await asyncio.wait_for(names(api), 60) == {"load_a"}
            assert store._reloading is not None
            assert not store._reloading.done()
        await asyncio.wait_for(store._reloading, 60)
        assert store._catalog.loaded_at > loaded
        assert set(store._catalog.series) == {"load_a", "load_b"}


def catalog_queries(metrics: str) -> float:
    """How many catalog queries the app has sent InfluxDB (its own histogram's count)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gridts_api_flux_query_duration_seconds_count{")
        and 'query="catalog"' in line
    )


async def test_the_catalog_is_loaded_before_the_first_request(
    influx: InfluxServer, bucket: str
) -> None:
    """A replica that starts has read its catalog once it listens: the first data request and
    the catalog itself ask InfluxDB for no catalog (a rollout's new replicas would otherwise
    make their first requests wait for it)."""
    write(influx, bucket, "warm_a")
    app = AppClient(make_settings(influx, bucket, api_catalog_ttl_seconds=3600))
    async with app as api:
        assert catalog_queries((await api.get("/metrics")).text) == 1
        r = await api.get("/v1/series/warm_a/data", params=DAY)
        assert r.status_code == 200, r.text
        assert await names(api) == {"warm_a"}
        assert catalog_queries((await api.get("/metrics")).text) == 1


async def test_a_replica_starts_while_influxdb_is_down(influx: InfluxServer, bucket: str) -> None:
    """InfluxDB unreachable at startup: the app starts at once, its catalog's one query
    failed (the first request tries again), and it says it is not ready."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # a port nothing listens on
    down = AppClient(make_settings(influx, bucket, influx_url=f"http://127.0.0.1:{closed}"))
    began = time.monotonic()
    async with down as api:
        assert time.monotonic() - began < 5
        ready = await api.get("/readyz")
        assert ready.status_code == 503
        assert catalog_queries((await api.get("/metrics")).text) == 1  # the one that failed
