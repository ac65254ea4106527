"""Points -> JSON, CSV or NDJSON bytes. Pure; CSV and NDJSON come as chunk iterators to stream."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from app.points import Points, Value
from app.query.plan import QueryPlan, format_time

CHUNK_ROWS = 5_000


@dataclass(frozen=True)
class SeriesMeta:
    name: str
    unit: str | None


def header(plan: QueryPlan) -> dict[str, Any]:
    """What a response says about the query it answers."""
    windowed = plan.window is not None
    return {
        "resolution": plan.resolution,
        "agg": plan.agg.value if windowed else None,
        "fill": plan.fill.value if windowed else None,
        "tz": plan.tz,
        "start": format_time(plan.start),
        "end": format_time(plan.end),
    }


def series_json(plan: QueryPlan, meta: SeriesMeta, points: Points) -> bytes:
    """`{"series", "unit", ..., "points": [{"time", "value"}, ...]}`; NaN becomes null."""
    body = {"series": meta.name, "unit": meta.unit, **header(plan)}
    body["points"] = [{"time": t, "value": v} for t, v in zip(points.times, points.values)]  # noqa: B905 - same length by construction
    return orjson.dumps(body)


def series_ndjson(points: Points) -> Iterator[bytes]:
    dumps = orjson.dumps
    times, values = points.times, points.values
    for lo in range(0, len(times), CHUNK_ROWS):
        yield b"".join(
            dumps({"time": t, "value": v}) + b"\n"
            for t, v in zip(times[lo : lo + CHUNK_ROWS], values[lo : lo + CHUNK_ROWS])  # noqa: B905
        )


def series_csv(points: Points) -> Iterator[bytes]:
    yield b"time,value\n"
    times, values = points.times, points.values
    for lo in range(0, len(times), CHUNK_ROWS):
        yield "".join(
            f"{t},{_cell(v)}\n"
            for t, v in zip(times[lo : lo + CHUNK_ROWS], values[lo : lo + CHUNK_ROWS])  # noqa: B905
        ).encode()


def table_json(
    plan: QueryPlan, metas: list[SeriesMeta], axis: list[str], rows: list[list[Value]]
) -> bytes:
    """Several series on one axis: `"points": [{"time", "values": [a, b, ...]}]`."""
    body: dict[str, Any] = {
        "series": [{"name": m.name, "unit": m.unit} for m in metas],
        **header(plan),
    }
    body["points"] = [{"time": t, "values": r} for t, r in zip(axis, rows)]  # noqa: B905
    return orjson.dumps(body)


def table_ndjson(axis: list[str], rows: list[list[Value]]) -> Iterator[bytes]:
    dumps = orjson.dumps
    for lo in range(0, len(axis), CHUNK_ROWS):
        yield b"".join(
            dumps({"time": t, "values": r}) + b"\n"
            for t, r in zip(axis[lo : lo + CHUNK_ROWS], rows[lo : lo + CHUNK_ROWS])  # noqa: B905
        )


def table_csv(metas: list[SeriesMeta], axis: list[str], rows: list[list[Value]]) -> Iterator[bytes]:
    yield ("time," + ",".join(m.name for m in metas) + "\n").encode()
    for lo in range(0, len(axis), CHUNK_ROWS):
        yield "".join(
            t + "," + ",".join(_cell(v) for v in r) + "\n"
            for t, r in zip(axis[lo : lo + CHUNK_ROWS], rows[lo : lo + CHUNK_ROWS])  # noqa: B905
        ).encode()


def _cell(v: Value) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v)
