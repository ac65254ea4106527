"""Runs query plans and the catalog on InfluxDB: the API's only I/O towards the database.

The store picks the queries and parses what InfluxDB answered (``points``); ``shape`` makes the
plan's windows of those columns (pure, tested without a database).

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
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import structlog
from influxdb_client.client.flux_table import FluxRecord, TableList
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.dialect import Dialect
from influxdb_client.rest import ApiException
from influxdb_client.service.buckets_service import BucketsService

from app import formats, shape
from app.errors import (
    ApiError,
    Busy,
    ClientGone,
    InfluxRejected,
    InfluxUnavailable,
    QueryTimeout,
    UnknownSeries,
)
from app.influx_http import FluxHttp
from app.influxql_csv import Outcome, read_points
from app.metrics import Metrics
from app.points import (
    CsvReader,
    Ints,
    Points,
    TierRows,
    combine_keys,
    parse_count,
    parse_flux_csv,
    parse_sum_count,
    parse_tier_rows,
    split_results,
    tier_arrays,
    tier_rows,
)
from app.query import flux, influxql
from app.query.plan import (
    DAY,
    Agg,
    Fill,
    Format,
    QueryPlan,
    TierBucket,
    Window,
    composed_grain,
    format_time,
    local_grain,
    raw_overflow,
    scan_reason,
    utc_aligned,
    with_tier,
)
from gridts import pending, tiers
from gridts.tiers import Tier

log = structlog.get_logger("app.store")

# The most raw points the API reads to compute medians and standard deviations itself: twice
# the default scan limit (a series denser than its spacing says), at most about 40 MB of CSV
# in the API's memory.
COMPUTE_READ_POINTS = 1_000_000
# Whether windows of a series' own spacing are read as its raw points (``Store.points``); off,
# Flux makes every window (the tests compare the two).
READ_POINTS_AS_WINDOWS = True
# Raw ranges over the point cap are counted from a tier above this many points by the series'
# spacing, in the storage engine below. InfluxDB's CPU per count, 30 days of 1 s data: 7.5 ms
# from the tier (13.5 ms with raw edges) against 31 ms (92 ms while the points are still in
# its write cache); a day of 1 s data: 12 ms with raw edges against 7 ms.
TIER_COUNT_POINTS = 500_000
# Plain reads of at most this many points per tag set are asked in InfluxQL (ADR 0018). InfluxQL
# spares Flux's fixed cost of a query (InfluxDB's CPU for 100 points: 1.5 against 3.7 ms; 2,880
# points: 2.7 against 5.3 ms) but costs InfluxDB more per point: a read takes 0.36 times as long
# at 100 points, 0.84 at 5,000, 1.1 times at 10,000, 1.6 at 30,000 (``bench/influxql.py``).
INFLUXQL_MOST_ROWS = 5_000
# A bucket InfluxQL refused, or answered with nothing where Flux then found points, this many
# times in a row is read in Flux from then on (``Store._influxql_fell_back``).
INFLUXQL_MISSES = 3
T = TypeVar("T")
# What a catalog reload that no request waits for may fail with: logged, tried again later.
_RELOAD_ERRORS = (ApiError, TimeoutError, aiohttp.ClientError, OSError, ApiException)

_CSV = Dialect(  # type: ignore[no-untyped-call]
    header=True, delimiter=",", annotations=[], date_time_format="RFC3339"
)
# Columns of a Flux row that are not tags.
_NOT_TAGS = {"result", "table", "_time", "_measurement", "_field", "_start", "_stop", "_value"}
# A miss forces a catalog reload at most this often, so unknown names cannot hammer InfluxDB.
MIN_RELOAD_SECONDS = 1.0
# Tiers whose pending markers went unread for at least this long answer nothing (Store.tiers).
PENDING_LAPSE_SECONDS = 60.0


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
        http: FluxHttp | None = None,
        pending_refresh_seconds: float = 0.0,
        concurrent_requests: int = 0,
        influxql_reads: bool = False,
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
        self._reloading: asyncio.Task[None] | None = None  # a reload no request waits for
        self._steps: dict[str, float | None] = {}
        # Series and window lengths whose points were read as windows and were not (points off
        # the window starts, denser than the spacing, tag sets at the same instants): Flux
        # makes those windows from then on. At most the divisors of each series' spacing.
        self._not_windows: set[tuple[str, int]] = set()
        self._heavy = asyncio.Semaphore(heavy_queries)
        self._heavy_wait = heavy_wait_seconds
        # Data requests at work at once (0: no limit); the rest wait their turn (``turn``).
        self._concurrent = concurrent_requests
        self._turns = asyncio.Semaphore(concurrent_requests) if concurrent_requests else None
        self.waiting = 0  # data requests waiting for their turn now
        metrics.observe(waiting=lambda: self.waiting, answering=lambda: bool(self.tiers))
        self._configured_tiers = tiers
        # Data queries go straight to /api/v2/query when given (influx_http); else the client.
        self._http = http
        # Plain reads asked in InfluxQL (ADR 0018), but not of buckets InfluxQL did not answer
        # while Flux did (no DBRP mapping, no v1 endpoint), nor of series whose answer could
        # not be read (several tag sets: Flux's several tables; rows of another shape): Flux
        # reads those from then on.
        self._influxql_reads = influxql_reads
        self._not_influxql: set[str] = set()
        self._not_read: set[tuple[str, str]] = set()
        # Per bucket, InfluxQL's misses in a row (``_influxql_missed``): a bucket is left to Flux
        # only after INFLUXQL_MISSES of them, not after one a write in between could explain.
        self._influxql_misses: dict[str, int] = {}
        # The configured tiers whose buckets the API can read, learned at startup and with
        # every catalog reload (a tier set up later is used from then on); their pending
        # markers read with them and every ``pending_refresh_seconds`` (``refresh_pending``).
        self._found: tuple[TierBucket, ...] = ()
        self._pending_every = pending_refresh_seconds
        self._pending_at = float("-inf")  # when the last complete read of the markers began
        self._pending_lock = asyncio.Lock()
        self._pending_tried = float("-inf")  # the last read of lapsed markers a request made

    async def heavy(self, plan: QueryPlan) -> bool:
        """Whether the plan's windows are computed from every stored point (``scan_reason``),
        unless they are the points themselves (``one_point_windows``: a median at a series' own
        spacing is its points)."""
        if scan_reason(plan) is None:
            return False
        return not all([await self.one_point_windows(plan, name) for name in plan.series])

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

    @contextlib.asynccontextmanager
    async def turn(self, gone: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[None]:
        """A data request's turn: at most ``concurrent_requests`` at work in this process, the
        rest waiting in the order they came; 429 Busy after waiting the query timeout, and
        ClientGone when ``gone`` says, once the turn has come, that the client left meanwhile
        (asked only of a request that waited: asking costs Starlette a cancel scope and a
        receive, 0.2 ms, a few per cent of a small request)."""
        if self._turns is None:
            yield
            return
        began = time.monotonic()
        waited = self._turns.locked()  # else the turn is taken at once: no time to leave in
        self.waiting += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise Busy(
                f"every one of this replica's {self._concurrent} turns for data requests stayed "
                f"taken for {self._timeout:g} s; retry shortly"
            ) from None
        finally:
            self.waiting -= 1
            self._metrics.turn_wait.observe(time.monotonic() - began)
        try:
            if waited and gone is not None and await gone():
                raise ClientGone("the client closed its connection while the request waited")
            yield
        finally:
            self._turns.release()

    async def ping(self, timeout_seconds: float = 2.0) -> bool:
        """Whether InfluxDB answers its ping within the timeout."""
        try:
            async with asyncio.timeout(timeout_seconds):
                return bool(await self._client.ping())
        except (TimeoutError, aiohttp.ClientError, OSError, ApiException) as exc:
            log.warning("influx_ping_failed", error=type(exc).__name__)
            return False

    async def catalog(self, *, refresh: bool = False) -> dict[str, SeriesInfo]:
        """All series, reloaded when older than the TTL (one reload at a time).

        Once loaded, a catalog older than the TTL is answered as it is while a reload runs
        in the background: the reload reads every series' first and last points and the
        tiers' coverage (about 300 ms of InfluxDB's time for three 1 s series of a month, far
        more under load), and every request that came meanwhile waited for it. With a TTL of 0
        (every request sees the newest catalog) and with ``refresh`` (a name it lacks), the
        request reloads it itself."""
        age = time.monotonic() - self._catalog.loaded_at
        if not refresh and age < self._ttl:
            return self._catalog.series
        if not refresh and self._ttl > 0 and self._catalog.series:
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.create_task(self._reload_behind())
            return self._catalog.series
        return await self._reload(refresh=refresh)

    async def _reload_behind(self) -> None:
        """A reload for requests that did not wait for it: a failure is logged, and the next
        request after the TTL tries again."""
        try:
            await self._reload(refresh=False)
        except _RELOAD_ERRORS as exc:
            log.warning("catalog_reload_failed", error=type(exc).__name__)

    async def warm(self, timeout_seconds: float) -> bool:
        """The catalog loaded (with the tier buckets and their coverage) before the first
        request comes: a replica that starts, in a rollout or a scale-out, would otherwise make
        its first requests wait for it (0.7 s for two series of a year at 1 s). Whether it
        was; InfluxDB down or slower than ``timeout_seconds``: logged, and the first request
        loads it."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self.catalog(refresh=True)
        except _RELOAD_ERRORS as exc:
            log.warning("catalog_warmup_failed", error=type(exc).__name__)
            return False
        return True

    async def _reload(self, *, refresh: bool) -> dict[str, SeriesInfo]:
        """The catalog read again, unless another reload finished within the TTL (within
        ``MIN_RELOAD_SECONDS`` for a ``refresh``) while this one waited for the lock."""
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

    @property
    def tiers(self) -> tuple[TierBucket, ...]:
        """The tiers the API may answer from now: none when their pending markers went unread
        for ``pending_lapse_seconds`` (InfluxDB failing that query): a load may be writing raw
        points that a tier does not hold, and only the raw points answer then."""
        late = time.monotonic() - self._pending_at > self.pending_lapse_seconds
        return () if self._pending_every and late else self._found

    @property
    def configured_tiers(self) -> tuple[Tier, ...]:
        """The tiers the API is configured to use (``API_TIERS``), found or not."""
        return self._configured_tiers

    @property
    def found_tiers(self) -> tuple[TierBucket, ...]:
        """The configured tiers whose buckets the API read at its last catalog reload, with
        the series each holds and its pending ranges; answering or not (``tiers``)."""
        return self._found

    async def usable_tiers(self) -> tuple[TierBucket, ...]:
        """``tiers``, the markers read first when they have lapsed (one read at a time; an
        event loop that did not run, as in a suspended process, lapses them too); none when
        that read fails."""
        if self.tiers or not self._found or not self._pending_every:
            return self.tiers
        async with self._pending_lock:
            now = time.monotonic()
            if not self.tiers and now - self._pending_tried >= self._pending_every:
                self._pending_tried = now  # a failing InfluxDB is asked once a period
                await self.refresh_pending()
        return self.tiers

    @property
    def pending_refresh_seconds(self) -> float:
        """How often the markers are to be read (``refresh_pending``); 0: with the catalog."""
        return self._pending_every

    @property
    def pending_lapse_seconds(self) -> float:
        """Ten refresh periods, and at least a minute: a refresh slowed by a busy InfluxDB or
        event loop must not switch the tiers off when they are needed most."""
        return max(10 * self._pending_every, PENDING_LAPSE_SECONDS)

    async def refresh_pending(self) -> None:
        """The open pending-rollup markers of every known tier bucket read again, so that a
        load's markers reach the API within ``pending_refresh_seconds`` rather than with the
        next catalog reload. A failure is logged and leaves ``tiers`` to lapse."""
        known = self._found
        began = time.monotonic()
        if known:
            try:
                texts = await asyncio.gather(*(self._markers(t) for t in known))
                pending = [_pending_ranges(t, text) for t, text in zip(known, texts, strict=True)]
            except ApiError as exc:
                log.warning("pending_markers_unread", error=type(exc).__name__)
                return
            if self._found is known:  # else a catalog reload read them meanwhile: it stands
                self._publish(
                    tuple(replace(t, pending=p) for t, p in zip(known, pending, strict=True))
                )
        self._pending_at = max(self._pending_at, began)

    async def _markers(self, found: TierBucket) -> str:
        """The CSV of the open markers of a tier's bucket (``pending.open_markers_flux``)."""
        query = flux.FluxQuery(
            pending.open_markers_flux(), {"p_bucket": found.tier.bucket(self.bucket)}
        )
        return await self._csv("pending", query)

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
        began = time.monotonic()
        try:
            tiers = tuple([await self._coverage(t) for t in tiers])
        except (TimeoutError, aiohttp.ClientError, OSError, ApiException, QueryTimeout,
                InfluxUnavailable, InfluxRejected) as exc:  # fmt: skip
            log.warning("tiers_unknown", error=type(exc).__name__)
            return self.tiers
        if tiers != self._found:
            log.info(
                "tiers_found",
                tiers=[f"{t.tier.bucket(self.bucket)} ({t.retention_seconds}s)" for t in tiers],
            )
        self._publish(tiers)
        self._pending_at = max(self._pending_at, began)
        return tiers

    def _publish(self, found: tuple[TierBucket, ...]) -> None:
        """``found`` as the tiers from now on, and in the metrics: per tier, its open pending
        ranges and the series it does not hold (what `GET /v1/tiers` lists)."""
        self._found = found
        for t in found:
            label = t.tier.text
            self._metrics.tier_pending.labels(tier=label).set(len(t.pending_ranges()))
            self._metrics.tier_not_held.labels(tier=label).set(
                len(t.not_held(self._catalog.series))
            )
        for gone in {t.text for t in self._configured_tiers} - {t.tier.text for t in found}:
            for gauge in (self._metrics.tier_pending, self._metrics.tier_not_held):
                with contextlib.suppress(KeyError):  # (a tier never found has none)
                    gauge.remove(gone)

    async def _coverage(self, found: TierBucket) -> TierBucket:
        """The tier with the series it covers: those whose first and last tier windows hold
        the series' first and last raw points (per name, over its tag sets). Read on the
        `mean` field, the newest one: tiers rolled up before it existed answer nothing until
        `ingest rollup` rewrites them. And the ranges it does not hold yet: the open
        pending-rollup markers of its bucket (``pending``)."""
        query = flux.catalog_query(found.tier.bucket(self.bucket), field="mean")
        tables, markers = await asyncio.gather(
            self._run(
                "catalog",
                lambda: self._query_api.query(query.text, org=self._org, params=query.params),
            ),
            self._markers(found),
        )
        ranges = _pending_ranges(found, markers)
        firsts, lasts = _spans(tables)
        step = timedelta(seconds=found.tier.seconds)

        def holds(window: datetime | None, instant: datetime) -> bool:
            return window is not None and window <= instant < window + step

        covered = frozenset(
            series
            for series, info in self._catalog.series.items()
            if holds(firsts.get(series), info.first) and holds(lasts.get(series), info.last)
        )
        checked = replace(found, covered=covered, pending=ranges)
        missing = checked.not_held(self._catalog.series)
        if missing:
            log.info("tier_incomplete", tier=found.tier.text, series=len(missing),
                     example=missing[0])  # fmt: skip
        return checked

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
            text = await self._csv("step", query)
            times = [line.split(",")[-1] for line in str(text).splitlines()[1:] if line]
            if len(times) >= 2:
                a, b = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times[:2])
                step = (b - a).total_seconds() or None
                break
        self._steps[info.name] = step
        return step

    async def check_raw_count(self, plan: QueryPlan, info: SeriesInfo) -> None:
        """TooManyPoints before a raw read that could only be refused: when the series' spacing
        says the range holds more than ``max_points`` points, they are counted in the storage
        engine (a few milliseconds) and the request refused with their exact number, instead
        of reading ``max_points + 1`` of them first (tens of milliseconds of InfluxDB's time
        for a week at 1 s, as long as the range is). A sparser range than the spacing says is
        read as usual; a denser one is refused after the read, as before."""
        if plan.window is not None:
            return
        step = await self.step_seconds(info)
        spaced = None if step is None else (plan.end - plan.start).total_seconds() / step
        if spaced is None or spaced <= plan.max_points:
            return
        points = None
        if spaced > TIER_COUNT_POINTS:
            points = await self._tier_count(plan, info.name)
        if points is None:
            points = parse_count(await self._csv("count", flux.count_query(plan, info.name)))
        if points > plan.max_points:
            raise raw_overflow(plan, points)

    async def _tier_count(self, plan: QueryPlan, series: str) -> int | None:
        """The raw points of a raw plan's range counted from a rollup tier, when one answers
        the counts of the range's UTC days exactly (``with_tier``: the series all in it, the
        range inside its retention, no load pending over it; the raw points of the edges that
        cut a tier window counted in the same request, ``flux.tier_count_query``). None when
        no tier does."""
        days = replace(plan, window=Window(DAY), agg=Agg.COUNT, fill=Fill.NONE, tz=None)
        tiered = with_tier(days, await self.usable_tiers(), datetime.now(UTC))
        if tiered.tier is None:
            return None
        return parse_count(await self._csv("tier", flux.tier_count_query(tiered, series)))

    async def flux_csv(self, plan: QueryPlan, series: str, *, merge_keys: bool = False) -> str:
        """InfluxDB's annotation-free CSV answer to the plan's query for one series."""
        query = flux.series_query(plan, series, merge_keys=merge_keys)
        text = await self._csv("data", query)
        return str(text)

    async def _grain_csv(self, plan: QueryPlan, series: str, seconds: int, fn: str) -> Points:
        query = flux.grain_query(plan, series, seconds, fn)
        return await self._read("data", query, integer=fn == "count")

    async def _grains(
        self, plan: QueryPlan, series: str, seconds: int
    ) -> tuple[Points, Points | None]:
        """The UTC grains of ``seconds`` the engine aggregates, as InfluxDB answered: the
        plan's aggregate, or for ``mean`` the grains' sums and counts."""
        if plan.agg is Agg.MEAN:
            sums, counts = await asyncio.gather(
                self._grain_csv(plan, series, seconds, "sum"),
                self._grain_csv(plan, series, seconds, "count"),
            )
            return sums, counts
        return await self._grain_csv(plan, series, seconds, plan.agg.value), None

    async def _tier_csv(
        self, plan: QueryPlan, series: str, stat: str, seconds: int, offset: int, *, render: bool
    ) -> Points:
        query = flux.tier_query(plan, series, stat, seconds, offset)
        return await self._read("tier", query, integer=stat == "count", render=render)

    async def _tier_core(
        self, inner: QueryPlan, series: str, starts: Ints, labels: list[str]
    ) -> tuple[Points, Points | None] | None:
        """The windows of ``inner`` (a range on tier boundaries, nothing at its edges) from the
        tier, fills left out: the aggregate's values, or for ``mean`` the windows' sums and
        counts (or, for the tier's own windows, the stored means: one field instead of two),
        their JSON begun as they arrive when they are the answer as they come."""
        grain = _tier_grain(inner)
        if grain is None:
            return None
        seconds, offset, local = grain
        render = not local and _passes_through(inner)
        if inner.agg is Agg.MEAN and _own_windows(inner, grain):
            stored = await self._tier_csv(inner, series, "mean", seconds, 0, render=render)
            means = combine_keys(stored, "mean")
            if means is not None:  # one tag set: else sums and counts, below
                return means, None
        if inner.agg is Agg.MEAN:
            text = await self._csv(
                "tier", flux.tier_sum_count_query(inner, series, seconds, offset)
            )
            return _tier_columns(inner, text, starts, labels)
        stat = inner.agg.value
        column = await self._tier_csv(inner, series, stat, seconds, offset, render=render)
        return _stat_column(inner, stat, column, starts, labels)

    async def _with_edges(
        self, core: flux.FluxQuery, plan: QueryPlan, series: str
    ) -> tuple[str, shape.Edges | None]:
        """The answer to ``core`` (a tier query over the part of the range on its boundaries)
        and the statistics of the raw points at the range's edges (``shape.edge_pair``), in one
        request: InfluxDB's cost of a query is mostly its own, not the few points of an edge.
        The edges are None when there are none, or when ``first``/``last`` cannot be told
        apart: two tag sets with points at the same instant."""
        if not plan.edge_ranges:
            return await self._csv("tier", core), None
        both = flux.with_edges(core, flux.edges_query(plan, series, plan.edge_ranges))
        results = split_results(await self._csv("tier", both), ("core", "edges"))
        return results["core"], shape.edge_pair(plan, parse_flux_csv(results["edges"]))

    async def _tier_points(self, plan: QueryPlan, series: str) -> Points | None:
        """The plan's windows from its tier (``plan.tier``), and from the raw points for the
        edges of a range that does not start or end on the tier's boundaries, read in the same
        request (``shape`` joins them; ``stddev`` from the tier's count, sum and m2). None when
        only the raw points can answer exactly (``first``/``last`` of tag sets sharing a
        window)."""
        if plan.window is None or plan.tier is None:
            return None
        inner_start, inner_end = plan.tier_range
        inner = replace(plan, start=inner_start, end=inner_end)
        starts, labels = shape.tier_labels(plan)
        if plan.agg is Agg.STDDEV:
            return await self._tier_stddev(plan, inner, series, starts, labels)
        if not plan.edge_ranges:
            core = await self._tier_core(inner, series, starts, labels)
            return None if core is None else shape.tier_windows(plan, *core, None, labels)
        grain = _tier_grain(inner)
        if grain is None:
            return None
        seconds, offset, _ = grain
        if plan.agg is Agg.MEAN and _own_windows(plan, grain):
            # the tier's own windows: the stored means, and each edge a window of its own
            text, edges = await self._with_edges(
                flux.tier_query(inner, series, "mean", seconds, 0), plan, series
            )
            if edges is None:
                return None
            means = combine_keys(parse_flux_csv(text), "mean")
            if means is not None:  # one tag set: else sums and counts, below
                return shape.tier_windows(plan, means, None, edges, labels)
        if plan.agg is Agg.MEAN:
            query = flux.tier_sum_count_query(inner, series, seconds, offset)
        else:
            query = flux.tier_query(inner, series, plan.agg.value, seconds, offset)
        text, edges = await self._with_edges(query, plan, series)
        if edges is None:
            return None
        stat = plan.agg.value
        columns = (
            _tier_columns(inner, text, starts, labels)
            if plan.agg is Agg.MEAN
            else _stat_column(
                inner, stat, parse_flux_csv(text, integer=stat == "count"), starts, labels
            )
        )
        return None if columns is None else shape.tier_windows(plan, *columns, edges, labels)

    async def _tier_stddev(
        self, plan: QueryPlan, inner: QueryPlan, series: str, starts: Ints, labels: list[str]
    ) -> Points:
        """The plan's standard deviations from its tier's count, sum and m2 (and the raw
        edges), merged exactly; at the tier's own windows of a series of one tag set, from
        count and m2 alone (ADR 0015 addendum)."""
        grain = _tier_grain(inner)
        rows: TierRows | tiers.Windows | None = None
        info = self._catalog.series.get(series)
        one_tag_set = info is not None and all(len(v) <= 1 for v in info.tags.values())
        if one_tag_set and grain is not None and _own_windows(inner, grain):
            # each window a row of the tier, or at a cut end of the range the raw points of an
            # edge alone (the tier's part begins and ends on the plan's windows): its m2 is the
            # window's, no sum needed unless several tag sets must be merged (then read again
            # with the sums, below; the catalog said one tag set)
            query = flux.tier_rows_query(inner, series, sums=False)
            text, edges = await self._with_edges(query, plan, series)
            rows = tier_arrays(text, sums=False)
        if rows is None:
            text, edges = await self._with_edges(flux.tier_rows_query(inner, series), plan, series)
            rows = tier_arrays(text)
        if rows is None:
            rows = tier_rows(text)
        if rows is None:  # several tag sets: their fields paired by Flux
            query = flux.tier_rows_query(inner, series, pivot=True)
            text, edges = await self._with_edges(query, plan, series)
            rows = parse_tier_rows(text)
        return shape.tier_stddev(plan, rows, edges, starts, labels)

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
        if await self.one_point_windows(plan, series):
            as_windows = await self._points_as_windows(plan, series)
            if as_windows is not None:
                self._metrics.points_returned.observe(len(as_windows))
                return as_windows
        if plan.agg in (Agg.MEDIAN, Agg.STDDEV) and plan.window is not None:
            computed = await self._raw_windows(plan, series)
            if computed is not None:
                self._metrics.points_returned.observe(len(computed))
                return computed
        seconds = composed_grain(plan)
        if seconds is not None:
            composed = shape.local_windows(plan, *await self._grains(plan, series, seconds))
            if composed is not None:
                self._metrics.points_returned.observe(len(composed))
                return composed
        counts = plan.agg is Agg.COUNT and plan.window is not None
        query = flux.series_query(plan, series)
        points = await self._read("data", query, integer=counts, render=_passes_through(plan))
        if shape.several_keys(points):
            # Several tag sets under one name: ask again with the tables merged.
            log.info("series_has_several_keys", series=series, tables=points.tables)
            merged = await self.flux_csv(plan, series, merge_keys=True)
            points = parse_flux_csv(merged, integer=counts)
        points = shape.flux_windows(plan, points)
        self._metrics.points_returned.observe(len(points))
        return points

    async def one_point_windows(self, plan: QueryPlan, series: str) -> bool:
        """Whether the series' spacing says each of the plan's windows holds at most one of its
        points, on the window's start: windows that divide the spacing, of a plan whose
        windows can be points (``shape.windows_of_points``). Only a hint (the first two
        points'): the points read are checked (``shape.points_are_windows``)."""
        window = plan.window
        if not READ_POINTS_AS_WINDOWS or window is None or not shape.windows_of_points(plan):
            return False
        if (series, window.seconds) in self._not_windows:
            return False
        step = await self.step_seconds(await self.series(series))
        return step is not None and step % window.seconds == 0

    async def _points_as_windows(self, plan: QueryPlan, series: str) -> Points | None:
        """The plan's windows as the raw points themselves, when those are the windows
        (``shape.points_are_windows``): windows of a series' own spacing, which `auto` picks
        for short ranges. InfluxDB sends the points in about seven eighths of the time it
        takes to make windows of them (a day of 1 s data: 43 ms against 50 ms; at 30 s 6.8
        against 7.5 ms). At most one point more than the windows is read; None when they are
        not the windows (the caller asks Flux for the windows then)."""
        raw = replace(plan, window=None, tier=None, max_points=plan.window_count() or 0)
        query = flux.series_query(raw, series)
        points = await self._read("as_windows", query, render=_passes_through(plan))
        if not shape.points_are_windows(plan, points):
            log.info("points_are_not_windows", series=series, resolution=plan.resolution)
            if plan.window is not None:
                self._not_windows.add((series, plan.window.seconds))
            return None
        if plan.agg is Agg.MEDIAN:
            # Otherwise the API computes a median (``shape.raw_windows``): its floats, written
            # as the API writes the floats it computes, not as InfluxDB wrote the points (`50`
            # is `50.0` there, `0.0000001` is `1e-07`)
            points.values = [v if v is None else float(v) for v in points.values]
        return points

    async def _raw_windows(self, plan: QueryPlan, series: str) -> Points | None:
        """The plan's medians or standard deviations computed here from the raw points
        (``shape.raw_windows``). Flux computes neither in the storage engine: it moves every
        point into its own, one table per window, and sorts each window for a median. A day of
        1 s data in hourly to 30 s windows cost InfluxDB 210-470 ms for medians and about
        550 ms for standard deviations at 30 s, against about 40 ms to send the points and a
        few ms for numpy. None when the range holds more than ``COMPUTE_READ_POINTS`` (more
        than its spacing said: Flux computes those, as before)."""
        raw = replace(plan, window=None, tier=None, max_points=COMPUTE_READ_POINTS)
        points = await self._read("data", flux.series_query(raw, series))
        if len(points) > COMPUTE_READ_POINTS:
            log.info("left_to_flux", series=series, agg=plan.agg.value, points=len(points))
            return None
        return shape.raw_windows(plan, points)

    async def _read(
        self, kind: str, query: flux.FluxQuery, *, integer: bool = False, render: bool = False
    ) -> Points:
        """A Flux query's answer as points (``parse_flux_csv``), read while it arrives
        (``CsvReader``); with ``render``, the JSON of its windows made meanwhile
        (``formats.prerender``)."""
        if self._http is None:
            return parse_flux_csv(await self._csv(kind, query), integer=integer)
        http = self._http
        on_piece = formats.prerender if render else None
        read = query.read
        outcome: Outcome | None = None
        if read is not None and self._influxql_reads and self._influxql_may_read(read):
            got = await self._run(
                kind, lambda: self._influxql(http, read, integer), language="influxql"
            )
            outcome = got if isinstance(got, Outcome) else Outcome.ANSWERED
            self._metrics.influxql_reads.labels(outcome=outcome.value).inc()
            if not isinstance(got, Outcome):
                self._influxql_misses.pop(read.bucket, None)
                return got
        reader = CsvReader(integer=integer, on_piece=on_piece)
        await self._run(kind, lambda: http.query_into(query.text, query.params, reader.feed))
        points = reader.points()
        if read is not None and outcome is not None:
            self._influxql_fell_back(read, outcome, points)
        return points

    def _influxql_may_read(self, read: influxql.PlainRead) -> bool:
        return (
            read.limit is not None
            and read.limit <= INFLUXQL_MOST_ROWS
            and read.bucket not in self._not_influxql
            and (read.bucket, read.measurement) not in self._not_read
        )

    @staticmethod
    async def _influxql(
        http: FluxHttp, read: influxql.PlainRead, integer: bool
    ) -> Points | Outcome:
        """A plain read asked in InfluxQL: the points Flux's answer would give
        (``influxql_csv.read_points``), or why not; ``REFUSED`` for a 4xx (Flux is asked then,
        and answers with its own error if the request is at fault)."""
        parts: list[bytes] = []
        try:
            await http.influxql_into(read.bucket, influxql.statement(read), parts.append)
        except ApiException as exc:
            if 400 <= int(getattr(exc, "status", 0) or 0) < 500:
                return Outcome.REFUSED
            raise
        return read_points(b"".join(parts), integer=integer)

    def _influxql_fell_back(
        self, read: influxql.PlainRead, outcome: Outcome, points: Points
    ) -> None:
        """What Flux's answer after InfluxQL's says of InfluxQL's: a bucket InfluxQL refused,
        or answered with nothing where Flux had points, ``INFLUXQL_MISSES`` times in a row, is
        read in Flux from then on (once could be points written between the two queries, or
        a 429 of a moment); so is a series whose answer could not be read."""
        if outcome is Outcome.REFUSED or (outcome is Outcome.EMPTY and len(points)):
            misses = self._influxql_misses.get(read.bucket, 0) + 1
            self._influxql_misses[read.bucket] = misses
            log.info("influxql_missed", bucket=read.bucket, outcome=outcome.value, misses=misses)
            if misses >= INFLUXQL_MISSES:
                self._not_influxql.add(read.bucket)
                log.warning("influxql_not_answering", bucket=read.bucket, outcome=outcome.value)
        elif outcome in (Outcome.SEVERAL_TAG_SETS, Outcome.UNREADABLE):
            self._not_read.add((read.bucket, read.measurement))

    async def _csv(self, kind: str, query: flux.FluxQuery) -> str:
        """A Flux query's annotation-free CSV answer, under the time budget."""
        if self._http is not None:
            http = self._http
            return await self._run(kind, lambda: http.query(query.text, query.params))
        text = await self._run(
            kind,
            lambda: self._query_api.query_raw(
                query.text, org=self._org, dialect=_CSV, params=query.params
            ),
        )
        return str(text)

    async def close(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        if self._http is not None:
            await self._http.close()

    async def _run(
        self, kind: str, call: Callable[[], Awaitable[T]], *, language: str = "flux"
    ) -> T:
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
            self._metrics.flux_seconds.labels(
                query=kind, outcome=outcome, language=language
            ).observe(time.perf_counter() - started)


def _passes_through(plan: QueryPlan) -> bool:
    """Whether the plan's answer is the windows as InfluxDB writes them, in JSON: one series,
    no fill. A first window that the range cuts is relabelled in the bytes (``shape``), which
    leaves the other pieces' JSON made meanwhile as it is (``CsvCells.relabel_first``)."""
    return (
        plan.format is Format.JSON
        and plan.window is not None
        and len(plan.series) == 1
        and plan.fill is Fill.NONE
    )


def _pending_ranges(found: TierBucket, markers: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """Per series, the ranges the open markers of a tier's bucket say it does not hold (the
    CSV of ``pending.open_markers_flux``); InfluxRejected for a Flux error."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    try:
        for marker in pending.parse_markers(markers):
            ranges.setdefault(marker.series, []).append((marker.start, marker.stop))
    except ValueError as exc:
        raise InfluxRejected(str(exc)) from None
    out = {s: tuple(sorted(r)) for s, r in ranges.items()}
    if out != found.pending:
        log.info("tier_pending", tier=found.tier.text, series=len(out),
                 example=min(out) if out else None)  # fmt: skip
    return out


def _tier_grain(inner: QueryPlan) -> tuple[int, int, bool] | None:
    """The UTC windows a tier is aggregated into in the storage engine for ``inner``: its own
    windows' length and offset, or for local windows the UTC grain they are composed of
    (``local_grain``); and whether they are local. None when no grain composes them."""
    window = inner.window
    if window is None or inner.tier is None:
        return None
    if utc_aligned(inner):
        return window.seconds, window.offset_seconds, False
    grain = local_grain(inner)
    return None if grain is None else (grain, 0, True)


def _own_windows(plan: QueryPlan, grain: tuple[int, int, bool]) -> bool:
    """Whether the UTC ``grain`` (``_tier_grain``) is the plan's tier's own windows: each a
    row of the tier, its stored mean the window's."""
    return plan.tier is not None and grain == (plan.tier.seconds, 0, False)


def _stat_column(
    inner: QueryPlan, stat: str, column: Points, starts: Ints, labels: list[str]
) -> tuple[Points, None] | None:
    """One statistic per window from the tier (``flux.tier_query``'s answer), tag sets combined
    (counts add up); None when they cannot be (``combine_keys``)."""
    got = combine_keys(column, "sum" if stat == "count" else stat)
    return None if got is None else (shape.tier_column(inner, stat, got, starts, labels), None)


def _tier_columns(
    inner: QueryPlan, text: str, starts: Ints, labels: list[str]
) -> tuple[Points, Points | None] | None:
    """The windows' sums and counts from the tier (``flux.tier_sum_count_query``'s answer),
    tag sets combined; None when they cannot be."""
    sums, counts = parse_sum_count(text)
    got = [combine_keys(sums, "sum"), combine_keys(counts, "sum")]
    if got[0] is None or got[1] is None:
        return None
    return (
        shape.tier_column(inner, "sum", got[0], starts, labels),
        shape.tier_column(inner, "count", got[1], starts, labels),
    )


def _spans(tables: TableList) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """Earliest first and latest last instant per measurement, over its series keys, from the
    two result streams of a first/last query (the catalog's, a tier's)."""
    firsts: dict[str, datetime] = {}
    lasts: dict[str, datetime] = {}
    for table in tables:
        for record in table.records:
            name, when, result = _record(record)
            if result == "first":
                firsts[name] = min(when, firsts.get(name, when))
            else:
                lasts[name] = max(when, lasts.get(name, when))
    return firsts, lasts


def _catalog_from(tables: TableList) -> dict[str, SeriesInfo]:
    firsts, lasts = _spans(tables)
    units: dict[str, set[str]] = {}
    tags: dict[str, dict[str, set[str]]] = {}
    for table in tables:
        for record in table.records:
            name = str(record.values["_measurement"])
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
