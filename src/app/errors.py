"""Domain exceptions of the API.

    ApiError                      any failure the API reports on purpose
    ├── InvalidParameter          422: a parameter that does not parse or is out of range
    │   ├── TooManyPoints         422: the result would exceed the point cap
    │   └── ScanTooLarge          422: median/stddev would read more stored points than allowed
    ├── UnknownSeries             404: no such series in the catalog
    ├── NotAuthenticated          401: missing or wrong bearer token
    ├── NotAcceptable             406: no supported media type in Accept
    ├── Busy                      429 + Retry-After: the expensive-query slots stay full
    ├── ClientGone                499: the client left while its request waited for a turn
    └── UpstreamError             InfluxDB did not answer usefully
        ├── InfluxUnavailable     503 + Retry-After: connection refused, reset, 5xx
        ├── QueryTimeout          504: the query ran over its time budget
        └── InfluxRejected        502: InfluxDB refused the request (bad token, missing bucket)

The pure modules raise only the first branch; `store` raises the upstream branch. This module is
the tree only (no web framework: the pure modules import it); `app.responses` is the one place
that turns the exceptions into HTTP responses.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """Base of the API's own failures; `kind` names it in bodies, logs and metrics."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "error"
    # Seconds after which a retry may succeed, sent as Retry-After; None: no such header.
    retry_after_seconds: ClassVar[int | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.kind, "message": self.message}

    def headers(self) -> dict[str, str]:
        if self.retry_after_seconds is None:
            return {}
        return {"Retry-After": str(self.retry_after_seconds)}


class InvalidParameter(ApiError):
    status = 422
    kind = "invalid_parameter"

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param

    def body(self) -> dict[str, Any]:
        return {**super().body(), "param": self.param}


class ScanTooLarge(InvalidParameter):
    """Plans InfluxDB cannot push into its storage engine (median, stddev, windows in a time
    zone) read every stored point: sent to the API, about a million points a second, or in
    Flux, about 150,000: past a limit they would hold a core for seconds to minutes."""

    kind = "scan_too_large"

    def __init__(
        self,
        reason: str,
        points: int,
        windows: int,
        cost: int,
        limit: int,
        hint: str,
        window_cost: int,
    ) -> None:
        InvalidParameter.__init__(
            self,
            "agg",
            f"{reason}: about {points:,} stored points and {windows:,} windows cost {cost:,}, "
            f"over the scan limit of {limit:,} (a window costs as much as reading "
            f"{window_cost} points); {hint}; or use mean, min, max, sum, count, first or last "
            "(computed inside the storage engine, no limit)",
        )
        self.points = points
        self.windows = windows
        self.cost = cost
        self.limit = limit

    def body(self) -> dict[str, Any]:
        return {
            **super().body(),
            "points": self.points,
            "windows": self.windows,
            "cost": self.cost,
            "scan_limit": self.limit,
        }


class TooManyPoints(InvalidParameter):
    kind = "too_many_points"

    def __init__(self, points: int | None, max_points: int, suggestion: str | None) -> None:
        size = f"{points} points" if points is not None else "more points"
        hint = (
            f"; resolution={suggestion} fits"
            if suggestion
            else "; no standard resolution fits, shorten the range"
        )
        InvalidParameter.__init__(
            self, "resolution", f"{size} would exceed max_points={max_points}{hint}"
        )
        self.points = points
        self.max_points = max_points
        self.suggestion = suggestion

    def body(self) -> dict[str, Any]:
        return {
            **super().body(),
            "points": self.points,
            "max_points": self.max_points,
            "suggested_resolution": self.suggestion,
        }


class UnknownSeries(ApiError):
    status = 404
    kind = "unknown_series"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown series: {name!r}")
        self.name = name


class NotAuthenticated(ApiError):
    status = 401
    kind = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotAcceptable(ApiError):
    status = 406
    kind = "not_acceptable"


class UpstreamError(ApiError):
    status = 502
    kind = "upstream_error"


class Busy(ApiError):
    """Every slot for queries without storage pushdown stayed taken: shed load with a 4xx that
    says when to come back, rather than queue into a 504."""

    status = 429
    kind = "busy"
    retry_after_seconds = 5


class ClientGone(ApiError):
    """The client closed its connection while the request waited for its turn: nothing is
    asked of InfluxDB for it. Nobody reads the answer; 499 (nginx's "client closed request")
    is what the request log and the metrics say."""

    status = 499
    kind = "client_gone"


class InfluxUnavailable(UpstreamError):
    status = 503
    kind = "influx_unavailable"
    retry_after_seconds = 5


class QueryTimeout(UpstreamError):
    status = 504
    kind = "query_timeout"


class InfluxRejected(UpstreamError):
    status = 502
    kind = "influx_rejected"
