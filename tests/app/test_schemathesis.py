"""Schemathesis against the live API's own OpenAPI schema: generated requests (valid and not) to
every operation, over a real uvicorn process and a real influxd. No 5xx, and every response
matches the schema (status codes, content types, bodies, headers); invalid bearer tokens are
refused; invalid data is rejected with 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.result import Err, Result

from app.query.plan import iana_zones
from tests.app.conftest import LiveApi, start_live_api, stop_live_api
from tests.conftest import InfluxServer

EXAMPLES = 60
TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def _ok(result: Result[T, E]) -> T:
    """The value of a schemathesis result, or its error raised."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


@pytest.fixture(scope="module")
def auth_live_api(
    influx: InfluxServer, api_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    """The schema promises bearer auth on /v1: test the API as deployed, with it on."""
    log = tmp_path_factory.mktemp("api-st") / "api.log"
    live = start_live_api({**influx.env(), "INFLUX_BUCKET": api_bucket, "API_TOKENS": TOKEN}, log)
    yield live
    stop_live_api(live)


def test_every_operation_answers_within_its_schema(auth_live_api: LiveApi) -> None:
    live_api = auth_live_api
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    operations = [_ok(result) for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/series",
        "/v1/series/{name}",
        "/v1/series/{name}/data",
        "/v1/data",
        "/healthz",
        "/readyz",
    }
    names = [
        s["name"] for s in httpx.get(f"{live_api.url}/v1/series", headers=AUTH).json()["series"]
    ]
    # Random path names would almost all be 404s: steer most cases onto real series.
    known = st.sampled_from([*names, "no_such_series"])
    # Random RFC 3339 pairs are nearly always out of range or reversed: most cases get a range
    # around the data instead, the rest keep what schemathesis made.
    ranges = st.one_of(
        st.tuples(
            st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2021, 12, 31)),
            st.sampled_from([timedelta(hours=1), timedelta(days=1), timedelta(days=30)]),
        ).map(lambda sd: (f"{sd[0]:%Y-%m-%dT%H:%M:%S}Z", f"{sd[0] + sd[1]:%Y-%m-%dT%H:%M:%S}Z")),
        st.none(),
    )
    # Real zones, folders and files of the zone database that are not zones, and no zone.
    zones = st.one_of(
        st.none(),
        st.sampled_from(sorted(iana_zones())),
        st.sampled_from(["Europe", "Etc", "localtime", "posixrules", "Factory", "A" * 300]),
    )
    # Parameters no route takes, empty values of real ones.
    extras = st.one_of(
        st.none(),
        st.sampled_from([("aggregate", "sum"), ("limit", "10"), ("agg", ""), ("tz", "")]),
    )
    for op in operations:

        @given(
            op.as_strategy(), known, st.lists(known, min_size=1, max_size=3), ranges, zones, extras
        )
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(
            case: schemathesis.Case[Any],
            name: str,
            several: list[str],
            span: tuple[str, str] | None,
            zone: str | None,
            extra: tuple[str, str] | None,
        ) -> None:
            if case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = name
            if case.query and "series" in case.query:
                case.query["series"] = several
            if span is not None and case.query is not None and "start" in case.query:
                case.query["start"], case.query["end"] = span
            if zone is not None and case.query is not None and "start" in case.query:
                case.query["tz"] = zone
            if extra is not None and case.path.startswith("/v1"):
                case.query = {**(case.query or {}), extra[0]: extra[1]}
            case.call_and_validate(
                headers=AUTH,
                timeout=60,
                # Cross-parameter rules (end after start, the point and scan caps, a valid
                # window grammar) make some schema-valid requests 422 by design.
                excluded_checks=[positive_data_acceptance],
            )

        check()
