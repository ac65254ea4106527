"""Unit tests of the response bodies."""

from __future__ import annotations

import orjson

from app import formats
from app.points import Points
from app.query.plan import DataParams, build_plan

PLAN = build_plan(
    ["f"],
    DataParams(start="2021-05-02T10:00:00Z", end="2021-05-02T10:30:00Z", resolution="15m"),
    bucket="b",
    max_points_cap=1000,
)
POINTS = Points(["2021-05-02T10:00:00Z", "2021-05-02T10:15:00Z"], [50.0, float("nan")])


def test_series_json() -> None:
    body = orjson.loads(formats.series_json(PLAN, formats.SeriesMeta("f", "Hz"), POINTS))
    assert body == {
        "series": "f",
        "unit": "Hz",
        "resolution": "15m",
        "agg": "mean",
        "fill": "none",
        "tz": None,
        "start": "2021-05-02T10:00:00Z",
        "end": "2021-05-02T10:30:00Z",
        "points": [
            {"time": "2021-05-02T10:00:00Z", "value": 50.0},
            {"time": "2021-05-02T10:15:00Z", "value": None},
        ],
    }


def test_series_csv_and_ndjson() -> None:
    assert b"".join(formats.series_csv(POINTS)) == (
        b"time,value\n2021-05-02T10:00:00Z,50.0\n2021-05-02T10:15:00Z,\n"
    )
    lines = b"".join(formats.series_ndjson(POINTS)).splitlines()
    assert [orjson.loads(x) for x in lines] == [
        {"time": "2021-05-02T10:00:00Z", "value": 50.0},
        {"time": "2021-05-02T10:15:00Z", "value": None},
    ]


def test_streams_come_in_chunks() -> None:
    n = formats.CHUNK_ROWS * 2 + 1
    many = Points(["2021-05-02T10:00:00Z"] * n, [1] * n)
    assert len(list(formats.series_csv(many))) == 1 + 3
    assert len(list(formats.series_ndjson(many))) == 3


def test_tables() -> None:
    metas = [formats.SeriesMeta("a", "Hz"), formats.SeriesMeta("b", None)]
    axis = ["2021-05-02T10:00:00Z"]
    rows: list[list[float | int | None]] = [[1.0, None]]
    body = orjson.loads(formats.table_json(PLAN, metas, axis, rows))
    assert body["series"] == [{"name": "a", "unit": "Hz"}, {"name": "b", "unit": None}]
    assert body["points"] == [{"time": "2021-05-02T10:00:00Z", "values": [1.0, None]}]
    assert b"".join(formats.table_csv(metas, axis, rows)) == (
        b"time,a,b\n2021-05-02T10:00:00Z,1.0,\n"
    )
    assert orjson.loads(b"".join(formats.table_ndjson(axis, rows))) == {
        "time": "2021-05-02T10:00:00Z",
        "values": [1.0, None],
    }
