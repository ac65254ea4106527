"""One pure-ASGI layer around the app: request metrics, the request log, last-resort 500s."""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics
from app.responses import internal_error_response

log = structlog.get_logger("app.request")
# Probes and scrapes arrive every few seconds: logged only at debug level unless they fail.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class ObserveRequests:
    """Times each request by route template, counts errors by kind, logs one JSON line.

    Unhandled exceptions end here as a bare 500: the log gets the exception's type, never its
    traceback or arguments (which could hold a token), and the server sees no exception.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
            await send(message)

        error_type: str | None = None
        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            error_type = type(exc).__name__
            status = 500
            if not response_started:
                await internal_error_response()(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            state = scope.get("state") or {}
            kind = state.get("error_kind") or ("internal" if status >= 500 else None)
            self.metrics.request_seconds.labels(
                method=scope["method"], route=template, status=str(status)
            ).observe(elapsed)
            if kind is not None:
                self.metrics.errors.labels(kind=kind).inc()
            fields = {
                "method": scope["method"],
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            if kind is not None:
                fields["error"] = kind
            if error_type is not None:
                log.error("request_failed", exception=error_type, **fields)
            elif status >= 500:
                log.warning("request", **fields)
            elif template in _QUIET_ROUTES and status < 400:
                log.debug("request", **fields)
            else:
                log.info("request", **fields)
