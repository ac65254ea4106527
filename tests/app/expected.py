"""What the API must answer, computed independently with pandas from the rows the tests wrote."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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
    return [(label(ts), float(v)) for ts, v in rows.items()]


def same(got: list[dict[str, Any]], want: list[tuple[str, float | None]]) -> None:
    """Equal labels, and values equal to float rounding (sums may add in another order)."""
    assert [p["time"] for p in got] == [t for t, _ in want]
    for point, (t, v) in zip(got, want, strict=True):
        if v is None:
            assert point["value"] is None, t
        else:
            assert point["value"] is not None, t
            assert math.isclose(point["value"], v, rel_tol=1e-9, abs_tol=1e-9), (t, point, v)
