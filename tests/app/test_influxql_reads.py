"""Plain reads asked in InfluxQL (ADR 0018): the statement, the reading of its CSV as the
points Flux's answer gives, and the API's choice of the language, against the real influxd.

The promise is Flux's answer to the same read: every test compares InfluxQL's, read, with
Flux's from the same influxd, as bytes and as points, for every shape of name, number and
instant the read can meet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from app import store as store_module
from app.influx_http import FluxHttp
from app.influxql_csv import (
    FLUX_HEADER,
    Outcome,
    as_flux_csv,
    flux_label,
    flux_rows,
    read_points,
)
from app.points import Points, parse_flux_csv, utc_labels
from app.query import flux, influxql
from tests.app.conftest import AppClient, counts_by, make_settings
from tests.conftest import InfluxServer

T0 = 1619827200  # 2021-05-01T00:00:00Z
BEGIN = datetime.fromtimestamp(T0, UTC)
# Names InfluxQL must quote (and Flux takes as they are): spaces, commas, both quotes, a
# backslash before a quote and before a letter, an equals sign, a keyword, unicode, a dot.
HOSTILE = [
    "with space",
    "com,ma",
    'dq"uote',
    "sq'uote",
    "mid\\dle",
    "a=b",
    "SELECT",
    "Frequenz Ü",
    "dot.ted",
]
# Values whose texts differ between Go's and Python's shortest forms, and an integer field.
FLOATS = [50.0, 1e-07, -2.5e-05, 0.0, -0.0, 123456789012345.0, 1.5e16, 1e21, -1e300, 3e-300, 0.1]


def _escape(name: str) -> str:
    """A measurement name in line protocol (a backslash before anything but a comma or a
    space is itself)."""
    return name.replace(",", "\\,").replace(" ", "\\ ")


def _dataset() -> list[str]:
    """Each hostile name with three points; the float forms 30 s apart; an integer field;
    instants with fractions of a second; instants before 2001 (other than 19 digits) and
    before 1970; a series under two tag sets; a series with a tag named like its field."""
    s = 10**9  # the lines' instants are in nanoseconds
    lines = [
        f"{_escape(n)},unit=Hz value={k}.5 {(T0 + 30 * k) * s}" for n in HOSTILE for k in range(3)
    ]
    lines += [f"forms,unit=Hz value={v!r} {(T0 + 30 * k) * s}" for k, v in enumerate(FLOATS)]
    lines += [
        f"integers value={v}i {(T0 + 60 * k) * s}" for k, v in enumerate([7, -3, 2**53 + 1, 0])
    ]
    nanos = [0, 500_000_000, 120_000_000, 1, 999_999_999, 100]
    lines += [
        f"fractions value={k}.25 {T0 * 10**9 + 1000 * 10**9 * k + n}" for k, n in enumerate(nanos)
    ]
    lines += [f"old value=1.5 {t * 10**9}" for t in (-86_400 * 400 - 1, -1, 0, 1, 999_999_999)]
    lines += [f"twin,site={t} value={k}.0 {(T0 + 60 * k) * s}" for t in "ab" for k in range(4)]
    lines += [f"tagfield,value=t value=2.5 {T0 * s}"]
    lines += [f"sited,site=a\\,b,unit=Hz value={k}.5 {(T0 + 30 * k) * s}" for k in range(30)]
    lines += [f"plain,unit=Hz value={50 + k / 1000!r} {(T0 + 30 * k) * s}" for k in range(30)]
    return lines


@pytest.fixture(scope="module")
async def ql_bucket(influx: InfluxServer) -> AsyncIterator[str]:
    name = "influxql_reads"
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        created = client.buckets_api().create_bucket(bucket_name=name, org=influx.org)
        client.write_api(write_options=SYNCHRONOUS).write(
            name, influx.org, "\n".join(_dataset()), write_precision="ns"
        )
        yield name
        if influx.proc is not None:
            client.buckets_api().delete_bucket(created)


async def _both(influx: InfluxServer, read: influxql.PlainRead) -> tuple[bytes, bytes]:
    """Flux's answer to the read (the API's own Flux of it) and InfluxQL's."""
    http = FluxHttp(influx.url, influx.token, influx.org)
    try:
        theirs: list[bytes] = []
        text = flux._SOURCE.replace('"value"', "p_field") + (
            '\n    |> keep(columns: ["_time", "_value"])\n    |> limit(n: p_limit)'
        )
        params: dict[str, object] = {
            "p_bucket": read.bucket,
            "p_series": read.measurement,
            "p_field": read.field,
            "p_start": read.start,
            "p_stop": read.stop,
            "p_limit": read.limit or 10**9,
        }
        await http.query_into(text, params, theirs.append)
        raw: list[bytes] = []
        await http.influxql_into(read.bucket, influxql.statement(read), raw.append)
    finally:
        await http.close()
    return b"".join(theirs), b"".join(raw)


