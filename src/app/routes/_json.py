"""JSON responses through orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.openapi.models import Example
from starlette.responses import Response


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )


def example(value: Any) -> dict[str, Example]:
    """One OpenAPI example for a parameter, shown and pre-filled by the docs page."""
    return {"example": Example(value=value)}
