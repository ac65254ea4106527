"""The app factory: routers, error mapping, metrics, and a lifespan that owns the InfluxDB client.

`app` is built at import without reading any configuration; the settings are loaded when the
lifespan starts (or handed in by a test), so importing this module needs no environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from app import responses
from app.influx_http import FluxHttp
from app.logs import configure_logging
from app.metrics import Metrics
from app.middleware import ObserveRequests
from app.routes import data, health, page, series, tiers
from app.settings import Settings, load_settings
from app.store import Store

log = structlog.get_logger("app.main")

DESCRIPTION = """
Electricity-grid time series from InfluxDB at any resolution.

* `GET /v1/series` lists the series; `GET /v1/series/{name}/data` reads one, `GET /v1/data`
  several on the same windows.
* Ranges are half-open, `[start, end)`. Each point's `time` is the **start** of its window.
* Windows follow the clock of `tz` when given (local hours, days, weeks), else UTC.
* Errors are `{"error": kind, "message": reason, ...}` with the matching HTTP status.
"""


# At most this long at startup for the series catalog (the chart's startup probe allows 60 s).
WARMUP_SECONDS = 10.0


def _version() -> str:
    """The installed package's version (pyproject.toml, the chart's appVersion follows it);
    running from a source tree without installing it, "0+unknown"."""
    try:
        return importlib.metadata.version("gridts")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _connect(config: Settings, metrics: Metrics) -> tuple[InfluxDBClientAsync, Store]:
    """The InfluxDB client (catalog, ping, bucket listing) and the store over it."""
    client = InfluxDBClientAsync(
        url=config.influx_url,
        token=config.influx_token.get_secret_value(),
        org=config.influx_org,
        # The store enforces the query budget; the client's own limit is only a backstop.
        timeout=int((config.api_query_timeout_seconds + 5) * 1000),
        # InfluxDB runs next to the API: compressing its answers costs both sides more CPU
        # than the bytes cost on the wire.
        client_session_kwargs={"headers": {"Accept-Encoding": "identity"}},
    )
    store = Store(
        client,
        org=config.influx_org,
        bucket=config.influx_bucket,
        timeout_seconds=config.api_query_timeout_seconds,
        catalog_ttl_seconds=config.api_catalog_ttl_seconds,
        metrics=metrics,
        heavy_queries=config.api_heavy_queries,
        heavy_wait_seconds=config.api_heavy_wait_seconds,
        concurrent_requests=config.api_concurrent_requests,
        influxql_reads=config.api_influxql_reads,
        tiers=config.tiers(),
        http=FluxHttp(config.influx_url, config.influx_token.get_secret_value(), config.influx_org),
        pending_refresh_seconds=config.api_pending_refresh_seconds if config.tiers() else 0.0,
    )
    return client, store


async def refresh_pending(store: Store) -> None:
    """The tiers' pending markers read every ``store.pending_refresh_seconds`` for as long as
    the app runs (``Store.refresh_pending``: failures are logged, the tiers lapse if they
    persist)."""
    while True:
        await store.refresh_pending()
        await asyncio.sleep(store.pending_refresh_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; `settings` defaults to the environment, read when the app starts."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings if settings is not None else load_settings()
        configure_logging(config.log_level)
        client, app.state.store = _connect(config, metrics)
        app.state.settings = config
        # The catalog and the tier buckets read before the server listens: the first requests
        # do not wait for them. Without the catalog, the tier buckets are still asked for once;
        # InfluxDB down leaves none known until the catalog's next reload asks again.
        store = app.state.store
        if not await store.warm(min(WARMUP_SECONDS, config.api_query_timeout_seconds)):
            await store.refresh_tiers()
        log.info(
            "started",
            influx_url=config.influx_url,
            bucket=config.influx_bucket,
            auth=bool(config.bearer_tokens()),
            tiers=config.api_tiers,
        )
        # Everything built so far lives as long as the process: keep the collector off it, so
        # collections while parsing a large result do not rescan the whole heap.
        gc.freeze()
        refresher = (
            asyncio.create_task(refresh_pending(app.state.store))
            if app.state.store.pending_refresh_seconds
            else None
        )
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            await app.state.store.close()
            await client.close()  # type: ignore[no-untyped-call]
            log.info("stopped")

    app = FastAPI(
        title="gridts query API",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    responses.install(app)
    app.include_router(series.router)
    app.include_router(data.router)
    app.include_router(tiers.router)
    app.include_router(health.router)
    app.include_router(page.router)
    page.mount_static(app)
    app.add_middleware(ObserveRequests, metrics=metrics)
    return app


app = create_app()