def _same_as_fluxs(theirs: bytes, raw: bytes, *, integer: bool = False) -> None:
    """InfluxQL's answer ``raw`` is Flux's ``theirs``: as Flux's text, byte for byte, and read
    as points, the points of Flux's answer, whose text (made when something reads the points
    one by one) is Flux's too."""
    assert as_flux_csv(raw) == theirs
    ours = read_points(raw, integer=integer)
    assert isinstance(ours, Points)
    flux_points = parse_flux_csv(theirs.decode(), integer=integer)
    cells = ours.cells()
    if cells is not None:
        assert cells.text == theirs.decode()
    assert ours == flux_points
    assert (ours.times, ours.values) == (flux_points.times, flux_points.values)


SERIES = [*HOSTILE, "forms", "integers", "fractions", "old", "sited", "plain"]


@pytest.mark.parametrize("series", SERIES)
async def test_influxqls_answer_is_read_as_fluxs(
    influx: InfluxServer, ql_bucket: str, series: str
) -> None:
    """Every name InfluxQL must quote (and its CSV quotes: a comma, a double quote), two tags
    (a quoted cell), every number form, integers, fractions of a second and instants of other
    lengths (before 2001 and 1970): InfluxQL's answer is Flux's, byte for byte, and read as
    the points Flux's gives."""
    start, stop = datetime(1960, 1, 1, tzinfo=UTC), BEGIN + timedelta(days=1)
    read = influxql.PlainRead(ql_bucket, series, "value", start, stop, 1000)
    theirs, raw = await _both(influx, read)
    assert theirs.startswith(FLUX_HEADER)
    assert theirs.count(b"\r\n") > 2, theirs
    _same_as_fluxs(theirs, raw, integer=series == "integers")
    # InfluxDB ends every row with a line end; a last row without one is whole too
    _same_as_fluxs(theirs, raw.rstrip(b"\n"), integer=series == "integers")


@pytest.mark.parametrize(("offset", "seconds", "limit"), [(0, 30, 2), (15, 300, 1000), (30, 31, 1)])
async def test_the_range_and_the_limit_are_fluxs(
    influx: InfluxServer, ql_bucket: str, offset: int, seconds: int, limit: int
) -> None:
    """Start included, stop left out, at most ``limit`` points: as Flux reads them."""
    start = BEGIN + timedelta(seconds=offset)
    read = influxql.PlainRead(
        ql_bucket, "forms", "value", start, start + timedelta(seconds=seconds), limit
    )
    theirs, raw = await _both(influx, read)
    _same_as_fluxs(theirs, raw)
    assert theirs.count(b"\r\n") - 2 == min(limit, len(range(offset, offset + seconds, 30)))


