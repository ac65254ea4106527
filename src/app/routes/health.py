"""Probes and metrics, always open: `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from app.deps import MetricsDep, StoreDep
from app.errors import InfluxUnavailable
from app.routes._json import json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="InfluxDB is reachable",
    responses={503: {"description": "InfluxDB does not answer; `Retry-After` says when to retry"}},
)
async def readyz(store: StoreDep) -> Response:
    if await store.ping():
        return json_response({"status": "ready"})
    return json_response(
        {"status": "unavailable", "message": "InfluxDB is not reachable"},
        status_code=503,
        headers={"Retry-After": str(InfluxUnavailable.retry_after_seconds)},
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
