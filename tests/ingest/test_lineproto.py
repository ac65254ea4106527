"""Line protocol (ingest.lineproto): exact lines and batches, and escaping that the real influxd
reads back as the very names and tags that were written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridts.names import SERIES_NAME
from ingest.lineproto import encode, line_prefix
from tests.conftest import InfluxServer
from tests.ingest.test_load import flux


def test_line_prefix_escapes_measurement_and_tags() -> None:
    assert line_prefix("a b,c", {"unit": "EUR/MWh", "site": "x=y z"}) == (
        rb"a\ b\,c,site=x\=y\ z,unit=EUR/MWh value="
    )


def test_empty_tags_are_left_out_and_tags_are_sorted() -> None:
    assert line_prefix("f", {"unit": "", "b": "2", "a": "1"}) == b"f,a=1,b=2 value="


def test_encode_builds_exact_lines_and_batches() -> None:
    text = np.frombuffer(b"50 49.99 -1", dtype=np.uint8)
    lines = encode(
        b"f,unit=Hz value=",
        text,
        np.array([0, 3, 9]),
        np.array([2, 5, 2]),
        np.array([0, 999_999_999, 1_619_820_030]),
    )
    assert lines.body.tobytes() == (
        b"f,unit=Hz value=50 0\nf,unit=Hz value=49.99 999999999\nf,unit=Hz value=-1 1619820030\n"
    )
    assert [n for _, n in lines.batches(2)] == [2, 1]
    assert b"".join(b for b, _ in lines.batches(2)) == lines.body.tobytes()


# What a header may put into a unit: the separators line protocol escapes, backslashes, and
# anything else printable (no newline: a CSV header cell cannot hold one; a trailing backslash
# cannot be written at all and is refused: below).
_TEXT = st.text(
    alphabet=st.sampled_from([*"ab Z9_-/.[]()%°µ€", ",", "=", " ", '"', "'", "\\"]),
    min_size=1,
    max_size=12,
).filter(lambda t: t.strip() == t and not t.startswith("_") and not t.endswith("\\"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(measurement=st.from_regex(SERIES_NAME, fullmatch=True), unit=_TEXT)
def test_influxd_reads_back_every_escaped_name_and_unit(
    influx: InfluxServer, influx_env: dict[str, str], measurement: str, unit: str
) -> None:
    """Whatever a unit holds (separators, backslashes), and any series name, the real influxd
    stores exactly them. (A series name has no separator: gridts.names.)"""
    body = line_prefix(measurement, {"unit": unit}) + b"1.5 1619820030\n"
    write = httpx.post(
        f"{influx.url}/api/v2/write",
        params={"org": influx.org, "bucket": influx_env["INFLUX_BUCKET"], "precision": "s"},
        headers={"Authorization": f"Token {influx.token}"},
        content=body,
        timeout=30,
    )
    assert write.status_code == 204, (body, write.text)
    rows = flux(
        influx_env,
        "from(bucket: bucket) |> range(start: 2021-04-30T00:00:00Z, stop: 2021-05-02T00:00:00Z)"
        " |> filter(fn: (r) => r._measurement == m and r.unit == u)",
        m=measurement,
        u=unit,
    )
    assert [(r["_measurement"], r["unit"], r["_field"], r["_value"]) for r in rows] == [
        (measurement, unit, "value", "1.5")
    ]


@pytest.mark.parametrize("name", ["a,b", "a b", "a=b", "a\\b"])
def test_separators_are_escaped_for_a_measurement_as_influxdb_wants(name: str) -> None:
    prefix = line_prefix(name, {})
    assert prefix.endswith(b" value=")
    head = prefix[: -len(b" value=")]
    # every comma and space of the name is escaped; nothing else is added
    assert head.replace(b"\\,", b"").replace(b"\\ ", b"").count(b",") == 0
    assert b" " not in head.replace(b"\\ ", b"")


@pytest.mark.parametrize("text", ["\\", "a\\", "a\\\\", "MW\\"])
def test_a_text_ending_in_a_backslash_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ends with a backslash"):
        line_prefix("f", {"unit": text})
    with pytest.raises(ValueError, match="ends with a backslash"):
        line_prefix(text, {})


def test_a_unit_ending_in_a_backslash_fails_the_file_before_any_write(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("Datum Zeit;A:f_soll_aktiv [Hz\\]\r\nSa. 01.05.21 00:00:30;50\r\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "load", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "ends with a backslash" in proc.stderr
    assert proc.stdout == ""