async def test_what_influxql_cannot_answer_is_said(influx: InfluxServer, ql_bucket: str) -> None:
    """Several tag sets (Flux's several tables), a range without points, a bucket InfluxQL
    does not know (answered with an empty body, its only way to fail in CSV): not answered."""
    day = BEGIN + timedelta(days=1)
    cases = {
        influxql.PlainRead(ql_bucket, "twin", "value", BEGIN, day, 10): Outcome.SEVERAL_TAG_SETS,
        influxql.PlainRead(ql_bucket, "forms", "value", day, day + timedelta(1), 9): Outcome.EMPTY,
        influxql.PlainRead("no_such_bucket", "forms", "value", BEGIN, day, 9): Outcome.EMPTY,
    }
    for read, outcome in cases.items():
        parts: list[bytes] = []
        http = FluxHttp(influx.url, influx.token, influx.org)
        try:
            await http.influxql_into(read.bucket, influxql.statement(read), parts.append)
        finally:
            await http.close()
        raw = b"".join(parts)
        assert read_points(raw) is outcome, read
        assert as_flux_csv(raw) is outcome, read


async def test_a_tag_named_like_the_field_is_not_read(influx: InfluxServer, ql_bucket: str) -> None:
    """`value` is both a tag and the field: the field's points are read, as Flux reads them
    (InfluxQL would read the tag without `::field`)."""
    read = influxql.PlainRead(ql_bucket, "tagfield", "value", BEGIN, BEGIN + timedelta(1), 9)
    theirs, raw = await _both(influx, read)
    _same_as_fluxs(theirs, raw)
    assert b",2.5\r\n" in theirs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-62_135_596_800, 253_402_300_799), min_size=1, max_size=50))
def test_labels_of_whole_seconds_are_the_calendars(seconds: list[int]) -> None:
    """Any whole seconds of the years 1 to 9999, sorted or not, in runs of one day or not:
    the texts Python's calendar gives (and Flux's, ``flux_label``)."""
    got = utc_labels(np.array(seconds, dtype=np.int64))
    want = [
        datetime.fromtimestamp(s, UTC).isoformat().replace("+00:00", "Z").encode() for s in seconds
    ]
    assert [bytes(row) for row in got] == want
    assert [flux_label(s * 10**9) for s in seconds] == want


@pytest.mark.parametrize(
    ("nanoseconds", "label"),
    [
        (0, b"1970-01-01T00:00:00Z"),
        (-1, b"1969-12-31T23:59:59.999999999Z"),
        (1_500_000_000, b"1970-01-01T00:00:01.5Z"),
        (10, b"1970-01-01T00:00:00.00000001Z"),
        (T0 * 10**9 + 120_000_000, b"2021-05-01T00:00:00.12Z"),
    ],
)
def test_a_fraction_of_a_second_is_written_as_go_writes_it(nanoseconds: int, label: bytes) -> None:
    assert flux_label(nanoseconds) == label


@pytest.mark.parametrize(
    ("block", "outcome"),
    [
        (b'f,unit=Hz,1619827200000000000,"1"\n', Outcome.UNREADABLE),  # a quoted value
        (b'f,unit=Hz,"1619827200000000000",1\n', Outcome.UNREADABLE),  # a quoted instant
        (b'f,"unit=Hz,1619827200000000000,1\n', Outcome.UNREADABLE),  # a quote left open
        (b"f,unit=Hz,1619827200000000000,1\r\n", Outcome.UNREADABLE),  # a CR
        (b"f,unit=Hz,1619827200000000000,\n", Outcome.UNREADABLE),  # no value
        (b"f,unit=Hz,16198272000000000x0,1\n", Outcome.UNREADABLE),  # not an integer
        (b"f,unit=Hz,1619827200000000000,1,2\n", Outcome.UNREADABLE),  # a fifth cell
        (b"f,unit=Hz,1619827200000000000\n", Outcome.UNREADABLE),  # a third cell only
        (
            b"f,unit=Hz,1619827200000000000,1\nf,unit=Hy,1619827260000000000,2\n",
            Outcome.SEVERAL_TAG_SETS,
        ),  # another tag set of the same length
        (
            b"f,unit=Hz,1619827200000000000,1\nf,unit=mHz,1619827260000000000,2\n",
            Outcome.SEVERAL_TAG_SETS,
        ),  # of another length
        (
            b"f,,1619827200000000000,1\nf,unit=Hz,1619827260000000000,2\n",
            Outcome.SEVERAL_TAG_SETS,
        ),  # none, then one
    ],
)
def test_rows_that_cannot_be_read_are_refused(block: bytes, outcome: Outcome) -> None:
    assert flux_rows(block) is outcome
    assert read_points(b"name,tags,time,value\n" + block) is outcome


