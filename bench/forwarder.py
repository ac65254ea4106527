"""The floor of any Python HTTP service in the API's place: a bare ASGI app under uvicorn that
answers every request by sending one fixed Flux query to InfluxDB through the API's own client
(``app.influx_http.FluxHttp``, aiohttp) and returning InfluxDB's CSV bytes unchanged. No
FastAPI, no parameters, no plan, no parsing, no JSON: what is left is the extra HTTP hop.

    FORWARD_QUERY='from(bucket: ...)...' INFLUX_URL=... INFLUX_TOKEN=... INFLUX_ORG=... \\
        API_PORT=8001 .venv/bin/python bench/forwarder.py

``bench/api.py`` starts it next to the API and times it side by side with the API and the
direct Flux query (issue 10, item 7: how much of the API's ratio to Flux any Python service
would pay).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from starlette.types import Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from app.influx_http import FluxHttp

QUERY = os.environ.get("FORWARD_QUERY", "")


class Forwarder:
    """ASGI: every HTTP request is the one query's CSV answer, status 200."""

    def __init__(self) -> None:
        self.http: FluxHttp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self.http is not None:
                await self.http.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.http is None:  # on the server's own event loop
            env = os.environ
            self.http = FluxHttp(env["INFLUX_URL"], env["INFLUX_TOKEN"], env["INFLUX_ORG"])
        parts: list[bytes] = []
        await self.http.query_into(QUERY, {}, parts.append)
        body = b"".join(parts)
        headers = [(b"content-type", b"text/csv"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        Forwarder(),
        host="127.0.0.1",
        port=int(os.environ["API_PORT"]),
        log_config=None,
        access_log=False,
    )
