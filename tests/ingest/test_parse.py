"""Dialect sniffing and the vectorised parser: exact results and exact reasons."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dialect import DialectError, sniff
from ingest.parse import ParsedChunk, parse_chunk
from ingest.timelayout import WEEKDAYS_DE
from tests.conftest import SHARED_DATA

FUZZ = int(os.environ.get("GRIDTS_FUZZ_EXAMPLES", "150"))  # `make fuzz` raises it
OPERATOR_HEAD = "Datum Zeit;A:f_soll_aktiv [Hz]\r\nSa. 01.05.21 00:00:30;50\r\n"


def wall(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp())


def values(chunk: ParsedChunk, col: int = 0) -> list[str]:
    return [
        bytes(chunk.text[s : s + n]).decode()
        for s, n in zip(chunk.value_start[:, col], chunk.value_len[:, col], strict=True)
    ]


# -- dialect -----------------------------------------------------------------------------------


def test_operator_dialect_is_recognised() -> None:
    d = sniff(OPERATOR_HEAD)
    assert (d.separator, d.decimal, d.header_rows, d.layout.name) == (";", ",", 1, "de-weekday")
    assert [(c.series, c.unit) for c in d.columns] == [("f_soll_aktiv", "Hz")]


def test_shared_files_are_recognised() -> None:
    enduse = sniff(
        (SHARED_DATA / "swissgrid-enduse-2019-15min.tsv").read_text()[:4000], series="enduse"
    )
    assert (enduse.separator, enduse.header_rows, enduse.layout.name) == ("\t", 1, "dmy4-hm")
    assert enduse.columns[0].unit == "kWh"
    losses = sniff(
        (SHARED_DATA / "swissgrid-active-losses-2019-2021-15min.csv").read_text()[:4000],
        series="losses",
    )
    assert (losses.separator, losses.decimal, losses.header_rows) == (",", ".", 2)
    assert (losses.layout.name, losses.columns[0].unit) == ("iso-hms", "kWh")


def test_series_name_from_a_header_without_units_is_slugged() -> None:
    d = sniff(",Wirkverluste/Active Losses\nZeitstempel,kWh\n2019-01-01 00:15:00,1.5\n")
    assert (d.columns[0].series, d.columns[0].unit) == ("wirkverluste_active_losses", "kWh")


def test_lines_above_the_first_good_row_are_headers_only_if_they_read_like_text() -> None:
    head = (
        "Export Sollfrequenz\n"  # text: a header row
        "Datum Zeit;A:f_soll_aktiv [Hz]\n"  # text: a header row
        "Mi. 31.02.21 00:00:00;50\n"  # a date-like first cell: data (rejected by the parser)
        "\x00garbage\n"  # control characters: data
        "Sa. 01.05.21 00:00:30;50\n"
    )
    d = sniff(head)
    assert d.header_rows == 2
    body = head.split("\n", 2)[2].encode()
    chunk = parse_chunk(body, d, first_line=3)
    assert [r.line for r in chunk.rejects] == [3, 4]
    assert list(chunk.line) == [5]


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ("", "empty"),
        ("Datum Zeit;A:f [Hz]\n", "no data row"),
        ("Zeit;Wert\nhello;1\n", "no data row"),
        ("Zeitstempel\tkWh\n01.01.2019 00:15\t1\n", "pass --series"),
        ("t;A:x [Hz];A:x [Hz]\n01.01.2019 00:15;1;2\n", "names a series twice"),
    ],
)
def test_unusable_heads_say_why(head: str, message: str) -> None:
    with pytest.raises(DialectError, match=message):
        sniff(head)


# -- parser ------------------------------------------------------------------------------------


def test_operator_rows_parse_with_decimal_comma_and_crlf() -> None:
    d = sniff(OPERATOR_HEAD)
    body = (
        b"Sa. 01.05.21 00:00:30;50\r\nSa. 01.05.21 00:01:00;49,99\r\n\r\n"
        b"So. 02.05.21 00:00:00;50,01"
    )
    chunk = parse_chunk(body, d, first_line=2)
    assert chunk.rejects == []
    assert list(chunk.line) == [2, 3, 5]
    assert list(chunk.seconds) == [
        wall(2021, 5, 1, 0, 0, 30),
        wall(2021, 5, 1, 0, 1),
        wall(2021, 5, 2),
    ]
    assert values(chunk) == ["50", "49.99", "50.01"]


BAD_ROWS = [
    (b"Sa. 01.05.21 00:00:30;", "empty value"),
    (b"Sa. 01.05.21 00:00:30;abc", "not a number"),
    (b"Sa. 01.05.21 00:00:30;nan", "not a finite number"),
    (b"Sa. 01.05.21 00:00:30;50;1", "expected 2 columns, found 3"),
    (b"Sa. 01.05.21 00:00:30", "expected 2 columns, found 1"),
    (b"Mo. 01.05.21 00:00:30;50", "weekday"),
    (b"Mi. 31.02.21 00:00:30;50", "impossible date"),
    (b"Sa. 01.05.21 25:00:00;50", "impossible date or time"),
    (b"01/05/2021 00:00;50", "unrecognised timestamp"),
    (b"Sa. 01.05.21 00:00:30;5\xe40", "undecodable bytes"),
    (b"Sa. 01.05.21 00:00:30;5\x000", "control characters"),
    (b"2021-05-01T00:00:30Z;50", "has a UTC offset"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_bad_rows_are_rejected_with_line_and_reason(row: bytes, reason: str) -> None:
    d = sniff(OPERATOR_HEAD)
    good = b"Sa. 01.05.21 00:00:30;50\n"
    chunk = parse_chunk(good + row + b"\n" + good, d, first_line=10)
    assert list(chunk.line) == [10, 12]
    assert [(r.line, reason in r.reason) for r in chunk.rejects] == [(11, True)], chunk.rejects


def test_unusual_but_valid_values_take_the_careful_path() -> None:
    d = sniff(OPERATOR_HEAD)
    rows = b"Sa. 01.05.21 00:00:30; 50 \nSa. 01.05.21 00:01:00;+5\nSa. 01.05.21 00:01:30;1e3\n"
    chunk = parse_chunk(rows, d, first_line=1)
    assert chunk.rejects == []
    assert values(chunk) == ["50.0", "5.0", "1000.0"]


def test_wide_files_keep_each_column() -> None:
    head = "Zeit;A:a [MW];A:b [MW]\n01.05.2021 00:15;1,5;-2\n"
    d = sniff(head)
    assert [c.series for c in d.columns] == ["a", "b"]
    chunk = parse_chunk(head.split("\n", 1)[1].encode(), d, first_line=2)
    assert values(chunk, 0) == ["1.5"]
    assert values(chunk, 1) == ["-2"]


# -- properties --------------------------------------------------------------------------------

local_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
decimals = st.decimals(min_value=-100000, max_value=100000, places=3, allow_nan=False)


@settings(max_examples=FUZZ, deadline=None)
@given(st.lists(st.tuples(local_times, decimals), min_size=1, max_size=50))
def test_valid_operator_rows_round_trip(rows: list[tuple[datetime, Decimal]]) -> None:
    d = sniff(OPERATOR_HEAD)
    body = "".join(
        f"{WEEKDAYS_DE[t.weekday()]}. {t:%d.%m.%y %H:%M:%S};{str(v).replace('.', ',')}\r\n"
        for t, v in rows
    ).encode()
    chunk = parse_chunk(body, d, first_line=2)
    assert chunk.rejects == []
    assert list(chunk.seconds) == [
        int(t.replace(microsecond=0, tzinfo=UTC).timestamp()) for t, _ in rows
    ]
    assert [float(v) for v in values(chunk)] == [float(v) for _, v in rows]


@settings(max_examples=2 * FUZZ, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_crashes_and_every_line_is_accounted_for(junk: bytes) -> None:
    d = sniff(OPERATOR_HEAD)
    chunk = parse_chunk(junk, d, first_line=1)
    lines = junk.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    nonblank = [i + 1 for i, ln in enumerate(lines) if ln.strip()]
    seen = sorted(list(chunk.line) + [r.line for r in chunk.rejects])
    assert seen == nonblank
    for r in chunk.rejects:
        assert r.reason
        assert not re.search(r"Traceback|Error\(", r.reason)


def test_split_long_groups_rows_by_series_keeping_line_numbers() -> None:
    from gridts.names import RULE
    from ingest.parse import split_long

    chunk = (
        b"load,2021-05-01 00:15:00,1.5\n"
        b"freq,2021-05-01 00:15:00,50\n"
        b"\n"
        b"load,2021-05-01 00:30:00,2\r\n"
        b"no separator here\n"
        b"bad name!,2021-05-01 00:30:00,2\n"
        b",2021-05-01 00:30:00,2\n"
    )
    groups, rejects = split_long(chunk, ",", first_line=2)
    assert [(g.series, g.chunk, list(g.lines)) for g in groups] == [
        ("load", b"2021-05-01 00:15:00,1.5\n2021-05-01 00:30:00,2\n", [2, 5]),
        ("freq", b"2021-05-01 00:15:00,50\n", [3]),
    ]
    assert [(r.line, r.reason) for r in rejects] == [
        (6, "expected 3 columns (series, time, value)"),
        (7, f"invalid series name 'bad name!': {RULE}"),
        (8, "series name empty or longer than 128 characters"),
    ]