def test_a_quoted_tag_set_is_read() -> None:
    """Two tags are one cell holding a comma: quoted, and read as one."""
    header = b"name,tags,time,value\n"
    got = as_flux_csv(header + b'f,"site=a,unit=Hz",1619827200000000000,1.5\n')
    assert got == FLUX_HEADER + b",_result,0,2021-05-01T00:00:00Z,1.5\r\n\r\n"
    mixed = b'f,"site=a,unit=Hz",1619827200000000000,1\nf,"site=b,unit=Hz",1619827260000000000,2\n'
    assert as_flux_csv(header + mixed) is Outcome.SEVERAL_TAG_SETS


def test_a_header_other_than_influxqls_is_refused() -> None:
    for header in (b"name,tags,time,value,other\n", b"error\n", b'name,tags,time,"a,b"\n'):
        assert read_points(header + b"f,,1619827200000000000,1\n") is Outcome.UNREADABLE
    assert read_points(b"") is Outcome.EMPTY
    assert read_points(b"name,tags,time,value\n") is Outcome.EMPTY


def test_values_that_are_not_finite_numbers_are_read_as_flux_reads_them() -> None:
    """A value the cells do not take (not a plain decimal: an exponent) is read from Flux's
    text, as ``parse_flux_csv`` reads Flux's answer."""
    raw = b"name,tags,time,value\nf,,1619827200000000000,1e+21\nf,,1619827230000000000,-1e-07\n"
    got = read_points(raw)
    assert isinstance(got, Points)
    assert got.cells() is None
    theirs = as_flux_csv(raw)
    assert isinstance(theirs, bytes)
    assert got == parse_flux_csv(theirs.decode())


def test_names_are_quoted_and_instants_are_integers() -> None:
    read = influxql.PlainRead("b", 'x"y\\', "value", BEGIN, BEGIN + timedelta(microseconds=1), 5)
    assert influxql.statement(read) == (
        'SELECT "value"::field FROM "x\\"y\\\\" WHERE time >= 1619827200000000000 AND '
        "time < 1619827200000001000 GROUP BY * LIMIT 5"
    )
    with pytest.raises(ValueError, match="limit below 1"):
        influxql.PlainRead("b", "m", "value", BEGIN, BEGIN, 0)  # InfluxQL's LIMIT 0: no limit


# --- the API's choice --------------------------------------------------------------------


@pytest.fixture(scope="module")
async def ql_app(influx: InfluxServer, ql_bucket: str) -> AsyncIterator[AppClient]:
    app = AppClient(make_settings(influx, ql_bucket, api_tiers=""))
    async with app:
        yield app


def _languages(metrics: str, kind: str = "as_windows") -> dict[str, float]:
    """Queries of one kind sent so far, by language."""
    return counts_by(
        metrics, "gridts_api_flux_query_duration_seconds", "language", f'query="{kind}"'
    )


