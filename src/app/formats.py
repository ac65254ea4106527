"""Points -> JSON, CSV or NDJSON bytes. Pure; CSV and NDJSON come as chunk iterators to stream."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from app.points import Points, Value, strictly_increasing
from app.query.plan import Fill, QueryPlan, format_time

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


# Flux's annotation-free CSV for `keep(columns: ["_time", "_value"])`: the two orders it writes.
_TIME_FIRST = ",result,table,_time,_value"
_VALUE_FIRST = ",result,table,_value,_time"
_ROW = re.compile(r"^,[^,\r\n]*,[^,\r\n]*,([^,\r\n]*),([^,\r\n]*)\r?$", re.MULTILINE)
_FIRST_CELL = re.compile(r"^,[^,\r\n]*,[^,\r\n]*,([^,\r\n]*),", re.MULTILINE)
_SECOND_CELL = re.compile(r"^,[^,\r\n]*,[^,\r\n]*,[^,\r\n]*,([^,\r\n]*)\r?$", re.MULTILINE)
_NOT_JSON = ('"value":}', '"value":NaN}', '"value":+Inf}', '"value":-Inf}', '"value":Inf}')


def series_json_from_flux(plan: QueryPlan, meta: SeriesMeta, text: str) -> tuple[bytes, int] | None:
    """The JSON body of one series straight from InfluxDB's CSV, and its number of points.

    The rows become `{"time":..,"value":..}` in one regular-expression pass, without a Python
    object per point: the common case, several times faster than parsing. None when the answer
    needs the general path (`points.parse_flux_csv`): another shape or several blocks, labels
    not strictly increasing (a series under several tag sets), no rows while empty windows are
    wanted, or linear fill.
    """
    if plan.fill is Fill.LINEAR and plan.window is not None:
        return None
    newline = text.find("\n")
    head = (text[:newline] if newline >= 0 else text).rstrip("\r")
    body = text[newline + 1 :] if newline >= 0 else ""
    if head == _TIME_FIRST:
        times, template = _FIRST_CELL.findall(body), r'{"time":"\1","value":\2}'
    elif head == _VALUE_FIRST:
        times, template = _SECOND_CELL.findall(body), r'{"time":"\2","value":\1}'
    elif head == "" and body.strip() == "":
        times, template = [], ""
    else:
        return None
    if ",result," in body or "error" in body or not strictly_increasing(times):
        return None
    if not times and plan.window is not None and plan.fill is not Fill.NONE:
        return None
    rows = _ROW.sub(template, body) if times else ""
    for bad in _NOT_JSON:
        if bad in rows:
            rows = rows.replace(bad, '"value":null}')
    array = ",".join(rows.split())
    first_start = plan.first_window_start()
    if times and first_start is not None and first_start != plan.start:
        # The window cut by `start` is labelled with `start` by Flux: use its aligned start.
        old = format_time(plan.start)
        if times[0] == old:
            array = array.replace(f'"time":"{old}"', f'"time":"{format_time(first_start)}"', 1)
    prefix = orjson.dumps({"series": meta.name, "unit": meta.unit, **header(plan)})
    return prefix[:-1] + b',"points":[' + array.encode() + b"]}", len(times)


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
