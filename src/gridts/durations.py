"""Durations, in two grammars, each read in one place.

Ours: a whole number and a unit, `30s`, `15m`, `1h`, `1d`, `1w`. The ingest's `--step`, the
rollup tiers and the API's `resolution` read it with ``parse_duration`` (each with the units and
the number of digits it allows) and write it with ``format_duration``.

InfluxDB's, for how long data is kept (`52w`, `30d`, `1h30m`): bucket retentions (the chart's
``influxdb.retention`` and tier retentions, ``ingest tiers --retention``) and the age of backups
(``ops backup --max-age``) are read with ``parse_influx_duration``, so a value that InfluxDB
takes is taken everywhere.
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


_INFLUX_PART = re.compile(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)")
_INFLUX_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, **UNIT_SECONDS}


def parse_influx_duration(text: str) -> int:
    """Whole seconds in an InfluxDB duration literal: one or more whole numbers with a unit
    (`52w`, `30d`, `1h30m`, `90m`); ValueError naming the grammar otherwise."""
    text = text.strip()
    parts = _INFLUX_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 52w, 30d or 1h30m")
    return int(sum(int(n) * _INFLUX_UNIT_SECONDS[u] for n, u in parts))
