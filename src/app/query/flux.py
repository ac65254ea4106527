"""QueryPlan -> Flux text and parameters. Pure, and the only module that writes Flux.

The text is assembled from constants of this module and from enum members of the plan; every
value (bucket, series name, instants, window length, zone) travels as a Flux parameter, which the
client sends as `option p_x = <literal>` in the request's AST, never spliced into the text.
The shape `range |> filter |> aggregateWindow` is what InfluxDB pushes down into its storage
engine; anything after it runs on the already-reduced windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.query.influxql import PlainRead
from app.query.plan import Agg, Fill, QueryPlan, utc_aligned

# The catalog looks at everything InfluxDB can hold that a grid series may plausibly have.
CATALOG_START = datetime(1970, 1, 1, tzinfo=UTC)
CATALOG_STOP = datetime(2200, 1, 1, tzinfo=UTC)

# Flux aggregate for each Agg. `median` defaults to a t-digest estimate in Flux; exact_mean is the
# textbook median (the mean of the two middle values), which is what users compare against.
_AGG_FN: dict[Agg, str] = {
    Agg.MEAN: "mean",
    Agg.MIN: "min",
    Agg.MAX: "max",
    Agg.SUM: "sum",
    Agg.COUNT: "count",
    Agg.FIRST: "first",
    Agg.LAST: "last",
    Agg.MEDIAN: '(column, tables=<-) => tables |> median(column: column, method: "exact_mean")',
    Agg.STDDEV: "stddev",
}

_SOURCE = """from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._measurement == p_series and r._field == "value")"""


def _series_params(bucket: str, series: str, start: datetime, stop: datetime) -> dict[str, object]:
    """The parameters that pick one series of a bucket in [start, stop) (as in ``_SOURCE``)."""
    return {"p_bucket": bucket, "p_series": series, "p_start": start, "p_stop": stop}


@dataclass(frozen=True)
class FluxQuery:
    """Flux text plus the values it refers to as `p_*` parameters; ``read``: the same points as
    a plain read, when the query is one (InfluxDB may answer it in InfluxQL: ADR 0018)."""

    text: str
    params: dict[str, object] = field(default_factory=dict)
    read: PlainRead | None = None


# A series stored under several tag sets (e.g. two `site` values) is several Flux tables; merged
# into one, in time order, before windowing. Not the default: it costs the storage pushdown.
_MERGE = """
    |> group(columns: ["_measurement", "_field"])
    |> sort(columns: ["_time"])"""


def series_query(plan: QueryPlan, series: str, *, merge_keys: bool = False) -> FluxQuery:
    """The Flux for one series of a plan: windows aggregated, or raw points up to the cap.

    `merge_keys` treats every tag set of the series as one sequence of points.
    """
    source = _SOURCE + (_MERGE if merge_keys else "")
    if series not in plan.series:
        raise ValueError(f"{series!r} is not part of the plan")
    params = _series_params(plan.bucket, series, plan.start, plan.end)
    if plan.window is None:
        params["p_limit"] = plan.raw_limit
        text = source + '\n    |> keep(columns: ["_time", "_value"])' + "\n    |> limit(n: p_limit)"
        read = None
        if not merge_keys:
            read = PlainRead(plan.bucket, series, "value", plan.start, plan.end, plan.raw_limit)
        return FluxQuery(text, params, read)

    params["p_every"] = plan.window.duration
    params["p_offset"] = plan.window.offset
    imports = ""
    location = ""
    if plan.tz is not None and not utc_aligned(plan):
        params["p_tz"] = plan.tz
        imports = 'import "timezone"\n\n'
        location = ", location: timezone.location(name: p_tz)"
    create_empty = "false" if plan.fill is Fill.NONE else "true"
    text = (
        imports
        + source
        + "\n    |> aggregateWindow("
        + f"every: p_every, offset: p_offset, fn: {_AGG_FN[plan.agg]}, "
        + f'timeSrc: "_start", createEmpty: {create_empty}{location})'
    )
    if plan.fill is Fill.PREVIOUS:
        text += '\n    |> fill(column: "_value", usePrevious: true)'
    # Linear fill happens after the query (points.fill_linear): Flux's interpolate.linear assumes
    # equal steps, which days of 23 or 25 hours are not.
    text += '\n    |> keep(columns: ["_time", "_value"])'
    return FluxQuery(text, params)


def edges_query(plan: QueryPlan, series: str, ranges: list[tuple[datetime, datetime]]) -> FluxQuery:
    """The raw points of one series in each of ``ranges`` (the edges of a range whose middle a
    tier answers) in one query: one storage read per range, their tables side by side. One
    query, not one per edge: InfluxDB's cost of a query is mostly its own, not the few
    thousand points of an edge."""
    if not ranges:
        raise ValueError("no range to read")
    params: dict[str, object] = {"p_raw_bucket": plan.bucket, "p_series": series}
    reads = []
    for i, (start, stop) in enumerate(ranges):
        params[f"p_edge_start{i}"], params[f"p_edge_stop{i}"] = start, stop
        reads.append(
            "from(bucket: p_raw_bucket)"
            f"\n    |> range(start: p_edge_start{i}, stop: p_edge_stop{i})"
            '\n    |> filter(fn: (r) => r._measurement == p_series and r._field == "value")'
        )
    text = reads[0] if len(reads) == 1 else "union(tables: [\n" + ",\n".join(reads) + "\n])"
    return FluxQuery(text + '\n    |> keep(columns: ["_time", "_value"])', params)


def with_edges(core: FluxQuery, edges: FluxQuery) -> FluxQuery:
    """``core`` and ``edges`` as one query of two results, `core` and `edges`
    (``points.split_results`` parts them)."""
    shared = core.params.keys() & edges.params.keys()
    if any(core.params[k] != edges.params[k] for k in shared):
        raise ValueError(f"the queries give different values to {sorted(shared)}")
    text = (
        core.text
        + '\n    |> yield(name: "core")\n\n'
        + edges.text
        + '\n    |> yield(name: "edges")'
    )
    return FluxQuery(text, {**core.params, **edges.params})


def catalog_query(bucket: str, field: str = "value") -> FluxQuery:
    """First and last point of every series key, with its tags; two result streams. A tier
    bucket's first and last windows are those of one of its fields (every tier point has all)."""
    text = """data = from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._field == p_field)

data |> first() |> drop(columns: ["_start", "_stop", "_value"]) |> yield(name: "first")
data |> last() |> drop(columns: ["_start", "_stop", "_value"]) |> yield(name: "last")"""
    return FluxQuery(
        text,
        {"p_bucket": bucket, "p_field": field, "p_start": CATALOG_START, "p_stop": CATALOG_STOP},
    )


