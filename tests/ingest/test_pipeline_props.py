"""Property tests of the whole ingest pipeline (no database): whatever the rows, every data row is
exactly one point or one rejected row, chunking never changes the result, and nothing crashes.

`make fuzz` runs these with many more examples (GRIDTS_FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.pipeline import Options, RejectLog, run_source
from ingest.sources import Source, _lines
from ingest.timelayout import WEEKDAYS_DE

EXAMPLES = int(os.environ.get("GRIDTS_FUZZ_EXAMPLES", "150"))
HEADER = b"Datum Zeit;A:f_soll_aktiv [Hz]\r\n"


class Collect:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def submit(self, body: bytes, lines: int) -> None:
        got = body.splitlines()
        assert len(got) == lines
        self.lines.extend(got)


def source(data: bytes, block: int) -> Source:
    def blocks() -> Iterator[bytes]:
        for i in range(0, len(data), block):
            yield data[i : i + block]

    return Source("fuzz.csv", len(data), _lines(blocks(), "fuzz.csv"), lambda: 0)


def label(t: datetime) -> bytes:
    return f"{WEEKDAYS_DE[t.weekday()]}. {t:%d.%m.%y %H:%M:%S}".encode()


# rows around the 2021 autumn change (repeated hour) plus junk of every kind
base = datetime(2021, 10, 31, 1, 30)
times = st.integers(0, 240).map(lambda k: base + timedelta(seconds=30 * k))
good_row = st.tuples(times, st.sampled_from([b"50", b"49,99", b"50,01", b"-0,5"])).map(
    lambda tv: label(tv[0]) + b";" + tv[1]
)
bad_row = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.tuples(times, st.binary(max_size=8)).map(
        lambda tv: label(tv[0]) + b";" + tv[1].replace(b"\n", b"")
    ),
    st.just(b"Sa. 31.02.21 00:00:00;50"),
    st.just(b""),
)
# The first row is good: lines above the first good row are header rows when they read like
# text (tests/ingest/test_parse.py checks that rule on its own).
rows = st.tuples(good_row, st.lists(st.one_of(good_row, good_row, bad_row), max_size=120)).map(
    lambda fr: [fr[0], *fr[1]]
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.sampled_from([b"\n", b"\r\n"]), st.integers(16, 4096))
def test_every_row_is_one_point_or_one_reject_whatever_the_chunking(
    lines: list[bytes], eol: bytes, block: int
) -> None:
    data = HEADER + eol.join(lines) + eol
    whole_sink, small_sink = Collect(), Collect()
    whole_rejects, small_rejects = RejectLog(None, keep=10**6), RejectLog(None, keep=10**6)
    opts = Options(label="end", step=30, max_errors=10**9)
    whole = run_source(source(data, 1 << 20), opts, whole_sink, whole_rejects)
    run_source(source(data, block), opts, small_sink, small_rejects)
    nonblank = sum(1 for ln in lines if ln.strip())
    assert whole.rows_read == nonblank
    assert len(whole_sink.lines) + whole_rejects.count == nonblank
    # chunk boundaries (also inside the DST zone) change nothing
    assert small_sink.lines == whole_sink.lines
    assert [(r.line, r.reason) for _, r in small_rejects.kept] == [
        (r.line, r.reason) for _, r in whole_rejects.kept
    ]
    # no instant twice
    stamps = [ln.rsplit(b" ", 1)[1] for ln in whole_sink.lines]
    assert len(stamps) == len(set(stamps))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), good_row), min_size=1, max_size=120),
    st.integers(16, 4096),
)
def test_long_files_split_by_series_whatever_the_chunking(
    rows: list[tuple[str, bytes]], block: int
) -> None:
    data = b"series;time;value\n" + b"".join(s.encode() + b";" + r + b"\n" for s, r in rows)
    opts = Options(label="end", step=30, max_errors=10**9)
    outs = []
    for size in (1 << 20, block):
        sink, log = Collect(), RejectLog(None, keep=10**6)
        result = run_source(source(data, size), opts, sink, log)
        assert result.rows_read == len(rows)
        assert len(sink.lines) + log.count == len(rows)
        outs.append((sorted(sink.lines), [(r.line, r.reason) for _, r in log.kept]))
    assert outs[0] == outs[1]
    # each series is converted on its own: a's rows never clash with b's
    for name in ("a", "b"):
        mine = [ln for ln in outs[0][0] if ln.startswith(name.encode() + b" ")]
        stamps = [ln.rsplit(b" ", 1)[1] for ln in mine]
        assert len(stamps) == len(set(stamps))
