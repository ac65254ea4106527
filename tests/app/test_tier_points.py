"""Pure pieces of answering from tiers (issue 10, item 4): tier CSV, tag sets, edges, stddev."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.points import (
    Points,
    TierRows,
    add_edge,
    combine_keys,
    divide,
    parse_sum_count,
    parse_tier_rows,
    stddev_windows,
    tier_arrays,
    tier_rows,
    tier_windows_of,
)
from app.query.plan import format_time
from gridts import tiers

H0, H1, H2 = "2021-05-01T00:00:00Z", "2021-05-01T01:00:00Z", "2021-05-01T02:00:00Z"


def test_parse_sum_count_blocks() -> None:
    text = (
        ",result,table,_time,_field,_value\r\n"
        f",_result,0,{H0},sum,100.5\r\n,_result,0,{H1},sum,150\r\n"
        f",_result,1,{H0},sum,7\r\n\r\n"
        ",result,table,_time,_field,_value\r\n"
        f",_result,2,{H0},count,2\r\n,_result,2,{H1},count,3\r\n"
        f",_result,3,{H0},count,1\r\n\r\n"
    )
    sums, counts = parse_sum_count(text)
    assert sums.times == counts.times == [H0, H1, H0]
    assert sums.values == [100.5, 150.0, 7.0]
    assert counts.values == [2, 3, 1]
    assert sums.tables == 4
    mixed = (
        ",result,table,_time,_field,_value\r\n"
        f",_result,0,{H0},count,2\r\n,_result,1,{H0},sum,4.5\r\n"
    )
    assert parse_sum_count(mixed) == (Points([H0], [4.5], 2), Points([H0], [2], 2))
    assert parse_sum_count("")[0].times == []


def test_parse_tier_rows() -> None:
    text = f",result,table,_time,count,m2,sum\r\n,_result,0,{H0},2,0.5,3.0\r\n\r\n"
    rows = parse_tier_rows(text)
    assert (rows.times, rows.count, rows.sum, rows.m2) == ([H0], [2], [3.0], [0.5])


def test_tier_rows_pair_the_fields_of_one_tag_set_only() -> None:
    """The unpivoted count, sum and m2 of one tag set make rows; two tag sets, or a field
    missing from a row, leave the pairing to Flux's pivot (None)."""

    def table(n: int, field: str, rows: list[tuple[str, str]]) -> str:
        return "".join(f",_result,{n},{t},{field},{v}\r\n" for t, v in rows)

    head = ",result,table,_time,_field,_value\r\n"
    one = head + table(0, "count", [(H0, "2"), (H1, "3")]) + "\r\n" + head
    one += table(1, "m2", [(H0, "0.5"), (H1, "1.5")]) + table(2, "sum", [(H0, "3"), (H1, "4.5")])
    rows = tier_rows(one)
    assert rows is not None
    assert (rows.times, rows.count, rows.sum, rows.m2) == ([H0, H1], [2, 3], [3.0, 4.5], [0.5, 1.5])
    two = one + table(3, "count", [(H0, "1")]) + table(4, "m2", [(H0, "0")])
    assert tier_rows(two + table(5, "sum", [(H0, "7")])) is None
    short = head + table(0, "count", [(H0, "2"), (H1, "3")]) + table(1, "m2", [(H0, "0.5")])
    assert tier_rows(short + table(2, "sum", [(H0, "3"), (H1, "4.5")])) is None


def test_combine_keys_of_tag_sets() -> None:
    two = Points([H0, H1, H0], [1.0, 5.0, 3.0], 1)  # labels go back: two tag sets
    assert combine_keys(two, "sum") == Points([H0, H1], [4.0, 5.0], 1)
    low, high = combine_keys(two, "min"), combine_keys(two, "max")
    assert low is not None
    assert low.values == [1.0, 5.0]
    assert high is not None
    assert high.values == [3.0, 5.0]
    assert combine_keys(two, "first") is None  # which came first is not in the rows
    one = Points([H0, H1], [1.0, 2.0], 1)
    assert combine_keys(one, "first") is one


def test_divide() -> None:
    assert divide(Points([H0, H1], [3.0, 4.0]), Points([H0, H1], [2, 4])).values == [1.5, 1.0]
    assert divide(Points([H0, H1], [3.0, 4.0]), Points([H1], [4])).times == [H1]


def test_add_edge() -> None:
    p = Points([H1], [10.0])
    assert add_edge(Points([H1], [10.0]), H0, 2.0, "sum", True).times == [H0, H1]
    assert add_edge(Points([H0], [10.0]), H0, 2.0, "sum", True).values == [12.0]
    assert add_edge(Points([H0], [10.0]), H0, 2.0, "first", True).values == [2.0]
    assert add_edge(Points([H0], [10.0]), H0, 2.0, "first", False).values == [10.0]
    assert add_edge(Points([H0], [10.0]), H0, 2.0, "last", False).values == [2.0]
    assert add_edge(Points([H0], [10.0]), H0, 2.0, "min", False).values == [2.0]
    assert add_edge(p, H2, 1.0, "max", False).times == [H1, H2]


