"""Query results as columns of window labels and values, and what is done to them after Flux.

Pure: Flux's CSV text in, points out. Times stay the RFC 3339 strings InfluxDB wrote (UTC, `Z`),
which is already the response format, so the common path never builds a datetime per point.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.errors import InfluxRejected

Value = float | int | None


@dataclass
class Points:
    """One series' points: `times[i]` labels `values[i]`."""

    times: list[str] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    tables: int = 0  # how many Flux tables (series keys) the rows came from

    def __len__(self) -> int:
        return len(self.times)


def parse_flux_csv(text: str, *, integer: bool = False) -> Points:
    """Rows of Flux's annotation-free CSV with `_time` and `_value` columns."""
    out = Points()
    times, values = out.times, out.values
    i_time = i_value = i_table = -1
    last_table: str | None = None
    tables = 0
    convert = int if integer else float
    for line in text.splitlines():
        if not line:
            continue
        cells = line.split(",")
        if i_time < 0 or (len(cells) > 1 and cells[1] in ("result", "error")):
            if "error" in cells:
                raise InfluxRejected("InfluxDB reported an error while running the query")
            try:
                i_time, i_value, i_table = (
                    cells.index("_time"),
                    cells.index("_value"),
                    cells.index("table"),
                )
            except ValueError:
                raise InfluxRejected("unexpected result columns from InfluxDB") from None
            continue
        table = cells[i_table]
        if table != last_table:
            tables += 1
            last_table = table
        times.append(cells[i_time])
        raw = cells[i_value]
        values.append(convert(raw) if raw else None)
    out.tables = tables
    return out


def to_instant(text: str) -> datetime:
    """An RFC 3339 UTC label as InfluxDB writes it, to a datetime."""
    if len(text) > 27:  # nanoseconds: Python keeps microseconds
        text = text[:26] + "Z"
    return datetime.fromisoformat(text).astimezone(UTC)


def fill_linear(points: Points) -> Points:
    """Nulls between two values interpolated in time; leading and trailing nulls stay null."""
    values = points.values
    known = [i for i, v in enumerate(values) if v is not None and not _nan(v)]
    if len(known) < 2 or len(known) == len(values):
        return points
    seconds = [to_instant(t).timestamp() for t in points.times]
    filled: list[Value] = list(values)
    for left, right in itertools.pairwise(known):
        if right - left < 2:
            continue
        v0, v1 = float(values[left] or 0), float(values[right] or 0)
        t0, t1 = seconds[left], seconds[right]
        for i in range(left + 1, right):
            filled[i] = v0 + (v1 - v0) * (seconds[i] - t0) / (t1 - t0)
    return Points(points.times, filled, points.tables)


def align(columns: list[Points]) -> tuple[list[str], list[list[Value]]]:
    """Several series on one time axis: every label any series has, null where one lacks it."""
    labels: set[str] = set()
    for col in columns:
        labels.update(col.times)
    # Labels of whole seconds sort as strings; anything finer is compared as instants.
    whole = all(len(t) == 20 for t in labels)
    axis = sorted(labels) if whole else sorted(labels, key=to_instant)
    index = {t: i for i, t in enumerate(axis)}
    rows: list[list[Value]] = [[None] * len(columns) for _ in axis]
    for j, col in enumerate(columns):
        for t, v in zip(col.times, col.values, strict=True):
            rows[index[t]][j] = v
    return axis, rows


def _nan(v: float | int) -> bool:
    return isinstance(v, float) and math.isnan(v)
