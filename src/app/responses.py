"""The one mapping of the API's errors (app.errors) to HTTP responses, and the error documents
the routes show in OpenAPI."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.errors import ApiError, InvalidParameter


def error_doc(description: str, example: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of an error response with one example body."""
    return {"description": description, "content": {"application/json": {"example": example}}}


# OpenAPI documents of the errors, shared by the routes.
ERROR_404 = error_doc(
    "no such series", {"error": "unknown_series", "message": "unknown series: 'nope'"}
)
ERROR_401 = error_doc(
    "API tokens are configured and the request has none or a wrong one",
    {"error": "unauthorized", "message": "invalid bearer token"},
)
ERROR_422_QUERY = error_doc(
    "a query parameter the route does not take (these routes take none)",
    {
        "error": "invalid_parameter",
        "param": "limit",
        "message": "limit: unknown parameter 'limit'; this route takes no parameters",
    },
)
ERROR_503 = error_doc(
    "InfluxDB is unreachable; retry after `Retry-After` seconds",
    {"error": "influx_unavailable", "message": "InfluxDB is not reachable; retry later"},
)
ERROR_422 = {
    "description": "a parameter is invalid, or the result would exceed the point cap",
    "content": {
        "application/json": {
            "examples": {
                "bad range": {
                    "value": {
                        "error": "invalid_parameter",
                        "param": "end",
                        "message": "end: must be after start (the range is [start, end))",
                    }
                },
                "too many points": {
                    "value": {
                        "error": "too_many_points",
                        "param": "resolution",
                        "message": "resolution: 2880 points would exceed max_points=1000; "
                        "resolution=2m fits",
                        "points": 2880,
                        "max_points": 1000,
                        "suggested_resolution": "2m",
                    }
                },
            }
        }
    },
}
ERROR_504 = error_doc(
    "the query ran longer than API_QUERY_TIMEOUT_SECONDS",
    {"error": "query_timeout", "message": "the query took longer than 30s"},
)
ERROR_429 = error_doc(
    "expensive queries (median, stddev, tz windows) are all taking their slots; retry after "
    "`Retry-After` seconds",
    {
        "error": "busy",
        "message": "too many expensive queries (median, stddev or tz windows) running; retry "
        "shortly, or use a pushed-down aggregate",
    },
)


def error_response(exc: ApiError) -> Response:
    """The one place an ApiError becomes an HTTP response."""
    return Response(
        orjson.dumps(exc.body()),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers(),
    )


def internal_error_response() -> Response:
    """A 500 without details: the cause goes to the log, never to the client."""
    return Response(
        orjson.dumps({"error": "internal", "message": "internal error"}),
        status_code=500,
        media_type="application/json",
    )


# Refusals that Starlette makes before a route runs (no route, wrong method); any other status
# it raises is `http_error`.
HTTP_KINDS = {404: "not_found", 405: "method_not_allowed"}


def install(app: FastAPI) -> None:
    """Register the handlers that render every error as `{"error", "message", ...}`."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        request.state.error_kind = exc.kind
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())

        def where(e: Any) -> str:
            return ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"

        def why(e: Any) -> str:
            return "required" if e.get("type") == "missing" else str(e.get("msg", "invalid"))

        if len(errors) == 1:
            err = InvalidParameter(where(errors[0]), why(errors[0]))
        else:
            reasons = "; ".join(f"{where(e)}: {why(e)}" for e in errors) or "invalid request"
            err = InvalidParameter("request", reasons)
        request.state.error_kind = err.kind
        return error_response(err)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kind = HTTP_KINDS.get(exc.status_code, "http_error")
        request.state.error_kind = kind
        return Response(
            orjson.dumps({"error": kind, "message": str(exc.detail)}),
            status_code=exc.status_code,
            media_type="application/json",
            headers=dict(exc.headers or {}),
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
