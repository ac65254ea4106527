"""Pure pieces of answering from tiers (issue 10, item 4): tier CSV, tag sets, edges, stddev."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from app.points import (
    Points,
    TierRows,
    add_edge,
    combine_keys,
    divide,
    parse_sum_count,
    parse_tier_rows,
    stddev_windows,
    tier_rows,
)
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
    starts = [datetime(2021, 5, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(2)]
    got = stddev_windows(rows, starts, [H0, H1])
    assert got.times == [H0, H1]
    for i, value in enumerate(got.values):
        want = float(np.std(v[(t >= t[0] + 3600 * i) & (t < t[0] + 3600 * (i + 1))], ddof=1))
        assert value is not None
        assert math.isclose(value, want, rel_tol=1e-9)
