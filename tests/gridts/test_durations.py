"""The one duration grammar (gridts.durations), as the ingest, the tiers and the API use it."""

from __future__ import annotations

import pytest

from gridts.durations import format_duration, parse_duration


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
