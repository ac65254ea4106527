"""Points -> JSON, CSV or NDJSON bytes. Pure; CSV and NDJSON come as chunk iterators to stream."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from app.points import Cells, CsvCells, Mask, Points, Value, byte_windows
from app.query.plan import QueryPlan, format_time

CHUNK_ROWS = 5_000
# A part of a response's bytes, joined with the others in one copy.
Part = bytes | memoryview


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
    cells = points.cells()
    spliced = None if cells is None else _points_spliced(plan, cells)
    if spliced is not None:  # one copy of the array's parts: `"points":null}` is the end
        body["points"] = None
        return b"".join([orjson.dumps(body)[: -len(b"null}")], *spliced, b"}"])
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
        # every label looked at, as the other formats do (in order, only the first and the
        # last can be cut; tag sets that Flux could not merge come in another order)
        if clipped.isdisjoint(times):
            rows = [f'{{"time":"{t}","value":{v},"partial":false}}' for t, v in pairs]
        else:
            rows = [
                f'{{"time":"{t}","value":{v},"partial":{"true" if t in clipped else "false"}}}'
                for t, v in pairs
            ]
    return "[" + ",".join(rows) + "]"


def _labels_allowed(labels: Cells) -> bool:
    """Whether every label matches ``_LABELS`` (`[0-9TZ:.+-]*`; the padding is `0`)."""
    matrix = labels.matrix
    # from `+` to `:`: `+ , - . / 0-9 :`, of which `,` and `/` are not allowed
    ranged = matrix - np.uint8(ord("+")) <= ord(":") - ord("+")
    if not np.all(ranged | (matrix == ord("T")) | (matrix == ord("Z"))):
        return False
    return not (np.any(matrix == ord(",")) or np.any(matrix == ord("/")))


def _partial(plan: QueryPlan, labels: Cells) -> Mask:
    """Per row, whether its label is one of the windows the range cuts."""
    return _matching(labels, [label.encode() for label in plan.clipped()])


def _matching(labels: Cells, texts: list[bytes]) -> Mask:
    """Per row, whether its label is one of ``texts``."""
    found = np.zeros(len(labels.lengths), dtype=np.bool_)
    for text in texts:
        found |= labels.matching(text)
    return found


# A point's end and the comma after it, with `partial` and without (a point of raw data).
_TAIL, _TAIL_TRUE, _TAIL_RAW = b',"partial":false},', b',"partial":true},', b"},"
_HEAD, _KEY = b'{"time":"', b'","value":'


def _points_spliced(plan: QueryPlan, cells: CsvCells) -> list[Part] | None:
    """``_points_text`` of points that are still Flux's CSV (``CsvCells``), as bytes, with no
    Python object per point (issue 10, item 7).

    The response's bytes are laid out first, each point as long as its value makes it. What
    lies between two values (a point's end, the next one's label and keys) is one row of a
    byte matrix. Each value is copied to its place with the bytes before it in the CSV, as
    many as the longest value has more, and then the rows of the matrix over those. None when
    that cannot be (values whose lengths differ by more than a label and its keys, labels of
    several lengths) or a label has a byte ``_LABELS`` does not allow: ``_points_text``
    answers then. The array comes in parts (pieces read while the answer arrived), joined by
    the caller."""
    if cells.pieces and plan.window is not None:
        return _pieces_spliced(plan, cells.pieces)
    if not len(cells):
        return None
    if plan.window is None:
        done = _spliced(cells, _TAIL_RAW, np.zeros(len(cells), dtype=np.bool_))
    else:
        done = _spliced(cells, _TAIL, _partial(plan, cells.labels()))
    return None if done is None else [done]


def prerender(piece: CsvCells) -> None:
    """A piece's points (``CsvReader``) as JSON windows none of which is partial, made while
    the rest of the answer arrives; ``_points_spliced`` takes them (``CsvCells.rendered``)."""
    piece.rendered = _spliced(piece, _TAIL, np.zeros(len(piece), dtype=np.bool_))


def _pieces_spliced(plan: QueryPlan, pieces: list[CsvCells]) -> list[Part] | None:
    """``_points_spliced`` of windows read in pieces: the pieces' JSON arrays as parts of one,
    each made while the answer arrived (``prerender``) unless it holds a partial window."""
    clipped = [label.encode() for label in plan.clipped()]
    parts: list[Part] = [b"["]
    for piece in pieces:
        partial = _matching(piece.labels(), clipped)
        done = piece.rendered
        if done is None or np.any(partial):
            done = _spliced(piece, _TAIL, partial)
        if done is None:
            return None
        parts += [memoryview(done)[1:-1], b","]
    parts[-1] = b"]"
    return parts


def _spliced(cells: CsvCells, tail: bytes, partial: Mask) -> bytes | None:
    """The JSON array of the points of ``cells`` (at least one), each ended by ``tail``
    (``partial`` ones by ``_TAIL_TRUE``); None as ``_points_spliced`` (labels of several
    lengths among them)."""
    labels = cells.labels()
    start, stop = cells.value_spans
    lengths = stop - start
    if labels.pad is not None or not _labels_allowed(labels):
        return None
    before = len(_HEAD) + labels.matrix.shape[1] + len(_KEY)  # a point's bytes before its value
    widest = int(lengths.max())
    if widest - int(lengths.min()) > before or int((stop - widest).min()) < 0:
        return None
    # between[i]: the end of point i - 1 (of none for i = 0: `[` last), point i up to its value
    between = np.empty((len(cells) + 1, len(tail) + before), dtype=np.uint8)
    between[:, : len(tail)] = np.frombuffer(tail, dtype=np.uint8)
    between[0, len(tail) - 1] = ord("[")
    if np.any(partial):  # `true` is a byte shorter: the row starts on the value's last byte
        cut = np.flatnonzero(partial)
        between[cut + 1, 1 : len(tail)] = np.frombuffer(_TAIL_TRUE, dtype=np.uint8)
        between[cut + 1, 0] = cells.data[stop[cut] - 1]
    between[:-1, len(tail) : len(tail) + len(_HEAD)] = np.frombuffer(_HEAD, dtype=np.uint8)
    between[:-1, len(tail) + len(_HEAD) : -len(_KEY)] = labels.matrix
    between[:-1, -len(_KEY) :] = np.frombuffer(_KEY, dtype=np.uint8)
    ends = np.cumsum(before + lengths + len(tail) - partial)  # after `[` and what is before it
    at = np.append(0, ends)  # where each row of `between` goes
    out = np.empty(int(ends[-1]) + len(tail) + before, dtype=np.uint8)
    values = byte_windows(cells.data, widest)[stop - widest]
    byte_windows(out, widest)[ends + partial - widest] = values
    byte_windows(out, between.shape[1])[at] = between
    out[ends[-1] + len(tail) - 1] = ord("]")  # for the comma after the last point
    done: bytes = out[len(tail) - 1 : ends[-1] + len(tail)].tobytes()
    return done


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
