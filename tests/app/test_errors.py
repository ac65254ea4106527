"""Every error case with its status and message; random parameters never 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.deps import get_store
from app.query.plan import iana_zones
from tests.app.conftest import DATA, DAY, AppClient, Series, error_of, make_settings, sent_queries
from tests.conftest import InfluxServer


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**DAY, "end": DAY["start"]}, "end: must be after start (the range is [start, end))"),
        ({**DAY, "end": "2021-04-30T00:00:00Z"}, "end: must be after start"),
        ({**DAY, "start": "2021-05-01"}, "start: not an RFC 3339 time with Z or an offset"),
        ({**DAY, "start": "2021-05-01T00:00:00"}, "start: not an RFC 3339 time"),
        ({"end": DAY["end"]}, "start: required"),
        ({**DAY, "end": "2021-02-30T00:00:00Z"}, "end: not a valid date or time"),
        ({**DAY, "resolution": "5 minutes"}, "resolution: '5 minutes' is not raw, auto or a"),
        ({**DAY, "resolution": "1mo"}, "resolution: '1mo' is not raw, auto or a duration"),
        ({**DAY, "agg": "avg"}, "agg: 'avg' is not one of mean, min, max, sum, count"),
        ({**DAY, "fill": "zero"}, "fill: 'zero' is not one of none, null, previous, linear"),
        ({**DAY, "tz": "Europe/Atlantis"}, "tz: unknown IANA time zone: 'Europe/Atlantis'"),
        ({**DAY, "max_points": "0"}, "max_points: must be between 1 and 100000"),
        ({**DAY, "max_points": "ten"}, "max_points: not a positive integer: 'ten'"),
        ({**DAY, "format": "xml"}, "format: 'xml' is not one of json, csv, ndjson"),
    ],
)
async def test_invalid_parameters_are_422_with_reason(
    api: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    body = await error_of(await api.get(DATA, params=params), 422, "invalid_parameter")
    assert body["message"].startswith(message)


async def test_point_cap_names_a_coarser_resolution(api: httpx.AsyncClient) -> None:
    r = await api.get(DATA, params={**DAY, "resolution": "1s", "max_points": "1000"})
    body = await error_of(r, 422, "too_many_points")
    assert body["points"] == 86400
    assert body["max_points"] == 1000
    assert body["suggested_resolution"] == "2m"
    assert "86400 points would exceed max_points=1000; resolution=2m fits" in body["message"]
    # ... and the suggestion does fit
    ok = await api.get(DATA, params={**DAY, "resolution": "2m", "max_points": "1000"})
    assert ok.status_code == 200
    assert len(ok.json()["points"]) <= 1000


async def test_default_cap_is_the_configured_one(api: httpx.AsyncClient) -> None:
    r = await api.get(
        DATA,
        params={"start": "2021-05-01T00:00:00Z", "end": "2021-05-03T00:00:00Z", "resolution": "1s"},
    )
    body = await error_of(r, 422, "too_many_points")
    assert body["max_points"] == 100_000
    assert body["suggested_resolution"] == "2s"


async def test_raw_over_the_cap(api: httpx.AsyncClient) -> None:
    r = await api.get(DATA, params={**DAY, "resolution": "raw", "max_points": "100"})
    body = await error_of(r, 422, "too_many_points")
    assert body["max_points"] == 100
    assert body["suggested_resolution"] == "15m"
    ok = await api.get(DATA, params={**DAY, "resolution": "raw", "max_points": "5000"})
    assert ok.status_code == 200
    assert 2000 < len(ok.json()["points"]) <= 2880


async def test_raw_over_the_cap_is_counted_not_read(
    api: httpx.AsyncClient, dataset: dict[str, Series]
) -> None:
    """A raw range the series' spacing says is over the cap: its points are counted in the
    storage engine and the request refused with their exact number, before any is read."""
    params = {**DAY, "resolution": "raw", "max_points": "100"}
    await api.get(DATA, params=params)  # the catalog and the series' spacing, once
    r, sent = await sent_queries(api, api.get(DATA, params=params))
    body = await error_of(r, 422, "too_many_points")
    stored = dataset["f_soll_aktiv"].index
    start, end = pd.Timestamp(DAY["start"]), pd.Timestamp(DAY["end"])
    assert body["points"] == int(((stored >= start) & (stored < end)).sum())
    assert f"{body['points']} points would exceed max_points=100" in body["message"]
    assert sent == {"count": 1}
    both = await api.get("/v1/data", params={**params, "series": ["f_soll_aktiv", "enduse"]})
    assert (await error_of(both, 422, "too_many_points"))["points"] == body["points"]


async def test_raw_range_sparser_than_its_spacing_is_read(
    api: httpx.AsyncClient, dataset: dict[str, Series]
) -> None:
    """110 minutes of a 30 s series around its 90-minute gap: the spacing says 220 points, more
    than max_points=60; the count finds fewer, and they are read and answered, every one."""
    params = {"start": "2021-05-01T05:50:00Z", "end": "2021-05-01T07:40:00Z",
              "resolution": "raw", "max_points": "60"}  # fmt: skip
    r, sent = await sent_queries(api, api.get(DATA, params=params))
    assert r.status_code == 200, r.text
    stored = dataset["f_soll_aktiv"].index
    want = stored[
        (stored >= pd.Timestamp(params["start"])) & (stored < pd.Timestamp(params["end"]))
    ]
    assert 30 < len(want) <= 60
    assert [p["time"] for p in r.json()["points"]] == [
        t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in want
    ]
    assert sent == {"count": 1, "data": 1}


@pytest.mark.parametrize(
    "url",
    [
        "/v1/series/nope",
        "/v1/series/nope/data",
        "/v1/series/bad%20name/data",
        "/v1/data",
    ],
)
async def test_unknown_series_is_404(api: httpx.AsyncClient, url: str) -> None:
    params = {**DAY, "series": ["f_soll_aktiv", "nope"]} if url == "/v1/data" else DAY
    params = {} if url == "/v1/series/nope" else params
    body = await error_of(await api.get(url, params=params), 404, "unknown_series")
    assert body["message"].startswith("unknown series: '")
    assert "nope" in body["message"] or "bad name" in body["message"]


async def test_multi_series_needs_series(api: httpx.AsyncClient) -> None:
    body = await error_of(await api.get("/v1/data", params=DAY), 422, "invalid_parameter")
    assert body["message"] == "series: at least one series is required"
    r = await api.get("/v1/data", params={**DAY, "series": ["enduse", "enduse"]})
    assert (await error_of(r, 422, "invalid_parameter"))["message"] == (
        "series: a series is listed twice"
    )


async def test_unsupported_accept_is_406(api: httpx.AsyncClient) -> None:
    r = await api.get(DATA, params=DAY, headers={"Accept": "image/png"})
    body = await error_of(r, 406, "not_acceptable")
    assert "application/json, text/csv, application/x-ndjson" in body["message"]


async def test_unknown_route_is_json_404(api: httpx.AsyncClient) -> None:
    body = await error_of(await api.get("/v2/nothing"), 404, "not_found")
    assert body["message"] == "Not Found"


@pytest.fixture(scope="module")
async def dead_api(influx: InfluxServer) -> AsyncIterator[httpx.AsyncClient]:
    """The API configured with an InfluxDB URL where nothing listens."""
    from influxdb_local import free_port

    settings = make_settings(influx, "grid", influx_url=f"http://127.0.0.1:{free_port()}")
    async with AppClient(settings) as client:
        yield client


@pytest.mark.parametrize("url", ["/v1/series", "/v1/series/f_soll_aktiv", DATA, "/v1/data"])
async def test_influx_unreachable_is_503(dead_api: httpx.AsyncClient, url: str) -> None:
    r = await dead_api.get(url, params=ROUTES[url])
    body = await error_of(r, 503, "influx_unavailable")
    assert r.headers["retry-after"] == "5"
    assert body["message"] == "InfluxDB is not reachable; retry later"


async def test_readiness_follows_influx(
    dead_api: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    down = await dead_api.get("/readyz")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"
    assert down.json()["status"] == "unavailable"
    assert (await dead_api.get("/healthz")).json() == {"status": "ok"}
    up = await api.get("/readyz")
    assert up.status_code == 200
    assert up.json() == {"status": "ready"}


async def test_wrong_influx_token_is_502(influx: InfluxServer, api_bucket: str) -> None:
    settings = make_settings(influx, api_bucket, influx_token="not-a-token")
    async with AppClient(settings) as client:
        r = await client.get("/v1/series")
    body = await error_of(r, 502, "influx_rejected")
    assert body["message"] == "InfluxDB refused the query (HTTP 401)"
    assert "not-a-token" not in r.text


async def test_unexpected_failure_is_a_bare_500(influx: InfluxServer, api_bucket: str) -> None:
    holder = AppClient(make_settings(influx, api_bucket))

    async def broken() -> None:
        raise RuntimeError("secret detail")

    holder.app.dependency_overrides[get_store] = broken
    async with holder as client:
        r = await client.get("/v1/series")
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "message": "internal error"}


# --- properties --------------------------------------------------------------------------------

_junk = st.one_of(st.none(), st.text(max_size=20))
_value = {
    "start": st.one_of(
        _junk, st.sampled_from(["2021-05-01T00:00:00Z", "2021-05-01T06:00:00+02:00"])
    ),
    "end": st.one_of(_junk, st.sampled_from(["2021-05-02T00:00:00Z", "2021-05-01T03:00:00Z"])),
    "resolution": st.one_of(
        _junk, st.sampled_from(["raw", "auto", "1s", "30s", "15m", "1d", "1w"])
    ),
    "agg": st.one_of(_junk, st.sampled_from(["mean", "median", "stddev", "count"])),
    "fill": st.one_of(_junk, st.sampled_from(["none", "null", "previous", "linear"])),
    "tz": st.one_of(
        _junk,
        st.sampled_from(["Europe/Zurich", "UTC", "Asia/Kathmandu", "America/St_Johns"]),
        st.sampled_from(sorted(iana_zones())),
        st.sampled_from(["Europe", "Etc", "localtime", "posixrules", "Factory", "../etc/passwd"]),
    ),
    "max_points": st.one_of(_junk, st.integers(-1, 200_000).map(str)),
    "format": st.one_of(_junk, st.sampled_from(["json", "csv", "ndjson"])),
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.fixed_dictionaries({}, optional=_value),
    unknown=st.dictionaries(st.sampled_from(["aggregate", "Agg", "foo", "tz ", ""]), _junk),
    series=st.one_of(st.sampled_from(["f_soll_aktiv", "enduse", "counter"]), st.text(max_size=12)),
    accept=st.one_of(st.none(), st.sampled_from(["text/csv", "*/*", "image/gif", "x;q=y"])),
    multi=st.booleans(),
)
async def test_random_parameters_never_500(
    api: httpx.AsyncClient,
    params: dict[str, str | None],
    unknown: dict[str, str | None],
    series: str,
    accept: str | None,
    multi: bool,
) -> None:
    query = {k: v for k, v in {**unknown, **params}.items() if v is not None}
    headers = {"Accept": accept} if accept else {}
    if multi:
        r = await api.get(
            "/v1/data", params={**query, "series": [series, "enduse"]}, headers=headers
        )
    else:
        path = quote(series, safe="")
        r = await api.get(f"/v1/series/{path}/data", params=query, headers=headers)
    assert r.status_code in {200, 404, 406, 422}, r.text
    if r.status_code != 200:
        body = r.json()
        assert body["error"]
        assert body["message"]
    if any(v is not None for v in unknown.values()) or "" in query.values():
        assert r.status_code in {404, 422}, r.text  # never answered as if it were not there


async def test_a_read_only_token_is_enough(influx: InfluxServer, api_bucket: str) -> None:
    """The API works with a token that may only read its bucket (created as docs/api.md says)."""
    admin = {"Authorization": f"Token {influx.token}"}
    async with httpx.AsyncClient(base_url=influx.url, headers=admin) as c:
        org_id = (await c.get("/api/v2/orgs", params={"org": influx.org})).json()["orgs"][0]["id"]
        buckets = (await c.get("/api/v2/buckets", params={"name": api_bucket})).json()
        bucket_id = buckets["buckets"][0]["id"]
        created = await c.post(
            "/api/v2/authorizations",
            json={
                "orgID": org_id,
                "description": "gridts API (read-only)",
                "permissions": [
                    {
                        "action": "read",
                        "resource": {"type": "buckets", "id": bucket_id, "orgID": org_id},
                    }
                ],
            },
        )
        assert created.status_code == 201, created.text
        read_token = created.json()["token"]
        denied = await c.post(
            "/api/v2/write",
            params={"org": influx.org, "bucket": api_bucket},
            content="x value=1",
            headers={"Authorization": f"Token {read_token}"},
        )
        assert denied.status_code in (401, 403)
    async with AppClient(make_settings(influx, api_bucket, influx_token=read_token)) as client:
        catalog = await client.get("/v1/series")
        assert catalog.status_code == 200
        assert "enduse" in {s["name"] for s in catalog.json()["series"]}
        data = await client.get("/v1/series/enduse/data", params={**DAY, "resolution": "1h"})
        assert data.status_code == 200
        assert len(data.json()["points"]) == 23  # the 12:00 hour is empty


async def test_median_over_too_many_stored_points_is_422_before_querying(
    influx: InfluxServer, api_bucket: str
) -> None:
    """active_losses is 15-minute data: with a limit of 1,000, a range of days fits while its
    points plus 40 per day stay under it: 7 days and 8 quarter hours (680 + 8 x 40 = 1,000)."""
    async with AppClient(make_settings(influx, api_bucket, api_max_scan_points=1000)) as client:
        url = "/v1/series/active_losses/data"
        month = {"start": "2019-05-01T00:00:00Z", "end": "2019-06-01T00:00:00Z", "resolution": "1d"}
        r = await client.get(url, params={**month, "agg": "median"})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "scan_too_large"
        assert body["points"] == 2976
        assert body["windows"] == 31
        assert body["cost"] == 2976 + 40 * 31
        assert body["scan_limit"] == 1000
        assert "at resolution=1d the longest range that fits is 7.1 days" in body["message"]
        assert "for this range use" not in body["message"]  # 1w windows do not fit either
        ok = await client.get(url, params={**month, "agg": "mean"})
        assert ok.status_code == 200
        assert len(ok.json()["points"]) == 31
        week = {**month, "end": "2019-05-08T00:00:00Z", "agg": "stddev"}
        assert (await client.get(url, params=week)).status_code == 200


HOSTILE_NAMES = [
    "x" * 5000,
    "zürich_ünïcödé_🙂",
    'f_soll_aktiv" or r._measurement != "',
    'f_soll_aktiv) |> drop(columns: ["_value"]) |> yield(',
    "../../etc/passwd",
    "%00%0d%0a",
    "Robert'); DROP TABLE series;--",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_series_names_are_a_clean_404(api: httpx.AsyncClient, name: str) -> None:
    """Long, unicode and injection-looking names match no series: 404 with a JSON reason, the
    same from every route, and the data of real series is untouched by them."""
    for url, params in ((f"/v1/series/{name}", {}), (f"/v1/series/{name}/data", DAY)):
        r = await api.get(url, params=params)
        assert r.status_code == 404, (url, r.text[:200])
        # a name with slashes matches no route at all: still a JSON 404
        assert r.json()["error"] == ("not_found" if "/" in name else "unknown_series")
    multi = await api.get("/v1/data", params={**DAY, "series": ["f_soll_aktiv", name]})
    assert multi.status_code == 404
    real = await api.get("/v1/series/f_soll_aktiv/data", params={**DAY, "resolution": "1h"})
    assert real.status_code == 200
    assert len(real.json()["points"]) > 0


def _tz_database_folders() -> list[str]:
    import zoneinfo

    folders: set[str] = set()
    for root in map(Path, zoneinfo.TZPATH):
        if root.is_dir():
            folders |= {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
    return sorted(folders)


NOT_ZONES = [
    *_tz_database_folders(),  # Europe, America, Asia, Etc, ... (IsADirectoryError: a 500)
    "localtime", "posixrules", "Factory",  # files of the database that are not zones
    "A" * 256, "Europe/" + "Z" * 300,  # over the file-name limit (OSError: a 500)
]  # fmt: skip


@pytest.mark.parametrize("tz", NOT_ZONES, ids=lambda t: t[:40])
async def test_every_tz_that_is_not_an_iana_zone_is_422(api: httpx.AsyncClient, tz: str) -> None:
    """Issue 11: `tz=Europe` and a 256-character `tz` were 500s; every non-zone is a 422."""
    r = await api.get(DATA, params={**DAY, "resolution": "1d", "tz": tz})
    body = await error_of(r, 422, "invalid_parameter")
    assert body["message"].startswith("tz: "), body


# Every query parameter each /v1 route takes (what its OpenAPI operation declares).
ROUTES = {
    DATA: {**DAY, "resolution": "1h"},
    "/v1/data": {**DAY, "series": "f_soll_aktiv"},
    "/v1/series": {},
    "/v1/series/f_soll_aktiv": {},
}


@pytest.mark.parametrize("url", list(ROUTES))
@pytest.mark.parametrize("unknown", ["aggregate", "agg ", "Resolution", "series", "x" * 300])
async def test_unknown_parameters_are_422_naming_them(
    api: httpx.AsyncClient, url: str, unknown: str
) -> None:
    """`aggregate=sum` answered the mean: a parameter ignored without a word."""
    if unknown == "series" and url == "/v1/data":
        return  # a real parameter there
    r = await api.get(url, params={**ROUTES[url], unknown: "sum"})
    body = await error_of(r, 422, "invalid_parameter")
    assert body["param"] == unknown[:60]
    assert "unknown parameter" in body["message"]


def _declared(app_schema: dict[str, Any], url: str) -> list[str]:
    template = "/v1/series/{name}/data" if url == DATA else url
    template = "/v1/series/{name}" if url == "/v1/series/f_soll_aktiv" else template
    operation = app_schema["paths"][template]["get"]
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]


async def test_every_declared_parameter_empty_is_422(api: httpx.AsyncClient) -> None:
    """`agg=` meant the default: every parameter, empty, is refused with its name."""
    schema = (await api.get("/openapi.json")).json()
    checked = 0
    for url, base in ROUTES.items():
        for name in _declared(schema, url):
            r = await api.get(url, params={**base, name: ""})
            body = await error_of(r, 422, "invalid_parameter")
            assert body["param"] == name, (url, body)
            assert "empty" in body["message"], body
            checked += 1
    assert checked >= 2 * 8 + 1


async def test_a_parameter_given_twice_is_422_except_series(api: httpx.AsyncClient) -> None:
    r = await api.get(DATA, params=[*DAY.items(), ("agg", "sum"), ("agg", "max")])
    body = await error_of(r, 422, "invalid_parameter")
    assert body["param"] == "agg"
    assert "more than once" in body["message"]
    ok = await api.get(
        "/v1/data", params=[*DAY.items(), ("series", "f_soll_aktiv"), ("series", "enduse")]
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("url", [DATA, "/v1/series", "/healthz"])
async def test_wrong_method_is_405_with_a_listed_kind(
    api: httpx.AsyncClient, method: str, url: str
) -> None:
    r = await api.request(method, url, params=ROUTES.get(url, {}))
    body = await error_of(r, 405, "method_not_allowed")
    assert "GET" in r.headers["allow"]
    assert body["message"] == "Method Not Allowed"


def _error_table() -> dict[str, set[int]]:
    """`error` kinds and their statuses in docs/api.md's error table."""
    import re

    table: dict[str, set[int]] = {}
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    for status, kinds in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", section, flags=re.M):
        for kind in re.findall(r"`([a-z_]+)`", kinds):
            table.setdefault(kind, set()).add(int(status))
    return table


