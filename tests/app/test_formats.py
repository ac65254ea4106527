"""Unit tests of the response bodies."""

from __future__ import annotations

import orjson
import pytest

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


def _plan(**kw: str):  # type: ignore[no-untyped-def]
    params = {"start": "2021-05-02T10:07:00Z", "end": "2021-05-02T11:00:00Z", "resolution": "15m"}
    return build_plan(["f"], DataParams(**{**params, **kw}), bucket="b", max_points_cap=1000)


_TIME_FIRST = (
    ",result,table,_time,_value\r\n"
    ",_result,0,2021-05-02T10:07:00Z,50\r\n"
    ",_result,0,2021-05-02T10:15:00Z,\r\n"
    ",_result,0,2021-05-02T10:30:00Z,49.99\r\n"
    ",_result,0,2021-05-02T10:45:00Z,NaN\r\n\r\n"
)
_VALUE_FIRST = (
    ",result,table,_value,_time\r\n"
    ",_result,0,3,2021-05-02T10:07:00Z\r\n"
    ",_result,0,0,2021-05-02T10:15:00Z\r\n"
    ",_result,0,-2.5e-05,2021-05-02T10:30:00Z\r\n\r\n"
)


@pytest.mark.parametrize("text", [_TIME_FIRST, _VALUE_FIRST])
@pytest.mark.parametrize("fill", ["none", "null", "previous"])
def test_json_straight_from_flux_equals_the_general_path(text: str, fill: str) -> None:
    from app.points import parse_flux_csv

    plan = _plan(fill=fill)
    meta = formats.SeriesMeta("f", "Hz")
    fast = formats.series_json_from_flux(plan, meta, text)
    assert fast is not None
    body, count = fast
    points = parse_flux_csv(text)
    points.times[0] = "2021-05-02T10:00:00Z"  # what the store does for the cut first window
    assert count == len(points)
    assert orjson.loads(body) == orjson.loads(formats.series_json(plan, meta, points))
    assert orjson.loads(body)["points"][0]["time"] == "2021-05-02T10:00:00Z"


@pytest.mark.parametrize(
    ("text", "kw"),
    [
        (_TIME_FIRST, {"fill": "linear"}),  # interpolated by the general path
        ("", {"fill": "null"}),  # windows to make up
        (_TIME_FIRST + _TIME_FIRST, {}),  # two blocks
        (_TIME_FIRST.replace("10:30", "10:00"), {}),  # labels not increasing: several tag sets
        (",result,table,_start,_value\r\n,_result,0,x,1\r\n", {}),  # another shape
        ("error,reference\r\nboom,\r\n", {}),
    ],
)
def test_json_straight_from_flux_declines(text: str, kw: dict[str, str]) -> None:
    assert formats.series_json_from_flux(_plan(**kw), formats.SeriesMeta("f", None), text) is None


def test_json_straight_from_flux_empty() -> None:
    fast = formats.series_json_from_flux(_plan(), formats.SeriesMeta("f", None), "\r\n")
    assert fast is not None
    assert orjson.loads(fast[0])["points"] == []
    assert fast[1] == 0
