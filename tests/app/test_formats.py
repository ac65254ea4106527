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
# The range cuts the first window (10:00 to 10:15 starts before 10:07) and the last (10:30 to
# 10:45 ends after 10:40).
CLIPPED = build_plan(
    ["f"],
    DataParams(start="2021-05-02T10:07:00Z", end="2021-05-02T10:40:00Z", resolution="15m"),
    bucket="b",
    max_points_cap=1000,
)
RAW = build_plan(
    ["f"],
    DataParams(start="2021-05-02T10:00:00Z", end="2021-05-02T10:30:00Z", resolution="raw"),
    bucket="b",
    max_points_cap=1000,
)
THREE = Points(
    ["2021-05-02T10:00:00Z", "2021-05-02T10:15:00Z", "2021-05-02T10:30:00Z"], [1.0, 2.0, 3.0]
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
        "source": "raw",
        "points": [
            {"time": "2021-05-02T10:00:00Z", "value": 50.0, "partial": False},
            {"time": "2021-05-02T10:15:00Z", "value": None, "partial": False},
        ],
    }


def test_series_csv_and_ndjson() -> None:
    assert b"".join(formats.series_csv(PLAN, POINTS)) == (
        b"time,value,partial\n2021-05-02T10:00:00Z,50.0,false\n2021-05-02T10:15:00Z,,false\n"
    )
    lines = b"".join(formats.series_ndjson(PLAN, POINTS)).splitlines()
    assert [orjson.loads(x) for x in lines] == [
        {"time": "2021-05-02T10:00:00Z", "value": 50.0, "partial": False},
        {"time": "2021-05-02T10:15:00Z", "value": None, "partial": False},
    ]


def test_windows_the_range_cuts_are_partial_in_every_format() -> None:
    """[10:07, 10:40) at 15m: 10:00 lost 7 minutes and 10:30 lost 5; 10:15 is whole."""
    assert CLIPPED.clipped() == {"2021-05-02T10:00:00Z", "2021-05-02T10:30:00Z"}
    flags = [False, False, False]
    flags[0] = flags[2] = True
    body = orjson.loads(formats.series_json(CLIPPED, formats.SeriesMeta("f", "Hz"), THREE))
    assert [p["partial"] for p in body["points"]] == flags
    lines = b"".join(formats.series_ndjson(CLIPPED, THREE)).splitlines()
    assert [orjson.loads(x)["partial"] for x in lines] == flags
    csv = b"".join(formats.series_csv(CLIPPED, THREE)).decode().splitlines()
    assert [row.split(",")[2] for row in csv[1:]] == ["true", "false", "true"]
    rows: list[list[float | int | None]] = [[1.0], [2.0], [3.0]]
    table = orjson.loads(
        formats.table_json(CLIPPED, [formats.SeriesMeta("f", None)], THREE.times, rows)
    )
    assert [p["partial"] for p in table["points"]] == flags
    lines = b"".join(formats.table_ndjson(CLIPPED, THREE.times, rows)).splitlines()
    assert [orjson.loads(x)["partial"] for x in lines] == flags
    csv = (
        b"".join(formats.table_csv(CLIPPED, [formats.SeriesMeta("f", None)], THREE.times, rows))
        .decode()
        .splitlines()
    )
    assert csv[0] == "time,f,partial"
    assert [row.split(",")[2] for row in csv[1:]] == ["true", "false", "true"]


def test_raw_points_have_no_windows_to_mark() -> None:
    assert RAW.clipped() == frozenset()
    body = orjson.loads(formats.series_json(RAW, formats.SeriesMeta("f", "Hz"), POINTS))
    assert all(set(p) == {"time", "value"} for p in body["points"])
    assert b"".join(formats.series_csv(RAW, POINTS)).startswith(b"time,value\n")


def test_streams_come_in_chunks() -> None:
    n = formats.CHUNK_ROWS * 2 + 1
    many = Points(["2021-05-02T10:00:00Z"] * n, [1] * n)
    assert len(list(formats.series_csv(PLAN, many))) == 1 + 3
    assert len(list(formats.series_ndjson(PLAN, many))) == 3


def test_tables() -> None:
    metas = [formats.SeriesMeta("a", "Hz"), formats.SeriesMeta("b", None)]
    axis = ["2021-05-02T10:00:00Z"]
    rows: list[list[float | int | None]] = [[1.0, None]]
    body = orjson.loads(formats.table_json(PLAN, metas, axis, rows))
    assert body["series"] == [{"name": "a", "unit": "Hz"}, {"name": "b", "unit": None}]
    assert body["points"] == [
        {"time": "2021-05-02T10:00:00Z", "values": [1.0, None], "partial": False}
    ]
    assert b"".join(formats.table_csv(PLAN, metas, axis, rows)) == (
        b"time,a,b,partial\n2021-05-02T10:00:00Z,1.0,,false\n"
    )
    assert orjson.loads(b"".join(formats.table_ndjson(PLAN, axis, rows))) == {
        "time": "2021-05-02T10:00:00Z",
        "values": [1.0, None],
        "partial": False,
    }
