"""What the API must answer, computed independently with pandas from the rows the tests wrote."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

AGGS: dict[str, Callable[[Any], Any]] = {
    "mean": lambda g: g.mean(),
    "min": lambda g: g.min(),
    "max": lambda g: g.max(),
    "sum": lambda g: g.sum(min_count=1),  # an empty window has no sum
    "count": lambda g: g.count(),
    "first": lambda g: g.first(),
    "last": lambda g: g.last(),
    "median": lambda g: g.median(),
    "stddev": lambda g: g.std(ddof=1),  # Flux's default: the sample deviation
}
_RULES = {"s": "s", "m": "min", "h": "h", "d": "D"}


def rule(resolution: str) -> str:
    return resolution[:-1] + _RULES[resolution[-1]]


def seconds(resolution: str) -> int:
    """A response's `resolution` (`30s`, `15m`, `1h`, `1d`, `1w`) in seconds."""
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[resolution[-1]]
    return int(resolution[:-1]) * unit


def label(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def windows(
    values: pd.Series,
    start: str,
    end: str,
    resolution: str,
    agg: str,
    fill: str = "none",
    tz: str | None = None,
) -> list[tuple[str, float | None]]:
    """(window start, value) pairs as the API should return them."""
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    rows = values[(values.index >= t0) & (values.index < t1)]
    last = t1 - pd.Timedelta(1, "ns")
    if tz is not None and seconds(resolution) < 86400:
        return _local_clock_windows(rows, t0, t1, seconds(resolution), agg, fill, tz)
    if tz is not None and resolution == "1d":
        rows = rows.tz_convert(tz)
        grouped = rows.resample("1D")
        axis = pd.date_range(
            t0.tz_convert(tz).normalize(), last.tz_convert(tz).normalize(), freq="D"
        )
    else:
        r = rule(resolution)
        # Epoch-aligned windows; days in UTC are the same as windows of 24 hours.
        r = "24h" if r == "1D" else r
        grouped = rows.resample(r, origin="epoch")
        axis = pd.date_range(t0.floor(r), last.floor(r), freq=r)
    return _answer(grouped, axis, agg, fill)


def _answer(
    grouped: Any, axis: pd.DatetimeIndex, agg: str, fill: str
) -> list[tuple[str, float | None]]:
    """Each window of ``axis`` aggregated, then filled as the API's ``fill`` says."""
    result = AGGS[agg](grouped).reindex(axis)
    counts = grouped.count().reindex(axis, fill_value=0)
    if agg == "count":
        result = counts.astype(float)
    if fill == "none":
        result = result[counts > 0]
    elif fill == "previous":
        result = result.ffill()
    elif fill == "linear":
        result = result.interpolate(method="time", limit_area="inside")
    return [(label(ts), None if math.isnan(v) else float(v)) for ts, v in result.items()]


def raw(values: pd.Series, start: str, end: str) -> list[tuple[str, float]]:
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    rows = values[(values.index >= t0) & (values.index < t1)]
    return [(label(ts), float(v)) for ts, v in zip(rows.index, rows, strict=True)]


def same(got: list[dict[str, Any]], want: Sequence[tuple[str, float | None]]) -> None:
    """Equal labels, and values equal to float rounding (sums may add in another order)."""
    got_times, want_times = [p["time"] for p in got], [t for t, _ in want]
    assert got_times == want_times, (
        f"only got: {sorted(set(got_times) - set(want_times))[:5]}, "
        f"only wanted: {sorted(set(want_times) - set(got_times))[:5]}"
    )
    for point, (t, v) in zip(got, want, strict=True):
        if v is None:
            assert point["value"] is None, t
        else:
            assert point["value"] is not None, t
            assert math.isclose(point["value"], v, rel_tol=1e-9, abs_tol=1e-9), (t, point, v)


def local_clock_starts(t0: pd.Timestamp, t1: pd.Timestamp, step: int, tz: str) -> pd.DatetimeIndex:
    """Window starts by definition, on a minute grid: the instants whose local wall-clock time,
    counted from the local 1970-01-01, is a multiple of the window, or where the clock jumps
    forward over such a time; the first at or before t0."""
    grid = pd.date_range(
        t0.floor("min") - pd.Timedelta(hours=14), t1, freq="1min", inclusive="left"
    )
    wall = grid.tz_convert(tz).tz_localize(None)
    since = ((wall - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)).to_numpy()
    before = np.concatenate([[since[0] - 60], since[:-1]])
    # a multiple of the step strictly between the previous minute's wall time and this one's
    jumped = (since - before > 60) & ((since - 1) // step > before // step)
    starts: pd.DatetimeIndex = grid[(since % step == 0) | jumped]
    first = starts[starts <= t0][-1]
    return starts[(starts > t0) | (starts == first)]


def _local_clock_windows(
    rows: pd.Series, t0: pd.Timestamp, t1: pd.Timestamp, step: int, agg: str, fill: str, tz: str
) -> list[tuple[str, float | None]]:
    starts = local_clock_starts(t0, t1, step, tz)
    owner = starts[starts.searchsorted(rows.index, side="right") - 1]
    return _answer(rows.groupby(owner), starts, agg, fill)
