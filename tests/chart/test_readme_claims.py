"""What README.md says about `make run` and window alignment agrees with the scripts and the code
(issue 11, item 13): the port variables, the file whose presence loads the Swissgrid series, and
the alignment examples."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from app.query.plan import Window, window_start
from tests.chart.k8scheck import ROOT

README = (ROOT / "README.md").read_text()
DAY = 86_400


def section(start: str) -> str:
    text = README[README.index(start) :]
    return text[: text.index("\n\n")]


def test_the_port_variables_are_the_ones_the_scripts_read() -> None:
    ports = section("* **Other ports**")
    assert "INFLUX_PORT=18086 API_PORT=18000 make run" in ports
    run_local = (ROOT / "scripts" / "run-local").read_text()
    assert 'API_PORT="${API_PORT:-8000}"' in run_local
    assert "scripts/influxdb-local start" in run_local
    influxdb_local = (ROOT / "scripts" / "influxdb-local").read_text()
    assert 'int(os.environ.get("INFLUX_PORT", "8086"))' in influxdb_local
    # A running InfluxDB is reused whatever INFLUX_PORT says: the README says to stop it first.
    assert "already running" in influxdb_local
    assert "`make stop` first" in ports


def test_the_swissgrid_series_need_the_file_run_local_looks_for() -> None:
    run_local = (ROOT / "scripts" / "run-local").read_text()
    shared = re.search(r"^shared=(\S+)$", run_local, re.M)
    assert shared
    condition = re.search(r'if \[ -f "\$shared/([^"]+)" \]', run_local)
    assert condition
    loads = section("* **What it loads**")
    assert f"`{shared.group(1)}/{condition.group(1)}` exists" in loads
    for series in re.findall(r"--series (\w+)", run_local):
        assert f"`{series}`" in loads


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_alignment_examples_hold() -> None:
    alignment = section("**Window alignment.**")
    assert "2021-05-01 is day 18748" in alignment
    assert (date(2021, 5, 1) - date(1970, 1, 1)).days == 18748
    two_days = Window(2 * DAY)
    # 1 and 2 May are one window, 2 and 3 May are not.
    assert window_start(utc("2021-05-02T12:00"), two_days, None) == utc("2021-05-01T00:00")
    assert window_start(utc("2021-05-03T12:00"), two_days, None) == utc("2021-05-03T00:00")
    assert window_start(utc("2021-05-02T10:40"), Window(3600), None) == utc("2021-05-02T10:00")
    assert window_start(utc("2021-05-02T10:40"), Window(900), None) == utc("2021-05-02T10:30")
    # 7h windows run across midnight: one starts at 22:00Z on 1 May 2021.
    assert window_start(utc("2021-05-02T01:00"), Window(7 * 3600), None) == utc("2021-05-01T22:00")
    for days in (7, 14, 28):
        for instant in ("2021-05-05T13:00", "2024-02-29T00:00", "1970-01-06T00:00"):
            start = window_start(utc(instant), Window(days * DAY), None)
            assert start.weekday() == 0, (days, instant)  # Monday
            assert start.time() == datetime.min.time()
            assert (start.date() - date(1970, 1, 5)).days % days == 0
    # With tz, whole days on the local calendar: local midnights, even local days, Mondays.
    zurich = ZoneInfo("Europe/Zurich")
    local = window_start(utc("2021-05-02T13:00"), two_days, "Europe/Zurich").astimezone(zurich)
    assert (local.date(), local.time()) == (date(2021, 5, 1), datetime.min.time())
    week = window_start(utc("2021-05-05T13:00"), Window(7 * DAY), "Europe/Zurich").astimezone(
        zurich
    )
    assert (week.date(), week.time()) == (date(2021, 5, 3), datetime.min.time())
