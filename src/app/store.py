"""Runs query plans and the catalog on InfluxDB: the API's only I/O towards the database.

Transport failures become the upstream branch of `errors`: refused or reset connections and 5xx
answers are `InfluxUnavailable` (503), a query over its time budget is `QueryTimeout` (504), other
refusals (bad token, missing bucket, a Flux error) are `InfluxRejected` (502).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import structlog
from influxdb_client.client.flux_table import FluxRecord, TableList
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.dialect import Dialect
from influxdb_client.rest import ApiException
from influxdb_client.service.buckets_service import BucketsService

from app.errors import Busy, InfluxRejected, InfluxUnavailable, QueryTimeout, UnknownSeries
from app.metrics import Metrics
from app.points import (
    Points,
    Value,
    combine_keys,
    compose_windows,
    divide,
    fill_linear,
    fill_windows,
    parse_flux_csv,
    parse_tier_rows,
    stddev_windows,
    strictly_increasing,
)
from app.query import flux
from app.query.plan import (
    Agg,
    Fill,
    QueryPlan,
    TierBucket,
    bucket_seconds,
    format_time,
    local_grain,
    utc_aligned,
)
from gridts.tiers import Tier

log = structlog.get_logger("app.store")
T = TypeVar("T")

_CSV = Dialect(  # type: ignore[no-untyped-call]
    header=True, delimiter=",", annotations=[], date_time_format="RFC3339"
)
# Columns of a Flux row that are not tags.
_NOT_TAGS = {"result", "table", "_time", "_measurement", "_field", "_start", "_stop", "_value"}
# A miss forces a catalog reload at most this often, so unknown names cannot hammer InfluxDB.
MIN_RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class SeriesInfo:
    """A series as the catalog knows it."""

    name: str
    unit: str | None
    tags: dict[str, list[str]]
    first: datetime
    last: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "tags": self.tags,
            "first": format_time(self.first),
            "last": format_time(self.last),
        }


@dataclass
class _Catalog:
    series: dict[str, SeriesInfo] = field(default_factory=dict)
    loaded_at: float = float("-inf")


class Store:
    """The API's view of InfluxDB: the catalog (cached) and the data of query plans."""

    def __init__(
        self,
        client: InfluxDBClientAsync,
        *,
        org: str,
        bucket: str,
        timeout_seconds: float,
        catalog_ttl_seconds: float,
        metrics: Metrics,
        heavy_queries: int = 2,
        heavy_wait_seconds: float = 5.0,
        tiers: tuple[Tier, ...] = (),
    ) -> None:
        self._client = client
        self._query_api = client.query_api()
        self._org = org
        self.bucket = bucket
        self._timeout = timeout_seconds
        self._ttl = catalog_ttl_seconds
        self._metrics = metrics
        self._catalog = _Catalog()
        self._catalog_lock = asyncio.Lock()
        self._steps: dict[str, float | None] = {}
        self._heavy = asyncio.Semaphore(heavy_queries)
        self._heavy_wait = heavy_wait_seconds
        self._configured_tiers = tiers
        # The configured tiers whose buckets the API can read, learned at startup and with
        # every catalog reload (a tier set up later is used from then on).
        self.tiers: tuple[TierBucket, ...] = ()

    @contextlib.asynccontextmanager
    async def admit(self, heavy: bool) -> AsyncIterator[None]:
        """A slot for a query without storage pushdown (a few at once per process, so that
        they cannot starve each other into timeouts); 429 Busy when none frees up in time."""
        if not heavy:
            yield
            return
        try:
            async with asyncio.timeout(self._heavy_wait):
                await self._heavy.acquire()
        except TimeoutError:
            self._metrics.heavy_refused.inc()
            raise Busy(
                "too many expensive queries (median, stddev or tz windows) running; retry "
                "shortly, or use a pushed-down aggregate"
            ) from None
        try:
            yield
        finally:
            self._heavy.release()

    async def ping(self, timeout_seconds: float = 2.0) -> bool:
        """Whether InfluxDB answers its ping within the timeout."""
        try:
            async with asyncio.timeout(timeout_seconds):
                return bool(await self._client.ping())
        except (TimeoutError, aiohttp.ClientError, OSError, ApiException) as exc:
            log.warning("influx_ping_failed", error=type(exc).__name__)
            return False

    async def catalog(self, *, refresh: bool = False) -> dict[str, SeriesInfo]:
        """All series, reloaded when older than the TTL (one reload at a time)."""
        if not refresh and time.monotonic() - self._catalog.loaded_at < self._ttl:
            return self._catalog.series
        async with self._catalog_lock:
            age = time.monotonic() - self._catalog.loaded_at
            fresh_enough = MIN_RELOAD_SECONDS if refresh else self._ttl
            if age < fresh_enough:
                return self._catalog.series
            query = flux.catalog_query(self.bucket)
            tables = await self._run(
                "catalog",
                lambda: self._query_api.query(query.text, org=self._org, params=query.params),
            )
            self._catalog = _Catalog(_catalog_from(tables), time.monotonic())
            log.info("catalog_loaded", series=len(self._catalog.series))
            await self.refresh_tiers()
            return self._catalog.series

    async def refresh_tiers(self) -> tuple[TierBucket, ...]:
        """Which configured tiers have a bucket the API's token can read, and their retention
        (``/api/v2/buckets`` lists exactly the buckets a token may read). A failure keeps what
        was known: tiers only make answers faster, never different."""
        if not self._configured_tiers:
            return self.tiers
        service = BucketsService(self._client.api_client)  # type: ignore[no-untyped-call]

        async def one(tier: Tier) -> TierBucket | None:
            name = tier.bucket(self.bucket)
            try:
                answer = await service.get_buckets_async(  # type: ignore[no-untyped-call]
                    org=self._org, name=name
                )
            except ApiException as exc:
                if getattr(exc, "status", None) == 404:
                    return None
                raise
            for found in answer.buckets or []:
                if found.name == name:
                    rules = found.retention_rules or []
                    every = int(rules[0].every_seconds or 0) if rules else 0
                    return TierBucket(tier, every)
            return None

        try:
            async with asyncio.timeout(self._timeout):
                found = await asyncio.gather(*(one(t) for t in self._configured_tiers))
        except (TimeoutError, aiohttp.ClientError, OSError, ApiException) as exc:
            log.warning("tiers_unknown", error=type(exc).__name__)
            return self.tiers
        tiers = tuple(f for f in found if f is not None)
        if tiers != self.tiers:
            log.info(
                "tiers_found",
                tiers=[f"{t.tier.bucket(self.bucket)} ({t.retention_seconds}s)" for t in tiers],
            )
        self.tiers = tiers
        return tiers

    async def series(self, name: str) -> SeriesInfo:
        """One series' metadata; a miss reloads the catalog once before it is a 404."""
        found = (await self.catalog()).get(name)
        if found is None:
            found = (await self.catalog(refresh=True)).get(name)
        if found is None:
            raise UnknownSeries(name)
        return found

    async def step_seconds(self, info: SeriesInfo) -> float | None:
        """The series' spacing, from its first two points (cached for the process); None when it
        has fewer than two in its first 60 days."""
        if info.name in self._steps:
            return self._steps[info.name]
        step: float | None = None
        for span in (timedelta(hours=1), timedelta(days=60)):
            query = flux.step_query(self.bucket, info.name, info.first, info.first + span)
            text = await self._run(
                "step",
                lambda q=query: self._query_api.query_raw(  # type: ignore[misc]
                    q.text, org=self._org, dialect=_CSV, params=q.params
                ),
            )
            times = [line.split(",")[-1] for line in str(text).splitlines()[1:] if line]
            if len(times) >= 2:
                a, b = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times[:2])
                step = (b - a).total_seconds() or None
                break
        self._steps[info.name] = step
        return step

    async def flux_csv(self, plan: QueryPlan, series: str, *, merge_keys: bool = False) -> str:
        """InfluxDB's annotation-free CSV answer to the plan's query for one series."""
        query = flux.series_query(plan, series, merge_keys=merge_keys)
        text = await self._run(
            "data",
            lambda: self._query_api.query_raw(
                query.text, org=self._org, dialect=_CSV, params=query.params
            ),
        )
        return str(text)

    async def _bucket_csv(self, plan: QueryPlan, series: str, seconds: int, fn: str) -> Points:
        query = flux.bucket_query(plan, series, seconds, fn)
        text = await self._run(
            "data",
            lambda: self._query_api.query_raw(
                query.text, org=self._org, dialect=_CSV, params=query.params
            ),
        )
        return parse_flux_csv(str(text), integer=fn == "count")

    async def _composed(self, plan: QueryPlan, series: str, seconds: int) -> Points | None:
        """Local windows (``tz``) from UTC buckets the engine aggregates; None when the series
        has several tag sets (the general path merges them)."""
        starts = plan.window_starts()
        labels = [format_time(s) for s in starts]
        agg = plan.agg.value
        if plan.agg is Agg.MEAN:
            sums, counts = await asyncio.gather(
                self._bucket_csv(plan, series, seconds, "sum"),
                self._bucket_csv(plan, series, seconds, "count"),
            )
            if _several_keys(sums) or _several_keys(counts):
                return None
            by_time = dict(zip(counts.times, counts.values, strict=True))
            per_bucket = [by_time.get(t) for t in sums.times]
            points = compose_windows(starts, labels, sums.times, sums.values, agg, per_bucket)
        else:
            parts = await self._bucket_csv(plan, series, seconds, agg)
            if _several_keys(parts):
                return None
            points = compose_windows(starts, labels, parts.times, parts.values, agg)
        return fill_windows(points, labels, plan.fill.value, agg)

    async def _tier_csv(
        self, plan: QueryPlan, series: str, stat: str, seconds: int, offset: int
    ) -> Points:
        query = flux.tier_query(plan, series, stat, seconds, offset)
        text = await self._run(
            "tier",
            lambda: self._query_api.query_raw(
                query.text, org=self._org, dialect=_CSV, params=query.params
            ),
        )
        return parse_flux_csv(str(text), integer=stat == "count")

    async def _tier_stat(
        self, plan: QueryPlan, series: str, seconds: int, offset: int
    ) -> Points | None:
        """The plan's aggregate per UTC window of ``seconds`` from the tier, aggregated in the
        storage engine, tag sets combined; None when they cannot be (``combine_keys``)."""
        agg = plan.agg.value
        if plan.agg is Agg.MEAN:
            sums, counts = await asyncio.gather(
                self._tier_csv(plan, series, "sum", seconds, offset),
                self._tier_csv(plan, series, "count", seconds, offset),
            )
            s, c = combine_keys(sums, "sum"), combine_keys(counts, "count")
            return None if s is None or c is None else divide(s, c)
        return combine_keys(await self._tier_csv(plan, series, agg, seconds, offset), agg)

    async def _tier_points(self, plan: QueryPlan, series: str) -> Points | None:
        """The plan's windows from its tier (``plan.tier``): UTC windows aggregated by the
        storage engine from the tier's fields; local windows composed from UTC buckets of
        ``local_grain`` made the same way; ``stddev`` merged here from the tier's count, sum
        and m2. None when only the raw points can answer exactly (``first``/``last`` of tag
        sets sharing a window)."""
        window = plan.window
        if window is None or plan.tier is None:
            return None
        agg = plan.agg.value
        labels: list[str] | None = None
        if plan.agg is Agg.STDDEV:
            query = flux.tier_rows_query(plan, series)
            text = await self._run(
                "tier",
                lambda: self._query_api.query_raw(
                    query.text, org=self._org, dialect=_CSV, params=query.params
                ),
            )
            starts = plan.window_starts()
            labels = [format_time(s) for s in starts]
            points: Points | None = stddev_windows(parse_tier_rows(str(text)), starts, labels)
        elif utc_aligned(plan):
            points = await self._tier_stat(plan, series, window.seconds, window.offset_seconds)
            if points is None:
                return None
            first_start = plan.first_window_start()
            # As on the raw path: the window `start` cuts is labelled with its aligned start.
            cut = first_start is not None and first_start != plan.start
            if cut and points.times and points.times[0] == format_time(plan.start):
                points.times[0] = format_time(first_start)  # type: ignore[arg-type]
        else:
            grain = local_grain(plan)
            if grain is None:
                return None
            counts_list: list[Value] | None = None
            if plan.agg is Agg.MEAN:  # a mean composes from the buckets' sums and counts
                sums, counts = await asyncio.gather(
                    self._tier_csv(plan, series, "sum", grain, 0),
                    self._tier_csv(plan, series, "count", grain, 0),
                )
                parts_or_none, c = combine_keys(sums, "sum"), combine_keys(counts, "count")
                if parts_or_none is None or c is None:
                    return None
                by_time = dict(zip(c.times, c.values, strict=True))
                counts_list = [by_time.get(t) for t in parts_or_none.times]
            else:
                parts_or_none = await self._tier_stat(plan, series, grain, 0)
            if parts_or_none is None:
                return None
            parts = parts_or_none
            starts = plan.window_starts()
            labels = [format_time(s) for s in starts]
            points = compose_windows(starts, labels, parts.times, parts.values, agg, counts_list)
        if points is None:
            return None
        if plan.fill is not Fill.NONE:
            if labels is None:
                labels = [format_time(s) for s in plan.window_starts()]
            points = fill_windows(points, labels, plan.fill.value, agg)
        points.source = plan.source
        return points

    async def points(self, plan: QueryPlan, series: str) -> Points:
        """The plan's points for one series, window labels at window starts; from the plan's
        tier when it has one (and it can answer), else from the raw points."""
        if plan.tier is not None:
            tiered = await self._tier_points(plan, series)
            if tiered is not None:
                self._metrics.source.labels(source=tiered.source).inc()
                self._metrics.points_returned.observe(len(tiered))
                return tiered
            log.info("tier_cannot_answer", series=series, tier=plan.source, agg=plan.agg.value)
            plan = replace(plan, tier=None)
        self._metrics.source.labels(source="raw").inc()
        seconds = bucket_seconds(plan)
        if seconds is not None:
            composed = await self._composed(plan, series, seconds)
            if composed is not None:
                self._metrics.points_returned.observe(len(composed))
                return composed
        counts = plan.agg is Agg.COUNT and plan.window is not None
        points = parse_flux_csv(await self.flux_csv(plan, series), integer=counts)
        if points.tables > 1 or not strictly_increasing(points.times):
            # Several tag sets under one name: ask again with the tables merged.
            log.info("series_has_several_keys", series=series, tables=points.tables)
            merged = await self.flux_csv(plan, series, merge_keys=True)
            points = parse_flux_csv(merged, integer=counts)
        first_start = plan.first_window_start()
        # Flux labels the window that `start` cuts with `start` itself; the API labels every
        # window with its aligned start, so that labels line up across requests.
        if (
            points.times
            and first_start is not None
            and first_start != plan.start
            and points.times[0] == format_time(plan.start)
        ):
            points.times[0] = format_time(first_start)
        if not points.times and plan.window is not None and plan.fill is not Fill.NONE:
            # With no row in the range Flux has no table to fill; the windows are still there.
            empty: float | int | None = 0 if counts else None
            starts = plan.window_starts()
            points = Points([format_time(t) for t in starts], [empty] * len(starts))
        if plan.fill is Fill.LINEAR and plan.window is not None:
            points = fill_linear(points)
        self._metrics.points_returned.observe(len(points))
        return points

    async def _run(self, kind: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            async with asyncio.timeout(self._timeout):
                return await call()
        except TimeoutError:
            outcome = "timeout"
            raise QueryTimeout(
                f"the query took longer than {self._timeout:g}s; narrow the range or coarsen "
                "the resolution"
            ) from None
        except (aiohttp.ClientConnectionError, ConnectionError) as exc:
            outcome = "unavailable"
            log.warning("influx_unreachable", query=kind, error=type(exc).__name__)
            raise InfluxUnavailable("InfluxDB is not reachable; retry later") from None
        except ApiException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            log.warning("influx_error", query=kind, status=status)
            if status >= 500 or status == 0:
                outcome = "unavailable"
                raise InfluxUnavailable("InfluxDB failed to answer; retry later") from None
            outcome = "rejected"
            raise InfluxRejected(f"InfluxDB refused the query (HTTP {status})") from None
        finally:
            self._metrics.flux_seconds.labels(query=kind, outcome=outcome).observe(
                time.perf_counter() - started
            )


def _several_keys(points: Points) -> bool:
    """Whether rows come from several tag sets: several tables, or (`keep()` merges their
    tables) labels that repeat or go back."""
    return points.tables > 1 or not strictly_increasing(points.times)


def _catalog_from(tables: TableList) -> dict[str, SeriesInfo]:
    firsts: dict[str, datetime] = {}
    lasts: dict[str, datetime] = {}
    units: dict[str, set[str]] = {}
    tags: dict[str, dict[str, set[str]]] = {}
    for table in tables:
        for record in table.records:
            name, when, result = _record(record)
            if result == "first":
                firsts[name] = min(when, firsts.get(name, when))
            else:
                lasts[name] = max(when, lasts.get(name, when))
            for key, value in record.values.items():
                if key in _NOT_TAGS or value is None:
                    continue
                if key == "unit":
                    units.setdefault(name, set()).add(str(value))
                else:
                    tags.setdefault(name, {}).setdefault(key, set()).add(str(value))
    catalog: dict[str, SeriesInfo] = {}
    for name in sorted(firsts):
        unit_set = sorted(units.get(name, ()))
        catalog[name] = SeriesInfo(
            name=name,
            unit=unit_set[0] if unit_set else None,
            tags={k: sorted(v) for k, v in sorted(tags.get(name, {}).items())},
            first=firsts[name],
            last=lasts.get(name, firsts[name]),
        )
    return catalog


def _record(record: FluxRecord) -> tuple[str, datetime, str]:
    return (
        str(record.values["_measurement"]),
        record.values["_time"],
        str(record.values.get("result")),
    )
