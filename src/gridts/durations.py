"""The one duration grammar: a whole number and a unit, `30s`, `15m`, `1h`, `1d`, `1w`.

The ingest's `--step`, the rollup tiers and the API's `resolution` all read durations with
``parse_duration`` (each with the units and the number of digits it allows) and write them with
``format_duration``.
"""

from __future__ import annotations

import re

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_GRAMMAR = re.compile(r"([1-9][0-9]*)([smhdw])")


def parse_duration(text: str, *, units: str = "smhd", digits: int = 7) -> int:
    """Seconds in ``text``: 1 to ``digits`` digits (no leading zero) and one of ``units``;
    ValueError naming the grammar otherwise."""
    m = _GRAMMAR.fullmatch(text.strip())
    if m is None or len(m[1]) > digits or m[2] not in units:
        names = ", ".join(units[:-1]) + " or " + units[-1]
        raise ValueError(f"invalid duration {text!r}: expected a whole number and {names}")
    return int(m[1]) * UNIT_SECONDS[m[2]]


def format_duration(seconds: int, *, units: str = "smhd") -> str:
    """The text in the largest of ``units`` that divides ``seconds``: 900 -> `15m`, 3600 ->
    `1h`, 604800 -> `7d` (`1w` with ``units="smhdw"``)."""
    for unit in sorted(units, key=UNIT_SECONDS.__getitem__, reverse=True):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    raise ValueError(f"{seconds} s is not a whole number of any of {units}")
