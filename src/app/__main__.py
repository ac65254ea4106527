"""`python -m app` / `gridts-api`: uvicorn serving app.main:app on API_HOST:API_PORT."""

from __future__ import annotations

import ctypes

import uvicorn

from app.logs import configure_logging
from app.settings import load_settings

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(libc: str | None = None) -> bool:
    """Blocks up to 32 MiB from the heap, and up to 64 MiB kept free at its top, instead of
    glibc's start: blocks over 128 KiB mapped and unmapped one by one, until its threshold has
    grown. An answer of a few megabytes (a year at 15 m: its CSV, the arrays that read it, its
    JSON) otherwise costs thousands of page faults per request: 4,600 there, about 2.5 us each
    on a 2-core VM, 12 ms of the request's 33 ms of CPU (issue 10, item 7). The thresholds glibc
    grows to itself (at most 32 MiB, and twice that); set, they hold from the first request.
    ``libc``: the library with `mallopt` (None: the process's own symbols). False where there
    is no glibc."""
    try:
        mallopt = ctypes.CDLL(libc).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 64 << 20))


def main() -> None:
    keep_freed_memory()
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
