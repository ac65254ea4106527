"""The one rule for series names: what the ingest writes, the generator makes and the API serves.

A name is 1 to 128 letters, digits, `_`, `.` and `-`, starting with a letter or a digit. The
start rules out `.` and `..` (a client normalises `/v1/series/../data` to another route, so
such a series could never be read), names InfluxDB reserves (`_` starts its system
measurements) and names that read as command-line options (`-x`).
"""

from __future__ import annotations

import re

MAX_LENGTH = 128
RULE = f"1 to {MAX_LENGTH} letters, digits, _ . -, starting with a letter or a digit"
# `\Z`, not `$`: `$` also matches before a final newline, so `re.match` would accept "a\n".
SERIES_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{MAX_LENGTH - 1}}}\Z")


def is_series_name(text: str) -> bool:
    return SERIES_NAME.match(text) is not None


def check_series_name(text: str) -> str:
    """``text`` if it is a valid series name; otherwise ValueError saying the rule."""
    if not is_series_name(text):
        shown = repr(text[:40] + ("..." if len(text) > 40 else ""))
        raise ValueError(f"invalid series name {shown}: {RULE}")
    return text
