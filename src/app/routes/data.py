"""Series data: `GET /v1/series/{name}/data` and `GET /v1/data?series=a&series=b`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from app import formats
from app.deps import SettingsDep, StoreDep, require_token, strict_query
from app.errors import ApiError
from app.points import Points, align
from app.query.plan import (
    MEDIA_TYPES,
    Agg,
    DataParams,
    Fill,
    Format,
    QueryPlan,
    build_plan,
    choose_source,
    no_finer_than,
    raw_overflow,
    scan_reason,
)
from app.responses import ERROR_401, ERROR_404, ERROR_422, ERROR_429, ERROR_503, ERROR_504
from app.routes._json import example
from app.settings import Settings
from app.store import Store

router = APIRouter(
    prefix="/v1", tags=["data"], dependencies=[Depends(require_token), Depends(strict_query)]
)


async def data_params(
    start: Annotated[
        str,
        Query(
            json_schema_extra={"format": "date-time"},
            description="inclusive start, RFC 3339 with `Z` or an offset",
            openapi_examples=example("2021-05-02T00:00:00Z"),
        ),
    ],
    end: Annotated[
        str,
        Query(
            json_schema_extra={"format": "date-time"},
            description="exclusive end, RFC 3339 with `Z` or an offset; after `start`",
            openapi_examples=example("2021-05-03T00:00:00+02:00"),
        ),
    ],
    resolution: Annotated[
        str | None,
        Query(
            json_schema_extra={"pattern": r"^(raw|auto|[1-9][0-9]{0,5}[smhdw])$"},
            description="`raw`, `auto` (default: the finest standard window that returns at most "
            "`max_points` points) or a window `<n><s|m|h|d|w>` such as `30s`, `15m`, `1h`, `1d`",
            openapi_examples=example("15m"),
        ),
    ] = None,
    agg: Annotated[
        str | None,
        Query(
            json_schema_extra={"enum": [a.value for a in Agg]},
            description="aggregate per window: mean (default), min, max, sum, count, first, "
            "last, median, stddev",
            openapi_examples=example("mean"),
        ),
    ] = None,
    fill: Annotated[
        str | None,
        Query(
            json_schema_extra={"enum": [f.value for f in Fill]},
            description="empty windows: none (default, omitted), null, previous, linear",
            openapi_examples=example("none"),
        ),
    ] = None,
    tz: Annotated[
        str | None,
        Query(
            description="IANA zone whose clock the windows follow: local days (a Swiss day has "
            "23 or 25 hours at DST changes) and local hours (in Asia/Kathmandu, UTC+05:45, an "
            "hour starts at :15 UTC); default UTC",
            openapi_examples=example("Europe/Zurich"),
        ),
    ] = None,
    max_points: Annotated[
        str | None,
        Query(
            json_schema_extra={"pattern": "^[1-9][0-9]{0,8}$"},
            description="point cap per series (default and maximum: API_MAX_POINTS); a larger "
            "result is a 422 that names a coarser resolution that fits",
            openapi_examples=example("10000"),
        ),
    ] = None,
    format: Annotated[
        str | None,
        Query(
            json_schema_extra={"enum": [f.value for f in Format]},
            description="json (default), csv or ndjson; otherwise negotiated from Accept",
            openapi_examples=example("json"),
        ),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> DataParams:
    """The data routes' parameters as they arrived (checked by the plan, not here).

    Long: one declaration per parameter, each with its OpenAPI text and example."""
    return DataParams(
        start=start,
        end=end,
        resolution=resolution,
        agg=agg,
        fill=fill,
        tz=tz,
        max_points=max_points,
        format=format,
        accept=accept,
    )


ParamsDep = Annotated[DataParams, Depends(data_params)]

_POINTS = [
    {"time": "2021-05-02T10:00:00Z", "value": 50.0, "partial": False},
    {"time": "2021-05-02T10:15:00Z", "value": 49.99, "partial": False},
]
_HEADER = {
    "resolution": "15m",
    "agg": "mean",
    "fill": "none",
    "tz": None,
    "start": "2021-05-02T10:00:00Z",
    "end": "2021-05-02T10:30:00Z",
    "source": "tier:15m",
}


def _responses(json_example: dict[str, Any], csv: str, ndjson: str) -> dict[int | str, Any]:
    return {
        200: {
            "description": "the points; `time` is the start of each window",
            "headers": {
                "X-Data-Source": {
                    "description": "which data answered: `raw`, or a rollup tier such as "
                    "`tier:15m` (the coarsest that answers exactly; docs/api.md); JSON has the "
                    "same as `source`",
                    "schema": {"type": "string", "example": "tier:15m"},
                },
                "X-Resolution": {
                    "description": "the window length answered (`raw` for raw points)",
                    "schema": {"type": "string", "example": "15m"},
                },
            },
            "content": {
                "application/json": {"example": json_example},
                "text/csv": {"schema": {"type": "string"}, "example": csv},
                "application/x-ndjson": {"schema": {"type": "string"}, "example": ndjson},
            },
        },
        401: ERROR_401,
        404: ERROR_404,
        406: {"description": "Accept names no supported media type"},
        422: ERROR_422,
        429: ERROR_429,
        503: ERROR_503,
        504: ERROR_504,
    }


@router.get(
    "/series/{name}/data",
    summary="One series at a resolution",
    responses=_responses(
        {"series": "f_soll_aktiv", "unit": "Hz", **_HEADER, "points": _POINTS},
        "time,value,partial\n2021-05-02T10:00:00Z,50.0,false\n2021-05-02T10:15:00Z,49.99,false\n",
        '{"time":"2021-05-02T10:00:00Z","value":50.0,"partial":false}\n'
        '{"time":"2021-05-02T10:15:00Z","value":49.99,"partial":false}\n',
    ),
)
async def series_data(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    params: ParamsDep,
    name: str = Path(description="series name", openapi_examples=example("f_soll_aktiv")),
) -> Response:
    plan = build_plan([name], params, bucket=store.bucket, max_points_cap=settings.api_max_points)
    async with store.turn(request.is_disconnected):
        return await _series_data(store, settings, plan, name)


async def _series_data(store: Store, settings: Settings, plan: QueryPlan, name: str) -> Response:
    info = await store.series(name)
    if plan.auto:
        plan = no_finer_than(plan, await store.step_seconds(info))
    steps = [await store.step_seconds(info)] if scan_reason(plan) else []
    plan = choose_source(
        plan, await store.usable_tiers(), datetime.now(UTC), steps, settings.api_max_scan_points
    )
    meta = formats.SeriesMeta(info.name, info.unit)
    await store.check_raw_count(plan, info)
    async with store.admit(await store.heavy(plan)):
        points = await store.points(plan, name)
    _check_raw_cap(plan, [points])
    plan = plan.answered([points.source])
    if plan.format is Format.JSON:
        return _bytes(formats.series_json(plan, meta, points), plan)
    if plan.format is Format.CSV:
        return _stream(formats.series_csv(plan, points), plan)
    return _stream(formats.series_ndjson(plan, points), plan)


@router.get(
    "/data",
    summary="Several series on the same windows",
    description="The same parameters as one series' data; `series` repeats. Every window any "
    "series has is a row, with null where another series has no value.",
    responses=_responses(
        {
            "series": [{"name": "enduse", "unit": "kWh"}, {"name": "active_losses", "unit": "kWh"}],
            **_HEADER,
            "points": [
                {"time": "2021-05-02T10:00:00Z", "values": [1843210.5, 10210.0], "partial": False}
            ],
        },
        "time,enduse,active_losses,partial\n2021-05-02T10:00:00Z,1843210.5,10210.0,false\n",
        '{"time":"2021-05-02T10:00:00Z","values":[1843210.5,10210.0],"partial":false}\n',
    ),
)
async def multi_data(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    params: ParamsDep,
    series: Annotated[
        list[str] | None,
        Query(
            description="series names, repeated",
            openapi_examples=example(["enduse", "active_losses"]),
        ),
    ] = None,
) -> Response:
    plan = build_plan(
        list(series or []), params, bucket=store.bucket, max_points_cap=settings.api_max_points
    )
    async with store.turn(request.is_disconnected):
        return await _multi_data(store, settings, plan)


async def _multi_data(store: Store, settings: Settings, plan: QueryPlan) -> Response:
    infos = [await store.series(name) for name in plan.series]
    if plan.auto:
        steps = [await store.step_seconds(info) for info in infos]
        plan = no_finer_than(plan, max((s for s in steps if s), default=None))
    steps = [await store.step_seconds(info) for info in infos] if scan_reason(plan) else []
    plan = choose_source(
        plan, await store.usable_tiers(), datetime.now(UTC), steps, settings.api_max_scan_points
    )
    for info in infos:
        await store.check_raw_count(plan, info)
    async with store.admit(await store.heavy(plan)):
        columns = await _gather([store.points(plan, name) for name in plan.series])
    _check_raw_cap(plan, columns)
    plan = plan.answered([c.source for c in columns])
    metas = [formats.SeriesMeta(i.name, i.unit) for i in infos]
    axis, rows = align(columns)
    if plan.format is Format.JSON:
        return _bytes(formats.table_json(plan, metas, axis, rows), plan)
    if plan.format is Format.CSV:
        return _stream(formats.table_csv(plan, metas, axis, rows), plan)
    return _stream(formats.table_ndjson(plan, axis, rows), plan)


async def _gather(calls: list[Any]) -> list[Points]:
    """Run the per-series queries together; the first failure cancels the rest and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except* ApiError as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


def _check_raw_cap(plan: QueryPlan, columns: list[Points]) -> None:
    if plan.window is None and any(len(c) > plan.max_points for c in columns):
        raise raw_overflow(plan)


def _headers(plan: QueryPlan) -> dict[str, str]:
    return {"Vary": "Accept", "X-Resolution": plan.resolution, "X-Data-Source": plan.source}


def _bytes(body: bytes, plan: QueryPlan) -> Response:
    return Response(body, media_type=MEDIA_TYPES[plan.format], headers=_headers(plan))


def _stream(chunks: Iterator[bytes], plan: QueryPlan) -> StreamingResponse:
    return StreamingResponse(
        _on_the_loop(chunks), media_type=MEDIA_TYPES[plan.format], headers=_headers(plan)
    )


async def _on_the_loop(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Chunks made on the event loop: Starlette would hop to a thread for each chunk of a plain
    iterator, and a thread holding the GIL stalls the loop for its switch interval."""
    for chunk in chunks:
        yield chunk
