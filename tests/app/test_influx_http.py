"""The data path's own `POST /api/v2/query` body is influxdb-client's (issue 10, item 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client._base import _BaseQueryApi
from influxdb_client.domain.dialect import Dialect
from influxdb_client.domain.query import Query

from app.influx_http import literal, query_body
from app.query import flux
from app.query.plan import DataParams, build_plan


def client_body(text: str, params: dict[str, object]) -> object:
    dialect = Dialect(  # type: ignore[no-untyped-call]
        header=True, delimiter=",", annotations=[], date_time_format="RFC3339"
    )
    query = Query(  # type: ignore[no-untyped-call]
        query=text, dialect=dialect, extern=_BaseQueryApi._build_flux_ast(params)
    )
    with InfluxDBClient(url="http://unused", token="t") as client:
        return client.api_client.sanitize_for_serialization(query)


@pytest.mark.parametrize(
    "params",
    [
        {"resolution": "raw"},
        {"resolution": "15m", "agg": "median", "fill": "previous"},
        {"resolution": "1w", "tz": "Europe/Zurich"},
        {"resolution": "6h", "tz": "Asia/Kathmandu", "agg": "stddev"},
    ],
)
def test_body_equals_the_clients(params: dict[str, str]) -> None:
    plan = build_plan(
        ["f_soll_aktiv"],
        DataParams(start="2021-05-01T00:00:00.25Z", end="2021-05-09T00:00:00Z", **params),
        bucket="grid",
        max_points_cap=100_000,
    )
    q = flux.series_query(plan, "f_soll_aktiv")
    assert orjson.loads(query_body(q.text, q.params)) == client_body(q.text, q.params)


def test_literals() -> None:
    for value in (True, 7, 2.5, "x", datetime(2021, 5, 1, tzinfo=UTC), timedelta(seconds=-3)):
        got = orjson.loads(query_body("x", {"p": value}))
        assert got == client_body("x", {"p": value}), value
    with pytest.raises(TypeError):
        literal(object())