def test_stddev_windows_merge_exactly() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(0, 7200, 7, dtype=np.int64) + 1_619_827_200
    v = 50 + rng.normal(0, 0.001, len(t))
    minutes = tiers.from_points(t, v, 60)
    rows = TierRows(
        [datetime.fromtimestamp(int(s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for s in minutes.start],
        minutes.count.tolist(),
        minutes.sum.tolist(),
        minutes.m2.tolist(),
    )
    starts = np.array([1_619_827_200 + 3600 * h for h in range(2)], dtype=np.int64) * 1_000_000
    got = stddev_windows(rows, starts, [H0, H1])
    assert got.times == [H0, H1]
    for i, value in enumerate(got.values):
        want = float(np.std(v[(t >= t[0] + 3600 * i) & (t < t[0] + 3600 * (i + 1))], ddof=1))
        assert value is not None
        assert math.isclose(value, want, rel_tol=1e-9)


_TEXTS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(lambda t: "e" not in t),
    st.integers(-(10**17), 10**17).map(str),
    st.sampled_from(["0", "-0.0", "0.05131528333333359", "3000.083", "45009.00000000001"]),
)


def _unpivoted(rows: list[tuple[int, int, str, str]], crlf: bool) -> str:
    """Flux's unpivoted answer of one tag set: the counts' block, then m2's and sum's tables
    in one block (the same column types)."""
    end = "\r\n" if crlf else "\n"
    head = ",result,table,_time,_value,_field" + end
    day = datetime(2021, 5, 1, tzinfo=UTC)
    cells = [(format_time(day + timedelta(minutes=m)), c, s, v) for m, c, s, v in rows]
    counts = "".join(f",_result,0,{t},{c},count{end}" for t, c, _, _ in cells)
    m2 = "".join(f",_result,1,{t},{v},m2{end}" for t, _, _, v in cells)
    sums = "".join(f",_result,2,{t},{s},sum{end}" for t, _, s, _ in cells)
    return head + counts + end + head + m2 + sums + end


@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**6), _TEXTS, _TEXTS),
             min_size=1, max_size=30, unique_by=lambda r: r[0]),
    st.booleans(),
)  # fmt: skip
def test_tier_rows_read_with_numpy_are_the_rows_read_as_strings(
    rows: list[tuple[int, int, str, str]], crlf: bool
) -> None:
    """``tier_arrays``: the same windows, counts, sums and m2 (bit for bit) as ``tier_rows``
    reads from the same answer, whatever the digits and line ends."""
    rows.sort()
    text = _unpivoted(rows, crlf)
    got = tier_arrays(text)
    want = tier_rows(text)
    assert got is not None
    assert want is not None
    expected = tier_windows_of(want)
    for name in ("start", "count", "sum", "m2"):
        assert getattr(got, name).tolist() == getattr(expected, name).tolist(), name
    assert [math.copysign(1, v) for v in got.sum.tolist()] == [
        math.copysign(1, v) for v in expected.sum.tolist()
    ]


def test_tier_rows_numpy_leaves_every_other_answer_to_the_strings() -> None:
    """Two tag sets (a field in two runs), a label with a fraction of a second, a value that
    is not a decimal, a count that is not whole, a field missing, rows of another width: None
    (``tier_rows`` or the pivoted read answers them)."""
    one = _unpivoted([(0, 2, "3.5", "0.5"), (1, 3, "4", "1.25")], True)
    assert tier_arrays(one) is not None
    second_tag_set = one.rstrip("\r\n") + "\r\n,_result,3,2021-05-01T00:00:00Z,1,count\r\n"
    fraction = one.replace("2021-05-01T00:01:00Z", "2021-05-01T00:01:00.5Z")
    exponent = one.replace(",3.5,", ",3.5e-05,")
    half = one.replace(",2,count", ",2.5,count")
    no_m2 = one.replace(",m2\r\n", ",sum2\r\n")
    wide = one.replace(",0.5,m2", ",0.5,m2,x")
    error = "error,reference\r\nsomething,\r\n"
    for text in (second_tag_set, fraction, exponent, half, no_m2, wide, error, ""):
        assert tier_arrays(text) is None, text


def _counts_and_m2(tag_sets: list[list[tuple[int, int, str]]]) -> str:
    """Flux's unpivoted answer of count and m2 only, for several tag sets: the counts' tables
    one after the other, then the m2 tables (rows: minute, count, m2)."""
    head = ",result,table,_time,_value,_field\r\n"
    day = datetime(2021, 5, 1, tzinfo=UTC)

    def block(field: str, first_table: int) -> str:
        return "".join(
            f",_result,{first_table + k},{format_time(day + timedelta(minutes=m))},"
            f"{c if field == 'count' else v},{field}\r\n"
            for k, rows in enumerate(tag_sets)
            for m, c, v in rows
        )

    return head + block("count", 0) + "\r\n" + head + block("m2", len(tag_sets)) + "\r\n"


def test_own_windows_are_read_without_sums_only_when_each_has_one_row() -> None:
    """A tier's own windows need count and m2 alone, when no window has rows of two tag sets
    (their merge needs the sums): those are None, for the caller to read the sums too."""
    one = tier_arrays(_counts_and_m2([[(0, 2, "0.5"), (1, 3, "1.25")]]), sums=False)
    assert one is not None
    assert (one.start.tolist(), one.count.tolist(), one.m2.tolist(), one.sum.tolist()) == (
        [1_619_827_200, 1_619_827_260], [2, 3], [0.5, 1.25], [0.0, 0.0])  # fmt: skip
    apart = _counts_and_m2([[(0, 2, "0.5")], [(1, 3, "1.25")]])  # tag sets in other minutes
    assert tier_arrays(apart, sums=False) is not None
    shared = _counts_and_m2([[(0, 2, "0.5"), (1, 3, "1.25")], [(1, 4, "2")]])
    assert tier_arrays(shared, sums=False) is None
    back = _counts_and_m2([[(1, 3, "1.25")], [(0, 2, "0.5")]])  # the second tag set earlier
    assert tier_arrays(back, sums=False) is None
    with_sums = _unpivoted([(0, 2, "3.5", "0.5"), (1, 3, "4", "1.25")], True)
    assert tier_arrays(with_sums, sums=False) is None  # (what it asked for, no more)
    assert tier_arrays(_counts_and_m2([[(0, 2, "0.5")]])) is None  # sums asked for: none