def count_query(plan: QueryPlan, series: str) -> FluxQuery:
    """How many raw points of one series the plan's range holds: counted in the storage engine
    (pushed down), one row per tag set."""
    params = _series_params(plan.bucket, series, plan.start, plan.end)
    return FluxQuery(_SOURCE + "\n    |> count()" + '\n    |> keep(columns: ["_value"])', params)


def step_query(bucket: str, series: str, start: datetime, stop: datetime) -> FluxQuery:
    """The first two points of a series in [start, stop): their distance is its spacing."""
    text = _SOURCE + "\n    |> limit(n: 2)" + '\n    |> keep(columns: ["_time"])'
    return FluxQuery(text, _series_params(bucket, series, start, stop))


# The fixed Flux functions a grain or tier query may aggregate with: never text from a request.
_WINDOW_FN = {"sum": "sum", "count": "count", "min": "min", "max": "max", "first": "first",
              "last": "last"}  # fmt: skip


def grain_query(plan: QueryPlan, series: str, seconds: int, fn: str) -> FluxQuery:
    """Per-grain aggregates on UTC grains of ``seconds``, pushed down into the storage engine;
    the store composes local windows from them."""
    params = _series_params(plan.bucket, series, plan.start, plan.end)
    params["p_every"] = timedelta(seconds=seconds)
    text = (
        _SOURCE
        + f'\n    |> aggregateWindow(every: p_every, fn: {_WINDOW_FN[fn]}, timeSrc: "_start", '
        + "createEmpty: false)"
        + '\n    |> keep(columns: ["_time", "_value"])'
    )
    return FluxQuery(text, params)


# A tier bucket (gridts.tiers): one point per series and tier window, fields count, sum, min, max,
# first, last, m2. Which field a pushed-down aggregate reads, and with which Flux function.
TIER_FIELD_FN: dict[str, tuple[str, str]] = {
    # the stored `sum / count`: only for windows equal to the tier's, one point each
    "mean": ("mean", "last"),
    "sum": ("sum", "sum"),
    "count": ("count", "sum"),
    "min": ("min", "min"),
    "max": ("max", "max"),
    "first": ("first", "first"),
    "last": ("last", "last"),
}

_TIER_SOURCE = """from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._measurement == p_series and r._field == p_field)"""


