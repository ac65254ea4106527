"""`GET /v1/tiers`: the rollup tiers as the API sees them, and why one does not answer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from app.deps import StoreDep, require_token, strict_query
from app.query.plan import TierBucket, format_time
from app.responses import ERROR_401, ERROR_422_QUERY, ERROR_503
from app.routes._json import json_response
from gridts.tiers import Tier

router = APIRouter(
    prefix="/v1", tags=["series"], dependencies=[Depends(require_token), Depends(strict_query)]
)

# Pending ranges listed per tier at the most (each is a load that has not rolled up yet: a few
# at a time in practice); `pending_total` counts them all.
MOST_PENDING = 1000

TIERS_EXAMPLE: dict[str, Any] = {
    "answering": True,
    "tiers": [
        {
            "window": "15m",
            "bucket": "grid_15m",
            "found": True,
            "retention_seconds": None,
            "series_not_held": ["enduse"],
            "pending_total": 1,
            "pending": [
                {
                    "series": "f_soll_aktiv",
                    "start": "2021-05-01T01:07:30Z",
                    "end": "2021-05-01T02:30:00Z",
                }
            ],
        },
        {"window": "1h", "bucket": "grid_1h", "found": False},
    ],
}


@router.get(
    "/tiers",
    summary="The rollup tiers and what they hold",
    description="Each configured tier (`API_TIERS`): its bucket, whether the API can read it, "
    "its retention (null: forever), the series whose raw points it does not hold in full "
    "(filled by `python -m ingest rollup`; it never answers them), and the ranges it does not "
    "hold yet (open pending-rollup markers: a load wrote raw points there and has not rolled "
    "them up). A data request answered from the raw points (`X-Data-Source: raw`) that a tier "
    "could have answered was kept from it by one of these, or by `answering: false`: the "
    "markers could not be read lately, and only the raw points answer then. As of the last "
    "catalog reload (`API_CATALOG_TTL_SECONDS`) and marker read.",
    responses={
        200: {"content": {"application/json": {"example": TIERS_EXAMPLE}}},
        401: ERROR_401,
        422: ERROR_422_QUERY,
        503: ERROR_503,
    },
)
async def list_tiers(store: StoreDep) -> Response:
    catalog = await store.catalog()
    answering = bool(await store.usable_tiers())
    found = {t.tier: t for t in store.found_tiers}
    return json_response(
        {
            "answering": answering,
            "tiers": [
                _tier(tier, store.bucket, found.get(tier), catalog)
                for tier in store.configured_tiers
            ],
        }
    )


def _tier(tier: Tier, raw_bucket: str, found: TierBucket | None, series: Iterable[str]) -> Any:
    """One tier's entry: only its window and bucket when its bucket was not found."""
    entry: dict[str, Any] = {"window": tier.text, "bucket": tier.bucket(raw_bucket)}
    if found is None:
        return {**entry, "found": False}
    ranges = found.pending_ranges()
    return {
        **entry,
        "found": True,
        "retention_seconds": found.retention_seconds or None,
        "series_not_held": found.not_held(series),
        "pending_total": len(ranges),
        "pending": [
            {"series": name, "start": _iso(a), "end": _iso(b)}
            for a, b, name in ranges[:MOST_PENDING]
        ],
    }


def _iso(seconds: int) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))