async def _get(
    app: AppClient, series: str, *, influxql_reads: bool, resolution: str = "30s"
) -> tuple[httpx.Response, dict[str, float]]:
    """The first ten minutes of a series, and the queries of each language that asked."""
    kind = "data" if resolution == "raw" else "as_windows"
    app.app.state.store._influxql_reads = influxql_reads
    before = _languages((await app.http.get("/metrics")).text, kind)
    try:
        r = await app.http.get(
            f"/v1/series/{series}/data",
            params={
                "start": "2021-05-01T00:00:00Z",
                "end": "2021-05-01T00:10:00Z",
                "resolution": resolution,
                "agg": "max",
            },
        )
    finally:
        app.app.state.store._influxql_reads = True
    after = _languages((await app.http.get("/metrics")).text, kind)
    return r, {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


@pytest.mark.parametrize("series", ["plain", "forms", "SELECT", "dot.ted", "integers", "sited"])
async def test_the_api_answers_the_same_bytes_in_either_language(
    ql_app: AppClient, series: str
) -> None:
    """A series' points read as windows (a small plain read) for names InfluxQL must quote
    (a keyword, a dot), every number form, an integer field and two tags (a quoted cell):
    asked in InfluxQL, the answer is the one Flux gives, and the metrics say InfluxQL
    answered."""
    flux_only, asked_flux = await _get(ql_app, series, influxql_reads=False)
    ours, asked = await _get(ql_app, series, influxql_reads=True)
    assert ours.status_code == flux_only.status_code == 200, ours.text
    assert ours.content == flux_only.content
    assert len(ours.json()["points"]) >= 3, ours.text
    assert (asked_flux, asked) == ({"flux": 1}, {"influxql": 1})


async def test_several_tag_sets_are_read_in_flux_from_then_on(
    ql_app: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """InfluxQL answers a series of two tag sets as two series: Flux reads it then (the
    answer Flux alone gives), and from then on without asking InfluxQL."""
    monkeypatch.setattr(store_module, "INFLUXQL_MOST_ROWS", 10**6)  # raw reads: 100,001
    flux_only, asked_flux = await _get(ql_app, "twin", influxql_reads=False, resolution="raw")
    first, asked_first = await _get(ql_app, "twin", influxql_reads=True, resolution="raw")
    second, asked_second = await _get(ql_app, "twin", influxql_reads=True, resolution="raw")
    assert flux_only.status_code == first.status_code == second.status_code == 200
    assert first.content == second.content == flux_only.content
    assert len(first.json()["points"]) == 8, first.text
    # (Flux reads a series of several tag sets twice: as they are, then merged)
    assert asked_flux == {"flux": 2}
    assert asked_first == {"influxql": 1, "flux": 2}
    assert asked_second == {"flux": 2}


async def test_a_large_read_stays_in_flux(
    ql_app: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``INFLUXQL_MOST_ROWS`` points InfluxQL costs more than it spares: Flux reads."""
    monkeypatch.setattr(store_module, "INFLUXQL_MOST_ROWS", 5)  # the 10 minutes: 21 windows
    r, asked = await _get(ql_app, "forms", influxql_reads=True)
    assert r.status_code == 200
    assert len(r.json()["points"]) == len(FLOATS), r.text
    assert asked == {"flux": 1}


async def test_a_bucket_influxql_does_not_know_is_read_in_flux(influx: InfluxServer) -> None:
    """A bucket named `a/b` is the database `a`, retention policy `b`, to InfluxQL: asked by
    its name, InfluxQL answers nothing, Flux answers the points, and after
    ``INFLUXQL_MISSES`` such answers the API reads that bucket in Flux from then on."""
    name = "slashed/bucket"
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        created = client.buckets_api().create_bucket(bucket_name=name, org=influx.org)
        client.write_api(write_options=SYNCHRONOUS).write(
            name,
            influx.org,
            [f"f,unit=Hz value={k}.5 {T0 + 30 * k}" for k in range(20)],
            write_precision="s",
        )
        try:
            async with AppClient(make_settings(influx, name, api_tiers="")) as api:
                params = {
                    "start": "2021-05-01T00:00:00Z",
                    "end": "2021-05-01T00:10:00Z",
                    "resolution": "30s",
                }
                answers = [
                    await api.get("/v1/series/f/data", params=params)
                    for _ in range(store_module.INFLUXQL_MISSES + 1)
                ]
                metrics = (await api.get("/metrics")).text
        finally:
            client.buckets_api().delete_bucket(created)
    first, misses = answers[0], store_module.INFLUXQL_MISSES
    assert {r.status_code for r in answers} == {200}, first.text
    assert [p["value"] for p in first.json()["points"]] == [k + 0.5 for k in range(20)]
    assert {r.content for r in answers} == {first.content}
    outcomes = [
        line for line in metrics.splitlines() if line.startswith("gridts_api_influxql_reads_total{")
    ]
    assert outcomes == [f'gridts_api_influxql_reads_total{{outcome="empty"}} {misses:.1f}']
    assert _languages(metrics) == {"influxql": misses, "flux": misses + 1}


async def test_a_bucket_is_left_to_flux_only_after_misses_in_a_row(
    ql_app: AppClient, ql_bucket: str
) -> None:
    """One empty answer where Flux then found points can be points written in between (or a
    429 of a moment): the bucket is left to Flux only after ``INFLUXQL_MISSES`` in a row, and
    an answer from InfluxQL starts the count again."""
    store, misses = ql_app.app.state.store, store_module.INFLUXQL_MISSES
    read = influxql.PlainRead(ql_bucket, "plain", "value", BEGIN, BEGIN + timedelta(1), 9)
    found = parse_flux_csv(",result,table,_time,_value\r\n,_result,0,2021-05-01T00:00:00Z,1\r\n")
    try:
        for _ in range(misses - 1):
            store._influxql_fell_back(read, Outcome.EMPTY, found)
        assert store._influxql_may_read(read)
        _, asked = await _get(ql_app, "plain", influxql_reads=True)  # InfluxQL answers
        assert asked == {"influxql": 1}
        for _ in range(misses - 1):
            store._influxql_fell_back(read, Outcome.REFUSED, found)
        assert store._influxql_may_read(read)
        store._influxql_fell_back(read, Outcome.REFUSED, found)
        assert not store._influxql_may_read(read)
    finally:
        store._not_influxql.discard(ql_bucket)
        store._influxql_misses.pop(ql_bucket, None)


_EXAMPLES = iter(range(10**9))
_START, _STOP = datetime(1678, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC)
_FIRST, _LAST = influxql.nanoseconds(_START), influxql.nanoseconds(_STOP) - 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**63 - 1),
        ),
        min_size=1,
        max_size=20,
    ),
    instants=st.lists(
        # instants of 1678 to 2261 (InfluxDB keeps 1677 to 2262), in nanoseconds; whole
        # seconds often
        st.one_of(
            st.integers(_FIRST // 10**9, _LAST // 10**9).map(lambda s: s * 10**9),
            st.integers(_FIRST, _LAST),
        ),
        min_size=20,
        max_size=20,
        unique=True,
    ),
)
async def test_any_points_are_read_as_flux_reads_them(
    influx: InfluxServer, ql_bucket: str, values: list[float | int], instants: list[int]
) -> None:
    """Any finite floats, or any integers (an integer field), at any instants InfluxDB can
    hold: InfluxQL's answer is Flux's, as bytes and as points."""
    name = f"prop_{next(_EXAMPLES)}"
    integer = all(isinstance(v, int) for v in values)
    texts = [f"{v}i" if integer else repr(float(v)) for v in values]
    lines = [f"{name} value={t} {i}" for t, i in zip(texts, instants, strict=False)]
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            ql_bucket, influx.org, "\n".join(lines), write_precision="ns"
        )
    start = datetime(1677, 9, 22, tzinfo=UTC)
    read = influxql.PlainRead(
        ql_bucket, name, "value", start, datetime(2262, 4, 11, tzinfo=UTC), 50
    )
    theirs, raw = await _both(influx, read)
    assert theirs.count(b"\r\n") == len(lines) + 2
    _same_as_fluxs(theirs, raw, integer=integer)
