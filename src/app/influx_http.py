"""Flux queries straight to InfluxDB's `POST /api/v2/query`, for the data path.

influxdb-client builds a model object per query, serialises it through its generic
`sanitize_for_serialization` and wraps aiohttp in several layers: about a millisecond of CPU per
query, a tenth of a day's query at 30 s (issue 10, item 7). This module sends the same request
body (the Flux text, the parameters as `option p_x = <literal>` in the `extern` AST, the
annotation-free CSV dialect) with orjson on one aiohttp session. The catalog, the ping and the
bucket listing stay on the client.

Plain reads may go to the v1 `POST /query` in InfluxQL instead (ADR 0018), on the same session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from influxdb_client.rest import ApiException

_DIALECT = {
    "header": True,
    "delimiter": ",",
    "annotations": [],
    "commentPrefix": "#",
    "dateTimeFormat": "RFC3339",
}


def literal(value: object) -> dict[str, Any]:
    """A parameter as a Flux AST literal, exactly as influxdb-client writes it."""
    if isinstance(value, bool):
        return {"type": "BooleanLiteral", "value": value}
    if isinstance(value, int):
        return {"type": "IntegerLiteral", "value": str(value)}
    if isinstance(value, float):
        return {"type": "FloatLiteral", "value": value}
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        text = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond * 1000:09d}Z"
        return {"type": "DateTimeLiteral", "value": text}
    if isinstance(value, timedelta):
        micros = int(value / timedelta(microseconds=1))
        duration = {"type": "DurationLiteral", "values": [{"magnitude": abs(micros), "unit": "us"}]}
        if micros < 0:
            return {"type": "UnaryExpression", "operator": "-", "argument": duration}
        return duration
    if isinstance(value, str):
        return {"type": "StringLiteral", "value": value}
    raise TypeError(f"unsupported Flux parameter type: {type(value).__name__}")


def query_body(text: str, params: dict[str, object]) -> bytes:
    """The JSON body of `POST /api/v2/query` for a Flux text and its parameters."""
    body = [
        {
            "type": "OptionStatement",
            "assignment": {
                "type": "VariableAssignment",
                "id": {"type": "Identifier", "name": name},
                "init": literal(value),
            },
        }
        for name, value in params.items()
    ]
    return orjson.dumps(
        {
            "extern": {"imports": [], "body": body},
            "query": text,
            "dialect": _DIALECT,
        }
    )


class FluxHttp:
    """One aiohttp session that posts Flux queries and returns the CSV text."""

    def __init__(self, url: str, token: str, org: str) -> None:
        self._url = url.rstrip("/") + "/api/v2/query"
        self._v1_url = url.rstrip("/") + "/query"
        self._params = {"org": org}
        self._session = aiohttp.ClientSession(
            headers={
                "Authorization": f"Token {token}",
                "Content-Type": "application/json",
                "Accept": "application/csv",
                # InfluxDB runs next to the API: compressing costs both sides more CPU than the
                # bytes cost on the wire (ADR 0007).
                "Accept-Encoding": "identity",
            },
            auto_decompress=False,
        )

    async def query(self, text: str, params: dict[str, object]) -> str:
        """The CSV answer; a status outside 2xx is an ApiException with that status, as from
        influxdb-client (the store maps it)."""
        parts: list[bytes] = []
        await self.query_into(text, params, parts.append)
        return b"".join(parts).decode("utf-8")

    async def query_into(
        self, text: str, params: dict[str, object], sink: Callable[[bytes], None]
    ) -> None:
        """The CSV answer handed to ``sink`` as it arrives (``points.CsvReader``); a status
        outside 2xx is an ApiException, before any byte reaches ``sink``."""
        await self._post_into(self._url, self._params, query_body(text, params), sink)

    async def influxql_into(self, db: str, statement: str, sink: Callable[[bytes], None]) -> None:
        """An InfluxQL statement's CSV answer (`name,tags,time,<field>` rows, instants in
        nanoseconds) handed to ``sink`` as it arrives; a status outside 2xx is an ApiException,
        as for Flux."""
        body = urlencode({"q": statement}).encode("ascii")
        await self._post_into(
            self._v1_url, {"db": db}, body, sink, "application/x-www-form-urlencoded"
        )

    async def _post_into(
        self,
        url: str,
        params: dict[str, str],
        body: bytes,
        sink: Callable[[bytes], None],
        content_type: str | None = None,
    ) -> None:
        headers = None if content_type is None else {"Content-Type": content_type}
        async with self._session.post(url, params=params, data=body, headers=headers) as response:
            if not 200 <= response.status <= 299:
                await response.read()
                raise ApiException(status=response.status, reason=response.reason)  # type: ignore[no-untyped-call]
            async for chunk in response.content.iter_any():
                sink(chunk)

    async def close(self) -> None:
        await self._session.close()
