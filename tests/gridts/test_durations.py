"""The duration grammars (gridts.durations): ours, as the ingest, the tiers and the API use it,
and InfluxDB's, for every retention and the age of backups."""

from __future__ import annotations

import argparse

import pytest

from gridts.durations import format_duration, parse_duration, parse_influx_duration
from ingest.rollup import _retention as rollup_retention
from ops import tokens_job
from ops.cli import duration as ops_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400), ("9999999s", 9999999)],
)
def test_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(f" {text} ") == seconds  # the CLI's arguments may carry spaces


@pytest.mark.parametrize(
    "text",
    [
        *["", "s", "0s", "01m", "1.5h", "-1m", "1M", "1 m", "1mm", "10000000s", "1w"],
        *["\uff11m", "1m\n1s"],  # a full-width digit; two durations
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a whole number and s, m, h or d"):
        parse_duration(text)


def test_units_and_digits_are_the_callers() -> None:
    assert parse_duration("2w", units="smhdw") == 2 * 604800
    with pytest.raises(ValueError, match="s, m, h, d or w"):
        parse_duration("1y", units="smhdw")
    assert parse_duration("999999s", digits=6) == 999999
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("1000000s", digits=6)


@pytest.mark.parametrize("seconds", [1, 59, 60, 90, 900, 3600, 5400, 86400, 604800, 2 * 604800])
def test_format_round_trips(seconds: int) -> None:
    for units in ("smhd", "smhdw"):
        text = format_duration(seconds, units=units)
        assert parse_duration(text, units=units) == seconds
    assert format_duration(604800) == "7d"
    assert format_duration(604800, units="smhdw") == "1w"
    assert format_duration(5400) == "90m"


# ---- InfluxDB's grammar: how long data and backups are kept ----------------------------------

INFLUX_CASES = [
    ("52w", 52 * 604800),
    ("30d", 30 * 86400),
    ("1h30m", 5400),
    ("90m", 5400),
    ("1w2d", 9 * 86400),
    ("3600s", 3600),
    ("7200000ms", 7200),
    (" 2h ", 7200),
]
INFLUX_REFUSED = ["", "h", "1.5h", "-1h", "1 h", "1H", "1y", "1h-30m", "30dd", "P30D"]


@pytest.mark.parametrize(("text", "seconds"), INFLUX_CASES)
def test_influx_durations(text: str, seconds: int) -> None:
    assert parse_influx_duration(text) == seconds


@pytest.mark.parametrize("text", INFLUX_REFUSED)
def test_influx_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration such as 52w, 30d or 1h30m"):
        parse_influx_duration(text)


@pytest.mark.parametrize(("text", "seconds"), INFLUX_CASES)
def test_every_retention_and_age_reads_the_same_grammar(text: str, seconds: int) -> None:
    """The chart's retentions (the tokens Job), `ingest tiers --retention` and `ops backup
    --max-age` take the same texts and mean the same seconds."""
    assert tokens_job.retention_seconds(text) == seconds
    assert rollup_retention(f"1m={text}") == {"1m": seconds}
    assert ops_duration(text.strip()).total_seconds() == seconds


@pytest.mark.parametrize("text", INFLUX_REFUSED[1:])  # "" is "forever" for a retention
def test_every_retention_and_age_refuses_the_same_texts(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        tokens_job.retention_seconds(text)
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        rollup_retention(f"1m={text}")
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        ops_duration(text)
