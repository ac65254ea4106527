"""Structured JSON logs on stdout, for the app's own events and for uvicorn's."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

_HANDLER_NAME = "gridts-json"


def _dumps(event: dict[str, Any], **_: Any) -> str:
    """orjson: a request log line costs a fifth of the standard library's json (issue 10,
    item 7); anything it cannot encode is written as its str()."""
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str) -> None:
    """JSON lines on stdout at `level`; idempotent, and leaves other handlers alone."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(serializer=_dumps),
                ],
            )
        )
        root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn's access log would repeat, unstructured, what the request log already says.
    logging.getLogger("uvicorn.access").disabled = True
