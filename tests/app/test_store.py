"""The store's load shedding: expensive queries beyond their slots (``Store.admit``) and data
requests beyond their turns (``Store.turn``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
import uvicorn

import influxdb_local as il
from app import points
from app.main import create_app
from tests.app.conftest import AppClient, counts_by, flux_queries, make_settings
from tests.conftest import InfluxServer


async def test_expensive_queries_beyond_their_slots_get_429_with_retry_after(
    influx: InfluxServer, api_bucket: str
) -> None:
    """One slot, no waiting: while a median holds the slot, a second one is shed with 429.
    Neither pushed-down aggregates nor a median of windows that are the points themselves (at
    the 15-minute series' own spacing) wait for it."""
    settings = make_settings(influx, api_bucket, api_heavy_queries=1, api_heavy_wait_seconds=0)
    holder = AppClient(settings)
    async with holder as client:
        store = holder.app.state.store
        params = {"start": "2019-05-01T00:00:00Z", "end": "2019-05-08T00:00:00Z"}
        median = {**params, "agg": "median", "resolution": "1h"}
        own = {**params, "agg": "median", "resolution": "15m"}
        url = "/v1/series/active_losses/data"
        await client.get(url, params=params)  # the series' spacing, once
        async with store.admit(True):  # the slot is taken, as by a long-running median
            busy = await client.get(url, params=median)
            light = await client.get(url, params=params)
            points = await client.get(url, params=own)
        assert busy.status_code == 429
        assert busy.headers["Retry-After"] == "5"
        assert busy.json()["error"] == "busy"
        assert light.status_code == 200  # pushed-down aggregates never wait for the slot
        assert points.status_code == 200, points.text
        assert len(points.json()["points"]) == 7 * 96
        after = await client.get(url, params=median)
        assert after.status_code == 200
        assert len(after.json()["points"]) == 7 * 24
        metrics = (await client.get("/metrics")).text
        assert "gridts_api_heavy_refused_total 1.0" in metrics


YEAR_2020 = {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "params",
    [
        {**YEAR_2020, "resolution": "15m"},  # the windows as they come: JSON made meanwhile
        {**YEAR_2020, "resolution": "15m", "agg": "max", "end": "2020-12-31T23:50:00Z"},
        {**YEAR_2020, "resolution": "1h", "start": "2020-01-01T00:07:00Z"},  # first one cut
        {**YEAR_2020, "resolution": "15m", "agg": "count", "format": "csv"},
        {**YEAR_2020, "resolution": "1h", "fill": "null", "format": "ndjson"},
        {**YEAR_2020, "resolution": "1d", "tz": "Europe/Zurich"},
        {**YEAR_2020, "resolution": "raw"},
    ],
)
async def test_answers_read_while_they_arrive_equal_answers_read_whole(
    influx: InfluxServer,
    api_bucket: str,
    params: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    prerendered: list[int],
) -> None:
    """The real InfluxDB's answers read in pieces as they arrive (``points.CsvReader``, pieces
    of 2 kB here) give the bytes they give read whole, for windows the range cuts, counts,
    fills, local days, raw points and every format; the JSON of pieces is made meanwhile
    when the windows are the answer as InfluxDB sends them."""
    bodies = []
    for piece_bytes in (2_000, 10**12):
        monkeypatch.setattr(points, "PIECE_BYTES", piece_bytes)
        async with AppClient(make_settings(influx, api_bucket)) as client:
            r = await client.get("/v1/series/active_losses/data", params=params)
        assert r.status_code == 200, r.text
        bodies.append((r.headers["X-Data-Source"], r.content))
    assert bodies[0] == bodies[1]
    assert len(bodies[0][1]) > 20_000
    windows_as_sent = params["resolution"] == "15m" and params.get("format") is None
    assert (sum(prerendered) == 35_136) is windows_as_sent, params  # 2020 has 366 days


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (the test's own timeout bounds it)."""
    while not condition():  # noqa: ASYNC110 - the store's counter signals nothing to await
        await asyncio.sleep(0.001)


async def test_data_requests_beyond_the_turns_wait_in_the_order_they_came(
    influx: InfluxServer, api_bucket: str
) -> None:
    """One turn: while it is taken, data requests wait (the gauge counts them; the catalog,
    which takes no turn, still answers); once it is free they run one at a time, in the order
    they came, and answer what they answer alone. A turn that stays taken for the query
    timeout is a 429 with Retry-After."""
    settings = make_settings(influx, api_bucket, api_concurrent_requests=1)
    holder = AppClient(settings)
    async with holder as client:
        store = holder.app.state.store
        url = "/v1/series/active_losses/data"
        day = {"start": "2019-05-01T00:00:00Z", "end": "2019-05-02T00:00:00Z"}
        alone = [(await client.get(url, params={**day, "resolution": r})).json()
                 for r in ("1h", "15m")]  # fmt: skip
        done: list[str] = []

        async def get(resolution: str) -> dict[str, object]:
            r = await client.get(url, params={**day, "resolution": resolution})
            assert r.status_code == 200, r.text
            done.append(resolution)
            return dict(r.json())

        async with store.turn():
            first = asyncio.create_task(get("1h"))
            await _until(lambda: store.waiting == 1)
            second = asyncio.create_task(get("15m"))
            await _until(lambda: store.waiting == 2)
            catalog = await client.get("/v1/series")
            assert catalog.status_code == 200
            metrics = (await client.get("/metrics")).text
            assert "gridts_api_turns_waiting 2.0" in metrics
            assert not first.done()
            assert not second.done()
        assert [await first, await second] == alone
        assert done == ["1h", "15m"]
        assert store.waiting == 0
        metrics = (await client.get("/metrics")).text
        assert "gridts_api_turn_wait_seconds_count 5.0" in metrics  # each request, and ours

    short = make_settings(
        influx, api_bucket, api_concurrent_requests=1, api_query_timeout_seconds=0.2
    )
    holder = AppClient(short)
    async with holder as client:
        async with holder.app.state.store.turn():
            busy = await client.get(url, params=day)
        assert busy.status_code == 429
        assert busy.headers["Retry-After"] == "5"
        assert busy.json()["error"] == "busy"
        assert "turns" in busy.json()["message"]
        assert (await client.get(url, params=day)).status_code == 200


async def test_a_request_whose_client_left_while_it_waited_asks_influxdb_nothing(
    influx: InfluxServer, api_bucket: str
) -> None:
    """A real uvicorn and a real socket: with the one turn held, a client sends a data request
    and closes its connection while the request waits. When the turn comes, the API sees that
    the client is gone and asks InfluxDB nothing for it (499 `client_gone` in the metrics);
    the next request is answered as before."""
    app = create_app(make_settings(influx, api_bucket, api_concurrent_requests=1))
    port = il.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    path = "/v1/series/active_losses/data?start=2019-05-01T00:00:00Z&end=2019-05-02T00:00:00Z"
    gone = 'gridts_api_errors_total{kind="client_gone"} 1.0'
    try:
        await _until(lambda: server.started)
        store = app.state.store
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            first = await http.get(path)  # the catalog and the series' spacing, read once
            assert first.status_code == 200, first.text
            before = flux_queries((await http.get("/metrics")).text)
            connections = len(server.server_state.connections)
            async with store.turn():
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
                await writer.drain()
                await _until(lambda: store.waiting == 1)
                writer.close()
                await writer.wait_closed()
                await _until(lambda: len(server.server_state.connections) == connections)
            metrics = (await http.get("/metrics")).text
            while sum(answered(metrics).values()) < 2:  # until its turn came and it ended
                metrics = (await http.get("/metrics")).text
            assert answered(metrics) == {"200": 1, "499": 1}
            assert gone in metrics
            after = flux_queries(metrics)
            asked = {
                k: n - before.get(k, 0) for k, n in after.items() if k not in ("pending", "catalog")
            }
            assert set(asked.values()) == {0}, asked
            again = await http.get(path)
            assert again.json() == first.json()
    finally:
        server.should_exit = True
        await serving


def answered(metrics: str) -> dict[str, float]:
    """The data requests of one series ended so far, by status (the request histogram)."""
    route = 'route="/v1/series/{name}/data"'
    return counts_by(metrics, "gridts_api_request_duration_seconds", "status", route)
