"""`python -m app` / `gridts-api`: uvicorn serving app.main:app on API_HOST:API_PORT."""

from __future__ import annotations

import uvicorn

from app.logs import configure_logging
from app.settings import load_settings


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        "app.main:app",
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        # longer than the idle timeout of the load balancers and clients in front (60 s is
        # common): otherwise a client may send on a connection uvicorn is just closing
        timeout_keep_alive=65,
    )


if __name__ == "__main__":
    main()
