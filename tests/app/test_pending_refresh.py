"""The API reads the tiers' pending-rollup markers on their own clock (API_PENDING_REFRESH_SECONDS),
not only with the catalog: a load killed between its raw and its tier writes moves the answers
to the raw points within that period, even when the catalog is not reloaded for an hour; and
tiers whose markers cannot be read stop answering (issue 10, ADR 0014 addendum)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from app import store as store_module
from ingest.pending import iso
from ingest.rollup import Influx
from tests.app.conftest import AppClient, make_settings
from tests.app.test_tiers_pending import (
    MIDDLE_POINTS,
    OUTER_S,
    Apis,
    answer,
    files,  # noqa: F401 (a fixture)
    the_marker,
)
from tests.conftest import InfluxServer
from tests.ingest.proxy import Request, Rule, running
from tests.ingest.test_rollup import TIERS
from tests.ingest.test_rollup_faults import (
    SERIES,
    killed_at,
    load,
    tier_write,
    tiered,  # noqa: F401 (a fixture)
)
from tests.prometheus_text import values

QUARTER = 900


@pytest.fixture
def loaded(
    capsys: pytest.CaptureFixture[str],
    influx_env: dict[str, str],
    tiered: Influx,  # noqa: F811
    files: dict[str, Path],  # noqa: F811
) -> Influx:
    """The test's bucket and its tiers with the outer file loaded (tiers rolled up)."""
    code, err = load(capsys, influx_env, files["outer"])
    assert code == 0, err
    return tiered


async def source(api: httpx.AsyncClient, start: int, end: int) -> str:
    params = {"start": iso(start), "end": iso(end), "resolution": "15m"}
    r = await api.get(f"/v1/series/{SERIES}/data", params=params)
    assert r.status_code == 200, r.text
    return r.headers["X-Data-Source"]


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait for ``check`` to hold, polling (no timing is asserted: only that it comes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, "the condition never came"
        await asyncio.sleep(0.05)


async def test_a_killed_loads_marker_reaches_the_api_without_a_catalog_reload(
    influx: InfluxServer,
    influx_env: dict[str, str],
    bucket: str,
    loaded: Influx,
    files: dict[str, Path],  # noqa: F811
) -> None:
    hour = {"api_catalog_ttl_seconds": 3600}
    async with (
        AppClient(make_settings(influx, bucket, **hour, api_pending_refresh_seconds=0.1)) as api,
        AppClient(make_settings(influx, bucket, **hour, api_tiers="")) as raw,
    ):
        apis = Apis(api, raw)
        middle = (MIDDLE_POINTS[0] - MIDDLE_POINTS[0] % QUARTER, MIDDLE_POINTS[1])
        assert await answer(apis, *middle, "15m") == "tier:15m"
        rule = Rule(tier_write(loaded.target.bucket, TIERS[0].text), hold=True)
        with running(influx.url, rule) as proxy:
            killed_at(influx_env, files["middle"], proxy.url, rule)
        assert the_marker(loaded).state == "written"  # raw written, the tiers stale

        async def on_raw() -> bool:
            return await source(api, *middle) == "raw"

        await until(on_raw)
        assert await answer(apis, *middle, "15m") == "raw"  # and the raw API's numbers
        assert await answer(apis, *OUTER_S, "1h") == "raw"


async def test_tiers_whose_markers_cannot_be_read_stop_answering(
    influx: InfluxServer,
    bucket: str,
    loaded: Influx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """InfluxDB refusing the markers query (503, through the fault proxy) while it answers the
    others: after the lapse the raw points answer; once it reads them again, the tiers."""
    monkeypatch.setattr(store_module, "PENDING_LAPSE_SECONDS", 0.5)

    def markers_query(request: Request) -> bool:
        return request.kind == "query" and "gridts:pending" in request.flux

    refuse = Rule(markers_query, status=503)
    with running(influx.url) as proxy:
        settings = make_settings(
            influx, bucket, influx_url=proxy.url, api_pending_refresh_seconds=0.05
        )
        async with AppClient(settings) as api:
            outer = (OUTER_S[0], OUTER_S[1])

            def on(kind: str) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    return await source(api, *outer) == kind

                return check

            assert await source(api, *outer) == "tier:15m"
            assert (await api.get("/v1/tiers")).json()["answering"] is True
            proxy.rules.append(refuse)
            await until(on("raw"))
            assert refuse.refused > 0
            # and the API says why: its tiers are not answering
            assert (await api.get("/v1/tiers")).json()["answering"] is False
            answering = "gridts_api_tiers_answering"
            assert values((await api.get("/metrics")).text, answering) == [0]
            proxy.rules.remove(refuse)
            await until(on("tier:15m"))
            assert (await api.get("/v1/tiers")).json()["answering"] is True
            assert values((await api.get("/metrics")).text, answering) == [1]


async def test_markers_lapsed_while_the_loop_stood_still_are_read_before_answering(
    influx: InfluxServer,
    bucket: str,
    loaded: Influx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process whose event loop did not run for longer than the lapse (suspended, or a test
    between two requests) reads the markers in the first request that needs them, and answers
    from the tier: the lapse is for markers that cannot be read, not for a quiet process."""
    monkeypatch.setattr(store_module, "PENDING_LAPSE_SECONDS", 0.2)
    settings = make_settings(influx, bucket, api_pending_refresh_seconds=0.02)
    async with AppClient(settings) as api:
        assert await source(api, *OUTER_S) == "tier:15m"
        time.sleep(0.5)  # noqa: ASYNC251 - the loop stands still: no background read
        assert await source(api, *OUTER_S) == "tier:15m"
