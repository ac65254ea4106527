"""The interval grammar of the CLI: ``1s``, ``30s``, ``15m``, ``1h``, ``1d`` (whole seconds)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_GRAMMAR = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``30s`` or ``15m``; ValueError with the grammar otherwise."""
    m = _GRAMMAR.match(text.strip())
    if not m:
        raise ValueError(f"invalid duration {text!r}: expected a whole number and s, m, h or d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
