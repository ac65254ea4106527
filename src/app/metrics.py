"""Prometheus metrics of one app instance, in its own registry (tests build many apps)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "gridts_api_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.flux_seconds = Histogram(
            "gridts_api_flux_query_duration_seconds",
            "Latency of queries sent to InfluxDB by kind: Flux, and plain reads in InfluxQL "
            "(ADR 0018)",
            ["query", "outcome", "language"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.influxql_reads = Counter(
            "gridts_api_influxql_reads_total",
            "Plain reads asked in InfluxQL, by how the answer was outcome (answered; else Flux "
            "was asked: empty, several_tag_sets, unreadable, refused)",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "gridts_api_errors_total",
            "Error responses by kind",
            ["kind"],
            registry=self.registry,
        )
        self.heavy_refused = Counter(
            "gridts_api_heavy_refused_total",
            "Queries without storage pushdown refused with 429 because every slot stayed taken",
            registry=self.registry,
        )
        self.turn_wait = Histogram(
            "gridts_api_turn_wait_seconds",
            "How long data requests waited for their turn (API_CONCURRENT_REQUESTS)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.turns_waiting = Gauge(
            "gridts_api_turns_waiting",
            "Data requests waiting for their turn now (API_CONCURRENT_REQUESTS)",
            registry=self.registry,
        )
        self.source = Counter(
            "gridts_api_data_source_total",
            "Series answered, by the data that answered them: raw points or a rollup tier",
            ["source"],
            registry=self.registry,
        )
        self.points_returned = Histogram(
            "gridts_api_points_per_series",
            "Points returned per series and request",
            buckets=(10, 100, 1_000, 10_000, 100_000),
            registry=self.registry,
        )
        self._tier_gauges()

    def _tier_gauges(self) -> None:
        """What `GET /v1/tiers` lists, for alerts (the chart's PrometheusRule)."""
        self.tier_pending = Gauge(
            "gridts_api_tier_pending_ranges",
            "Ranges a rollup tier does not hold yet (open pending-rollup markers: a load wrote raw "
            "points and has not rolled them up; GET /v1/tiers lists them)",
            ["tier"],
            registry=self.registry,
        )
        self.tier_not_held = Gauge(
            "gridts_api_tier_series_not_held",
            "Series a rollup tier does not hold in full, which it never answers until "
            "`python -m ingest rollup` fills it (GET /v1/tiers lists them)",
            ["tier"],
            registry=self.registry,
        )
        self.tiers_answering = Gauge(
            "gridts_api_tiers_answering",
            "1 while the rollup tiers may answer; 0 when none is found or their pending markers "
            "could not be read lately (every answer from the raw points)",
            registry=self.registry,
        )

    def observe(self, *, waiting: Callable[[], int], answering: Callable[[], bool]) -> None:
        """The gauges read from the store when scraped: data requests waiting for their turn,
        and whether the tiers may answer."""
        self.turns_waiting.set_function(waiting)
        self.tiers_answering.set_function(lambda: 1 if answering() else 0)
