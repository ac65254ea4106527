"""What InfluxDB answered, shaped into a plan's windows: pure.

The store runs the queries and hands over the raw columns, per query as InfluxDB answered them
(Flux's windows, UTC grains, a tier's windows, the raw points at the range's edges); these
functions make the plan's windows of them: local windows composed from UTC grains, the window
``start`` cuts labelled with its aligned start, empty windows and fills, tag sets merged, tier
windows joined with the raw edges, sums divided by counts, standard deviations merged. The
plain answer (UTC windows, fill ``none``) passes through untouched: no work per point.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from app.points import (
    Ints,
    Points,
    TierRows,
    Value,
    add_edge,
    bracket,
    compose_windows,
    divide,
    fill_linear,
    fill_windows,
    stddev_windows,
    tier_windows_of,
    utc_labels,
)
from app.query.plan import MICRO, Agg, Fill, QueryPlan, format_time, utc_aligned, window_start
from gridts import tiers

# The raw points before and after the part of the range a tier answers (one window each).
Edges = tuple[tiers.Windows, tiers.Windows]


def several_keys(points: Points) -> bool:
    """Whether rows come from several tag sets: several tables, or (`keep()` merges their
    tables) labels that repeat or go back."""
    return points.tables > 1 or not points.increasing()


# The aggregates whose value for a window of one point is that point's value (a median of
# one value is the value; Flux's `exact_mean` does not average it with itself).
POINT_AGGS = frozenset({Agg.MEAN, Agg.MIN, Agg.MAX, Agg.SUM, Agg.FIRST, Agg.LAST, Agg.MEDIAN})


def windows_of_points(plan: QueryPlan) -> bool:
    """Whether the plan's windows can be points as they are (``points_are_windows``): UTC
    windows (``utc_aligned``), an aggregate of ``POINT_AGGS``, fill `none` (a fill needs the
    empty windows, which Flux's `createEmpty` makes)."""
    return (
        plan.window is not None
        and plan.agg in POINT_AGGS
        and plan.fill is Fill.NONE
        and utc_aligned(plan)
    )


def points_are_windows(plan: QueryPlan, points: Points) -> bool:
    """Whether a range's raw points are, as they are, the plan's windows: a plan whose windows
    can be (``windows_of_points``), and every point at the start of one of its windows (the
    instant a multiple of the window past its offset), so that its label is the window's,
    strictly increasing, so at most one in each window, whichever tag set it is of (tag sets
    at the same instants are not); for a mean or a median, every value written as its float
    would be (``Points.floats_as_written``); for a sum or a mean, no negative zero. A window
    that the range's start cuts cannot hold such a point: it begins before the start."""
    if plan.window is None or not windows_of_points(plan):
        return False
    if len(points) > (plan.window_count() or 0):
        return False
    if not len(points):
        return True
    window = plan.window
    if not (points.on_multiples(window.seconds, window.offset_seconds) and points.increasing()):
        return False
    # Flux's sum and mean of `-0` are `0` (it adds the point to 0); its mean and median of an
    # integer field are floats
    if plan.agg in (Agg.SUM, Agg.MEAN) and points.negative_zeros():
        return False
    return plan.agg not in (Agg.MEAN, Agg.MEDIAN) or points.floats_as_written()


def flux_windows(plan: QueryPlan, points: Points) -> Points:
    """The plan's points from Flux's answer (its windows, or the raw points): the window
    ``start`` cuts labelled with its aligned start, every window made when Flux had no row to
    fill, linear fill. Only the first label is looked at otherwise."""
    if plan.window is None:
        return points
    first_start = plan.first_window_start()
    # Flux labels the window that `start` cuts with `start` itself; the API labels every
    # window with its aligned start, so that labels line up across requests.
    if first_start is not None and first_start != plan.start and len(points):
        # (points still Flux's CSV stay so: ``Points.relabel_first``)
        points.relabel_first(format_time(plan.start), format_time(first_start))
    if plan.fill is not Fill.NONE and not len(points):
        # With no row in the range Flux has no table to fill; the windows are still there.
        empty: Value = 0 if plan.agg is Agg.COUNT else None
        labels = format_micros(start_micros(plan))
        points = Points(labels, [empty] * len(labels))
    if plan.fill is Fill.LINEAR:
        points = fill_linear(points)
    return points


def local_windows(plan: QueryPlan, parts: Points, counts: Points | None = None) -> Points | None:
    """The plan's local windows (``tz``) from UTC grains nesting in them: ``parts`` holds the
    grains' aggregate (for ``mean`` their sums, and ``counts`` their counts), fills applied.
    None when the grains come from several tag sets (Flux merges them instead)."""
    if several_keys(parts) or (counts is not None and several_keys(counts)):
        return None
    starts = start_micros(plan)
    labels = format_micros(starts)
    agg = plan.agg.value
    if counts is not None:
        by_time = dict(zip(counts.times, counts.values, strict=True))
        per_grain = [by_time.get(t) for t in parts.times]
        points = compose_windows(starts, labels, parts.times, parts.values, agg, per_grain)
    else:
        points = compose_windows(starts, labels, parts.times, parts.values, agg)
    return fill_windows(points, labels, plan.fill.value, agg)


def raw_windows(plan: QueryPlan, raw: Points) -> Points:
    """The plan's windows' medians or standard deviations from its raw points (every tag
    set's together, as Flux's aggregate of the merged tables). Windows from ``start_micros``
    (the plan's window starts: local days and hours too), labelled at their starts; fills
    applied.

    The median is the textbook one, the mean of the two middle values, as Flux's `exact_mean`
    computes it (for an odd count, the middle value itself: ``(a + a) / 2`` is ``a``). The
    standard deviation is the sample one, in two passes about each window's own mean
    (``tiers.grouped``); NaN for a window of one point, as Flux's (null in every format, and
    no fill fills it)."""
    if plan.agg not in (Agg.MEDIAN, Agg.STDDEV):
        raise ValueError(f"no raw computation of {plan.agg.value}")
    starts = start_micros(plan)
    labels = format_micros(starts)
    out = Points(tables=1)
    if len(raw):
        nanos, values = _arrays(raw)
        edges = starts * 1000
        # every point is in [start, end), whose first window begins at or before start
        window = np.searchsorted(edges, nanos, side="right") - 1
        if plan.agg is Agg.MEDIAN:
            order = np.lexsort((values, window))  # by window, then by value
            window, values = window[order], values[order]
            firsts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
            counts = np.diff(np.r_[firsts, len(window)])
            stat = (values[firsts + (counts - 1) // 2] + values[firsts + counts // 2]) / 2
            keys = window[firsts]
        else:
            order = np.argsort(window, kind="stable")
            merged = tiers.grouped(window[order], values[order])
            stat, keys = merged.stddev(), merged.start
        out = Points([labels[w] for w in keys.tolist()], stat.tolist(), 1)
    return fill_windows(out, labels, plan.fill.value, plan.agg.value)


def _epoch_nanos(instant: datetime) -> int:
    """An aware instant as integer nanoseconds since the epoch (no float on the way)."""
    return (instant - _EPOCH) // timedelta(microseconds=1) * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tier_labels(plan: QueryPlan) -> tuple[Ints, list[str]]:
    """The window starts (``start_micros``) and labels a tiered answer needs (local windows,
    ``stddev`` or a fill); none otherwise, so that the plain tiered answer makes no list of
    windows."""
    local = not utc_aligned(plan)
    if not (local or plan.agg is Agg.STDDEV or plan.fill is not Fill.NONE):
        return _NO_STARTS, []
    starts = start_micros(plan)
    return starts, format_micros(starts)


_NO_STARTS: Ints = np.zeros(0, dtype=np.int64)
_NO_STARTS.flags.writeable = False


def start_micros(plan: QueryPlan) -> Ints:
    """The start of every window of the plan's range in microseconds since the epoch, as one
    array made at once (``QueryPlan.window_start_micros``): no datetime per window, which cost
    a month of minutes 9 ms."""
    micros = plan.window_start_micros()
    if isinstance(micros, range):
        return np.arange(micros.start, micros.stop, micros.step, dtype=np.int64)
    return np.array(micros, dtype=np.int64)


def format_micros(micros: Ints) -> list[str]:
    """``format_time`` of each instant given in microseconds since the epoch; when all are
    whole seconds, as window starts are, formatted together (``utc_labels``)."""
    seconds, rest = np.divmod(micros, MICRO)
    if len(micros) and not np.any(rest):
        text = utc_labels(seconds).tobytes().decode("ascii")
        return [text[i : i + 20] for i in range(0, len(text), 20)]
    return [format_time(_EPOCH + timedelta(microseconds=us)) for us in micros.tolist()]


def tier_column(
    inner: QueryPlan, stat: str, column: Points, starts: Ints, labels: list[str]
) -> Points:
    """One statistic from the tier (tag sets combined) as the windows of ``inner``: local
    windows composed from its UTC grains, or the tier's UTC windows with the window
    ``start`` cuts labelled with its aligned start (as on the raw path)."""
    if not utc_aligned(inner):
        kind = "sum" if stat == "count" else stat
        return compose_windows(starts, labels, column.times, column.values, kind)
    first_start = inner.first_window_start()
    cut = first_start is not None and first_start != inner.start
    if cut:
        column.relabel_first(format_time(inner.start), format_time(first_start))  # type: ignore[arg-type]
    return column


def edge_pair(plan: QueryPlan, points: Points) -> Edges | None:
    """The statistics of the raw points at each edge of the range (inside one tier window
    each: one window or none), from the points of both read at once: those before the part
    of the range the tier answers, and those after it. None when ``first``/``last`` cannot be
    told apart: two tag sets with points at the same instant."""
    if plan.tier is None or not len(points):
        return tiers.empty(), tiers.empty()
    nanos, values = _arrays(points)
    before = nanos < _epoch_nanos(plan.tier_range[0])
    head = _edge_stats(plan, nanos[before], values[before])
    tail = _edge_stats(plan, nanos[~before], values[~before])
    return None if head is None or tail is None else (head, tail)


def _arrays(points: Points) -> tuple[tiers.Ints, tiers.Floats]:
    """The points' instants (nanoseconds since the epoch) and values as arrays: from Flux's
    CSV bytes while they are still those (``CsvCells.arrays``), else from the lists."""
    cells = points.cells()
    got = cells.arrays() if cells is not None else None
    if got is not None:
        return got
    stamps = np.array([t.rstrip("Z") for t in points.times], dtype="datetime64[ns]")
    return stamps.astype(np.int64), np.array(points.values, dtype=np.float64)


def _edge_stats(plan: QueryPlan, nanos: tiers.Ints, values: tiers.Floats) -> tiers.Windows | None:
    if plan.tier is None or not len(nanos):
        return tiers.empty()
    order = np.argsort(nanos, kind="stable")
    nanos = nanos[order]
    if plan.agg in (Agg.FIRST, Agg.LAST) and np.any(np.diff(nanos) == 0):
        return None
    return tiers.from_points(nanos // 1_000_000_000, values[order], plan.tier.seconds)


def tier_windows(
    plan: QueryPlan,
    values: Points,
    counts: Points | None,
    edges: Edges | None,
    labels: list[str],
) -> Points:
    """The plan's windows from the tier's ``values`` (for ``mean`` with ``counts``: sums and
    counts, divided here; without: the tier's own windows' means, which no edge shares) and the
    raw ``edges`` added to the first and the last window, fills applied. Edges that are windows
    of their own keep the tier's answer as InfluxDB's bytes (``bracket``)."""
    agg = plan.agg.value
    if edges is not None and plan.window is not None:
        _, inner_end = plan.tier_range
        first_label = format_time(window_start(plan.start, plan.window, plan.tz))
        last_label = format_time(window_start(inner_end, plan.window, plan.tz))
        head, tail = edges
        if counts is None:
            ends = (_edge_point(head, first_label, agg), _edge_point(tail, last_label, agg))
            bracketed = bracket(values, *ends)
            if bracketed is not None:
                return _finish(plan, bracketed, labels)
            for point, at_start in zip(ends, (True, False), strict=True):
                if point is not None:
                    values = add_edge(values, *point, agg, at_start)
        else:  # mean: the sums and counts of the edges
            for edge, label, at_start in ((head, first_label, True), (tail, last_label, False)):
                if len(edge):
                    values = add_edge(values, label, float(edge.sum[0]), "sum", at_start)
                    counts = add_edge(counts, label, int(edge.count[0]), "count", at_start)
    points = divide(values, counts) if counts is not None else values
    return _finish(plan, points, labels)


def _edge_point(edge: tiers.Windows, label: str, agg: str) -> tuple[str, Value] | None:
    """An edge's window (``label``) and its ``agg`` (an int for ``count``), or None when the
    edge holds no point."""
    if len(edge) == 0:
        return None
    if agg == "count":
        return label, int(edge.count[0])
    stat = edge.mean[0] if agg == "mean" else getattr(edge, agg)[0]
    return label, float(stat)


def tier_stddev(
    plan: QueryPlan,
    rows: TierRows | tiers.Windows,
    edges: Edges | None,
    starts: Ints,
    labels: list[str],
) -> Points:
    """The plan's sample standard deviations, merged from the tier's rows (count, sum, m2; as
    lists or arrays) and the raw ``edges``' statistics, fills applied."""
    parts = rows if isinstance(rows, tiers.Windows) else tier_windows_of(rows)
    # the edges after the rows: merged in that order (``stddev_windows`` keeps it per window)
    joined = tiers.stacked(parts, *(edges or ()))
    return _finish(plan, stddev_windows(joined, starts, labels), labels)


def _finish(plan: QueryPlan, points: Points, labels: list[str]) -> Points:
    if plan.fill is not Fill.NONE:
        points = fill_windows(points, labels, plan.fill.value, plan.agg.value)
    points.tables = 1
    points.source = plan.source
    return points
