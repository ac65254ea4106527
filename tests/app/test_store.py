"""The store's load shedding (app.store.Store.admit): expensive queries beyond their slots."""

from __future__ import annotations

from tests.app.conftest import AppClient, make_settings
from tests.conftest import InfluxServer


async def test_expensive_queries_beyond_their_slots_get_429_with_retry_after(
    influx: InfluxServer, api_bucket: str
) -> None:
    """One slot, no waiting: while a median holds the slot, a second one is shed with 429."""
    settings = make_settings(influx, api_bucket, api_heavy_queries=1, api_heavy_wait_seconds=0)
    holder = AppClient(settings)
    async with holder as client:
        store = holder.app.state.store
        params = {"start": "2019-05-01T00:00:00Z", "end": "2019-05-08T00:00:00Z"}
        async with store.admit(True):  # the slot is taken, as by a long-running median
            busy = await client.get(
                "/v1/series/active_losses/data", params={**params, "agg": "median"}
            )
            light = await client.get("/v1/series/active_losses/data", params=params)
        assert busy.status_code == 429
        assert busy.headers["Retry-After"] == "5"
        assert busy.json()["error"] == "busy"
        assert light.status_code == 200  # pushed-down aggregates never wait for the slot
        after = await client.get(
            "/v1/series/active_losses/data", params={**params, "agg": "median"}
        )
        assert after.status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "gridts_api_heavy_refused_total 1.0" in metrics
