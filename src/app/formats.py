"""Points -> JSON, CSV or NDJSON bytes. Pure; CSV and NDJSON come as chunk iterators to stream."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
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
    head: dict[str, Any] = {
        "resolution": plan.resolution,
        "agg": plan.agg.value if windowed else None,
        "fill": plan.fill.value if windowed else None,
        "tz": plan.tz,
        "start": format_time(plan.start),
        "end": format_time(plan.end),
    }
    # Which data answered: `raw`, or a rollup tier (`tier:15m`), as the header X-Data-Source.
    head["source"] = plan.source
    return head


# InfluxDB's RFC 3339 labels (and the API's own): nothing in them needs escaping in JSON.
_LABELS = re.compile(r"[0-9TZ:.+-]*")


def series_json(plan: QueryPlan, meta: SeriesMeta, points: Points) -> bytes:
    """`{"series", "unit", ..., "points": [{"time", "value", "partial"}, ...]}`; NaN becomes
    null; `partial` (windows only) marks a window the range cuts."""
    body = {"series": meta.name, "unit": meta.unit, **header(plan)}
    numbers = points.json_numbers()
    if numbers is not None and _LABELS.fullmatch("".join(points.times)):
        body["points"] = orjson.Fragment(_points_text(plan, points.times, numbers))
        return orjson.dumps(body)
    body["points"] = list(_point_dicts("value", points.times, points.values, _clipped(plan)))
    return orjson.dumps(body)


def _clipped(plan: QueryPlan) -> frozenset[str] | None:
    """The labels of the cut windows; None for raw points, which have no `partial`."""
    return None if plan.window is None else plan.clipped()


def _point_dicts(
    key: str, times: Sequence[str], values: Sequence[object], clipped: frozenset[str] | None
) -> Iterator[dict[str, object]]:
    """`{"time", key, "partial"}` per label (`partial` only when ``clipped`` is not None)."""
    pairs = zip(times, values)  # noqa: B905 - same length by construction
    if clipped is None:
        return ({"time": t, key: v} for t, v in pairs)
    return ({"time": t, key: v, "partial": t in clipped} for t, v in pairs)


def _ndjson(
    plan: QueryPlan, key: str, times: Sequence[str], values: Sequence[object]
) -> Iterator[bytes]:
    """One JSON object a line, in chunks of CHUNK_ROWS lines."""
    dumps, clipped = orjson.dumps, _clipped(plan)
    for lo in range(0, len(times), CHUNK_ROWS):
        hi = lo + CHUNK_ROWS
        dicts = _point_dicts(key, times[lo:hi], values[lo:hi], clipped)
        yield b"".join(dumps(d) + b"\n" for d in dicts)


def _points_text(plan: QueryPlan, times: list[str], numbers: list[str]) -> str:
    """The `points` array of ``series_json`` from labels and values that are already JSON text
    (InfluxDB's): a fifth of the cost of a dict per point through orjson (issue 10, item 7)."""
    pairs = zip(times, numbers)  # noqa: B905 - same length by construction
    if plan.window is None:
        rows = [f'{{"time":"{t}","value":{v}}}' for t, v in pairs]
    else:
        clipped = plan.clipped()
        if clipped.isdisjoint(times[:1] + times[-1:]):  # only the first or last can be cut
            rows = [f'{{"time":"{t}","value":{v},"partial":false}}' for t, v in pairs]
        else:
            rows = [
                f'{{"time":"{t}","value":{v},"partial":{"true" if t in clipped else "false"}}}'
                for t, v in pairs
            ]
    return "[" + ",".join(rows) + "]"


def series_ndjson(plan: QueryPlan, points: Points) -> Iterator[bytes]:
    yield from _ndjson(plan, "value", points.times, points.values)


def series_csv(plan: QueryPlan, points: Points) -> Iterator[bytes]:
    windowed, clipped = plan.window is not None, plan.clipped()
    yield b"time,value,partial\n" if windowed else b"time,value\n"
    times, values = points.times, points.values
    for lo in range(0, len(times), CHUNK_ROWS):
        rows = zip(times[lo : lo + CHUNK_ROWS], values[lo : lo + CHUNK_ROWS])  # noqa: B905
        if windowed:
            text = "".join(f"{t},{_cell(v)},{_flag(t in clipped)}\n" for t, v in rows)
        else:
            text = "".join(f"{t},{_cell(v)}\n" for t, v in rows)
        yield text.encode()


def table_json(
    plan: QueryPlan, metas: list[SeriesMeta], axis: list[str], rows: list[list[Value]]
) -> bytes:
    """Several series on one axis: `"points": [{"time", "values": [a, b, ...], "partial"}]`."""
    body: dict[str, Any] = {
        "series": [{"name": m.name, "unit": m.unit} for m in metas],
        **header(plan),
    }
    body["points"] = list(_point_dicts("values", axis, rows, _clipped(plan)))
    return orjson.dumps(body)


def table_ndjson(plan: QueryPlan, axis: list[str], rows: list[list[Value]]) -> Iterator[bytes]:
    yield from _ndjson(plan, "values", axis, rows)


def table_csv(
    plan: QueryPlan, metas: list[SeriesMeta], axis: list[str], rows: list[list[Value]]
) -> Iterator[bytes]:
    windowed, clipped = plan.window is not None, plan.clipped()
    names = ",".join(m.name for m in metas)
    yield (f"time,{names},partial\n" if windowed else f"time,{names}\n").encode()
    for lo in range(0, len(axis), CHUNK_ROWS):
        pairs = zip(axis[lo : lo + CHUNK_ROWS], rows[lo : lo + CHUNK_ROWS])  # noqa: B905
        if windowed:
            text = "".join(
                f"{t},{','.join(_cell(v) for v in r)},{_flag(t in clipped)}\n" for t, r in pairs
            )
        else:
            text = "".join(t + "," + ",".join(_cell(v) for v in r) + "\n" for t, r in pairs)
        yield text.encode()


def _flag(partial: bool) -> str:
    return "true" if partial else "false"


def _cell(v: Value) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v)