def test_every_error_the_api_can_emit_is_in_the_table() -> None:
    """A 405 answered `http_error`, which the table did not list."""
    from app import errors, responses

    def leaves(cls: type[errors.ApiError]) -> list[type[errors.ApiError]]:
        subs = cls.__subclasses__()
        return [cls] + [leaf for sub in subs for leaf in leaves(sub)]

    emitted = {
        (c.kind, c.status)
        for c in leaves(errors.ApiError)
        if c not in (errors.ApiError, errors.UpstreamError)  # bases, never raised themselves
    }
    emitted |= {(kind, status) for status, kind in responses.HTTP_KINDS.items()}
    emitted |= {("internal", 500)}
    table = _error_table()
    missing = {(k, s) for k, s in emitted if s not in table.get(k, set())}
    assert not missing, f"not in docs/api.md's error table: {sorted(missing)}"


HOSTILE_STATIC = [
    "%00", "app.js%00.png", "a" * 300, "a/" * 3000, "..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/settings.py", "vendor", "vendor/", "%C3%BC" * 200, "nonexistent",
]  # fmt: skip


@pytest.mark.parametrize("path", HOSTILE_STATIC, ids=lambda p: p[:30])
async def test_static_files_never_open_a_user_path_outside_them(
    api: httpx.AsyncClient, path: str
) -> None:
    """The other user string that reaches the file system: a path under /static. NUL bytes,
    names over the file-name limit, folders and traversals are a JSON 404, never a 500."""
    r = await api.get(f"/static/{path}")
    await error_of(r, 404, "not_found")
