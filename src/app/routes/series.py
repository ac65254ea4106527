"""The catalog: `GET /v1/series` and `GET /v1/series/{name}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from starlette.responses import Response

from app.deps import StoreDep, require_token, strict_query
from app.errors import UnknownSeries
from app.responses import ERROR_401, ERROR_404, ERROR_422_QUERY, ERROR_503
from app.routes._json import example, json_response
from gridts.names import is_series_name

router = APIRouter(
    prefix="/v1", tags=["series"], dependencies=[Depends(require_token), Depends(strict_query)]
)

SERIES_EXAMPLE: dict[str, Any] = {
    "name": "f_soll_aktiv",
    "unit": "Hz",
    "tags": {},
    "first": "2021-05-01T00:00:00Z",
    "last": "2021-06-30T23:59:30Z",
}


@router.get(
    "/series",
    summary="List all series",
    description="Every series in the bucket with its unit, tags and first and last timestamps; "
    "derived from the database and cached for API_CATALOG_TTL_SECONDS.",
    responses={
        200: {"content": {"application/json": {"example": {"series": [SERIES_EXAMPLE]}}}},
        401: ERROR_401,
        422: ERROR_422_QUERY,
        503: ERROR_503,
    },
)
async def list_series(store: StoreDep) -> Response:
    catalog = await store.catalog()
    return json_response({"series": [info.as_json() for info in catalog.values()]})


@router.get(
    "/series/{name}",
    summary="One series' metadata",
    responses={
        200: {"content": {"application/json": {"example": SERIES_EXAMPLE}}},
        401: ERROR_401,
        404: ERROR_404,
        422: ERROR_422_QUERY,
        503: ERROR_503,
    },
)
async def get_series(
    store: StoreDep,
    name: str = Path(description="series name", openapi_examples=example("f_soll_aktiv")),
) -> Response:
    if not is_series_name(name):
        raise UnknownSeries(name)
    info = await store.series(name)
    return json_response(info.as_json())