def tier_query(plan: QueryPlan, series: str, stat: str, seconds: int, offset: int) -> FluxQuery:
    """One statistic of the plan's tier (``TIER_FIELD_FN``: `count` is the sum of the counts)
    aggregated into UTC windows of ``seconds`` (``offset``: weeks start on Monday) in the
    storage engine, labelled at their starts.

    The tier's own windows over a range on their boundaries are its points as stored (one per
    window and tag set, at the window's start): read as they are, without `aggregateWindow`
    (7 % less of InfluxDB's time for a year at 15 m, the same bytes)."""
    if plan.tier is None:
        raise ValueError("the plan reads no tier")
    field_name, fn = TIER_FIELD_FN[stat]
    params = _series_params(plan.source_bucket, series, plan.start, plan.end)
    params["p_field"] = field_name
    own = (seconds, offset) == (plan.tier.seconds, 0)
    if own and all(t.timestamp() % seconds == 0 for t in (plan.start, plan.end)):
        windows = int((plan.end - plan.start) / timedelta(seconds=seconds))
        read = None
        if windows >= 1:  # (InfluxQL's `LIMIT 0` is no limit)
            read = PlainRead(plan.source_bucket, series, field_name, plan.start, plan.end, windows)
        return FluxQuery(_TIER_SOURCE + '\n    |> keep(columns: ["_time", "_value"])', params, read)
    params["p_every"] = timedelta(seconds=seconds)
    params["p_offset"] = timedelta(seconds=offset)
    text = (
        _TIER_SOURCE
        + f"\n    |> aggregateWindow(every: p_every, offset: p_offset, fn: {_WINDOW_FN[fn]}, "
        + 'timeSrc: "_start", createEmpty: false)'
        + '\n    |> keep(columns: ["_time", "_value"])'
    )
    return FluxQuery(text, params)


def tier_count_query(plan: QueryPlan, series: str) -> FluxQuery:
    """How many raw points of one series the plan's range holds, counted from its tier: the
    tier's counts summed over the part of the range on the tier's boundaries
    (``QueryPlan.tier_range``), and the raw points of the edges before and after it counted,
    each in the storage engine, in one query of two results (``with_edges``; one row per tag
    set each: ``points.parse_count`` adds them all)."""
    if plan.tier is None:
        raise ValueError("the plan reads no tier")
    inner_start, inner_end = plan.tier_range
    params = _series_params(plan.source_bucket, series, inner_start, inner_end)
    params["p_field"] = "count"
    text = _TIER_SOURCE + '\n    |> sum()\n    |> keep(columns: ["_value"])'
    if not plan.edge_ranges:
        return FluxQuery(text, params)
    edges = edges_query(plan, series, plan.edge_ranges)
    counted = FluxQuery(
        edges.text + '\n    |> count()\n    |> keep(columns: ["_value"])', edges.params
    )
    return with_edges(FluxQuery(text, params), counted)


def tier_rows_query(
    plan: QueryPlan, series: str, *, pivot: bool = False, sums: bool = True
) -> FluxQuery:
    """The tier's rows with what a merge of windows needs for ``stddev``: count, sum, m2, one
    table per field and tag set (``points.tier_rows``); with ``pivot``, one row per tier
    window and tag set (``points.parse_tier_rows``: Flux's `pivot` costs InfluxDB 2.5 x the
    read, needed only to pair several tag sets' fields). Without ``sums``, count and m2 only:
    all that the tier's own windows of one tag set need (``points.tier_arrays``)."""
    if plan.tier is None:
        raise ValueError("the plan reads no tier")
    if pivot and not sums:
        raise ValueError("pivoted rows are merged: they need their sums")
    params = _series_params(plan.source_bucket, series, plan.start, plan.end)
    wanted = ' or r._field == "sum"' if sums else ""
    text = f"""from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._measurement == p_series
        and (r._field == "count"{wanted} or r._field == "m2"))"""
    if pivot:
        text += """
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> keep(columns: ["_time", "count", "sum", "m2"])"""
    else:
        text += '\n    |> keep(columns: ["_time", "_field", "_value"])'
    return FluxQuery(text, params)


def tier_sum_count_query(plan: QueryPlan, series: str, seconds: int, offset: int) -> FluxQuery:
    """The sums and counts of the tier's windows per UTC window of ``seconds`` in one query
    (what a mean needs): both fields summed in the storage engine, one table each (a `pivot`
    to put them side by side costs Flux more than the query: 14 ms against 9 ms for 2,880
    windows)."""
    if plan.tier is None:
        raise ValueError("the plan reads no tier")
    params = _series_params(plan.source_bucket, series, plan.start, plan.end)
    params["p_every"] = timedelta(seconds=seconds)
    params["p_offset"] = timedelta(seconds=offset)
    text = (
        """from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._measurement == p_series and (r._field == "sum" or r._field == "count"))
    |> aggregateWindow(every: p_every, offset: p_offset, fn: sum, timeSrc: "_start", """
        + """createEmpty: false)
    |> keep(columns: ["_time", "_field", "_value"])"""
    )
    return FluxQuery(text, params)
