"""Local labels to UTC: every DST rule of adr/0005, on hand-made and real Swissgrid sequences."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from ingest.timeconv import TimeConverter, zone_transitions

ZURICH = ZoneInfo("Europe/Zurich")
Q = 900  # 15 minutes


def wall(text: str) -> int:
    """Naive wall-clock seconds of 'YYYY-MM-DD HH:MM[:SS]'."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp())


def utc(text: str) -> int:
    return wall(text)


def convert(
    labels: list[str], label: str = "end", step: int | None = Q
) -> tuple[list[int], dict[int, str]]:
    conv = TimeConverter("Europe/Zurich", label, step)
    seconds = np.array([wall(x) for x in labels], dtype=np.int64)
    out = conv.convert(seconds, np.arange(1, len(labels) + 1, dtype=np.int64))
    return [int(u) for u in out.utc], out.rejects


def test_transitions_of_2021_are_the_eu_rules() -> None:
    tr = zone_transitions(ZURICH, 2021, 2021)
    assert [(t.at, t.before, t.after) for t in tr] == [
        (utc("2021-03-28 01:00"), 3600, 7200),
        (utc("2021-10-31 01:00"), 7200, 3600),
    ]


def test_far_from_dst_end_labels_store_the_interval_start() -> None:
    got, rejects = convert(["2021-01-01 00:15", "2021-07-01 00:15"])
    assert rejects == {}
    assert got == [utc("2020-12-31 23:00"), utc("2021-06-30 22:00")]


def test_spring_jump_is_contiguous_in_utc() -> None:
    labels = ["2019-03-31 01:30", "2019-03-31 01:45", "2019-03-31 03:00", "2019-03-31 03:15"]
    got, rejects = convert(labels)
    assert rejects == {}
    assert got == [
        utc("2019-03-31 00:15"),
        utc("2019-03-31 00:30"),
        utc("2019-03-31 00:45"),
        utc("2019-03-31 01:00"),
    ]


AUTUMN_UTC_STARTS = [utc("2019-10-26 23:45") + i * Q for i in range(11)]


def test_autumn_convention_a_label_is_the_end_instant() -> None:
    # the losses file: labels 02:00..02:45 appear twice
    labels = ["01:45", "02:00", "02:15", "02:30", "02:45", "02:00", "02:15", "02:30", "02:45",
              "03:00", "03:15"]  # fmt: skip
    got, rejects = convert([f"2019-10-27 {x}" for x in labels])
    assert rejects == {}
    assert got == [utc("2019-10-26 23:30") + i * Q for i in range(11)]


def test_autumn_convention_b_label_is_start_wall_plus_step() -> None:
    # the end-use file: labels 02:15..03:00 appear twice
    labels = ["01:45", "02:00", "02:15", "02:30", "02:45", "03:00", "02:15", "02:30", "02:45",
              "03:00", "03:15"]  # fmt: skip
    got, rejects = convert([f"2019-10-27 {x}" for x in labels])
    assert rejects == {}
    assert got == [utc("2019-10-26 23:30") + i * Q for i in range(11)]


def test_instant_labels_fold_by_order() -> None:
    labels = ["01:59:30", "02:00:00", "02:59:30", "02:00:00", "02:59:30", "03:00:00"]
    got, rejects = convert([f"2021-10-31 {x}" for x in labels], label="instant", step=None)
    assert rejects == {}
    assert got == [
        utc("2021-10-30 23:59:30"),
        utc("2021-10-31 00:00"),
        utc("2021-10-31 00:59:30"),
        utc("2021-10-31 01:00"),
        utc("2021-10-31 01:59:30"),
        utc("2021-10-31 02:00"),
    ]


def test_a_repeated_hour_shown_once_is_rejected_not_guessed() -> None:
    labels = ["01:45", "02:00", "02:15", "02:30", "02:45", "03:00", "03:15"]
    got, rejects = convert([f"2021-10-31 {x}" for x in labels], label="instant", step=None)
    assert set(rejects) == {1, 2, 3, 4}
    assert all("occurs twice" in r and "cannot tell" in r for r in rejects.values())
    assert got[0] == utc("2021-10-30 23:45")
    assert got[-1] == utc("2021-10-31 02:15")


def test_a_nonexistent_spring_time_is_rejected() -> None:
    got, rejects = convert(["2021-03-28 01:59:59", "2021-03-28 02:30:00", "2021-03-28 03:00:00"],
                           label="instant", step=None)  # fmt: skip
    assert list(rejects) == [1]
    assert "does not exist" in rejects[1]
    assert got[0] == utc("2021-03-28 00:59:59")
    assert got[2] == utc("2021-03-28 01:00")


def test_duplicates_are_rejected_pointing_at_the_first() -> None:
    _got, rejects = convert(["2021-05-01 00:15", "2021-05-01 00:15", "2021-05-01 00:30"])
    assert list(rejects) == [1]
    assert rejects[1].startswith("same instant as line 1")


def test_daily_end_labels_give_23_and_25_hour_days() -> None:
    labels = ["2021-03-28 00:00", "2021-03-29 00:00", "2021-10-31 00:00", "2021-11-01 00:00"]
    got, rejects = convert(labels, step=86400)
    assert rejects == {}
    # the interval ending 29.03 00:00 local started 28.03 00:00 CET = 27.03 23:00 UTC
    assert got == [
        utc("2021-03-26 23:00"),
        utc("2021-03-27 23:00"),
        utc("2021-10-29 22:00"),
        utc("2021-10-30 22:00"),
    ]


@pytest.mark.parametrize("cut", range(1, 11))
def test_safe_rows_hold_back_a_zone_cut_by_a_chunk(cut: int) -> None:
    """Converting in two chunks, holding back as told, equals converting at once."""
    labels = ["2019-10-27 " + x for x in
              ["01:45", "02:00", "02:15", "02:30", "02:45", "03:00", "02:15", "02:30", "02:45",
               "03:00", "03:15"]]  # fmt: skip
    seconds = np.array([wall(x) for x in labels], dtype=np.int64)
    lines = np.arange(1, len(labels) + 1, dtype=np.int64)
    conv = TimeConverter("Europe/Zurich", "end", Q)
    ready = conv.safe_rows(seconds[:cut])
    first = conv.convert(seconds[:ready], lines[:ready])
    rest = conv.convert(seconds[ready:], lines[ready:])
    assert [int(u) for u in np.concatenate([first.utc, rest.utc])] == [
        utc("2019-10-26 23:30") + i * Q for i in range(11)
    ]
    assert first.rejects == {}
    assert rest.rejects == {}


def test_every_2021_30s_label_maps_to_a_unique_instant() -> None:
    """A whole year of 30 s end labels, as the operator exports them, against zoneinfo."""
    instants = pd.date_range("2021-01-01 00:00:30", "2022-01-01", freq="30s", tz="Europe/Zurich")
    labels = instants.tz_localize(None)  # the wall clock, as printed in the file
    seconds = labels.as_unit("s").asi8
    conv = TimeConverter("Europe/Zurich", "end", 30)
    out = conv.convert(seconds, np.arange(len(labels), dtype=np.int64))
    assert out.rejects == {}
    assert np.array_equal(out.utc, instants.as_unit("s").asi8 - 30)
