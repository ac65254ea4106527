"""Bearer-token auth (app.deps.require_token): on, off, and the probes that stay open."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.app.conftest import DATA, DAY, AppClient, error_of, make_settings
from tests.conftest import InfluxServer


@pytest.fixture(scope="module")
async def auth_api(influx: InfluxServer, api_bucket: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(influx, api_bucket, api_tokens="tok-alpha, tok-beta")
    async with AppClient(settings) as client:
        yield client


PROTECTED = ["/v1/series", "/v1/series/enduse", f"{DATA}", "/v1/data", "/v1/tiers"]


def test_every_v1_route_is_checked_for_its_token() -> None:
    """Each route under /v1 of the app (its OpenAPI paths) has a URL in ``PROTECTED``: a new
    route cannot be left out of the auth tests."""
    from app.main import create_app

    v1 = {t for t in create_app().openapi()["paths"] if t.startswith("/v1/")}
    assert {re.sub(r"^/v1/series/[^/]+", "/v1/series/{name}", u) for u in PROTECTED} == v1


@pytest.mark.parametrize("url", PROTECTED)
@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer token: send Authorization: Bearer <token>"),
        ("Bearer tok-gamma", "invalid bearer token"),
        ("Bearer tok-alph", "invalid bearer token"),
        ("Basic dG9rLWFscGhhOg==", "missing bearer token: send Authorization: Bearer <token>"),
        ("tok-alpha", "missing bearer token: send Authorization: Bearer <token>"),
    ],
)
async def test_auth_on_rejects(
    auth_api: httpx.AsyncClient, url: str, header: str | None, message: str
) -> None:
    headers = {"Authorization": header} if header else {}
    r = await auth_api.get(url, params={**DAY, "series": "enduse"}, headers=headers)
    body = await error_of(r, 401, "unauthorized")
    assert body["message"] == message
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["tok-alpha", "tok-beta"])
async def test_auth_on_accepts_each_token(auth_api: httpx.AsyncClient, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    r = await auth_api.get("/v1/series/enduse/data", params=DAY, headers=headers)
    assert r.status_code == 200
    assert len(r.json()["points"]) > 0


async def test_auth_on_probes_stay_open(auth_api: httpx.AsyncClient) -> None:
    assert (await auth_api.get("/healthz")).status_code == 200
    assert (await auth_api.get("/readyz")).status_code == 200
    metrics = await auth_api.get("/metrics")
    assert metrics.status_code == 200
    assert "gridts_api_request_duration_seconds" in metrics.text
    assert (await auth_api.get("/")).status_code == 200


async def test_auth_off_needs_no_token(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/series/enduse")
    assert r.status_code == 200
    assert r.json()["name"] == "enduse"
