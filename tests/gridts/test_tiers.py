"""The tier statistics against pandas on the raw points, and the stability of m2."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridts import tiers
from gridts.tiers import Tier, parse_tiers


def test_parse_tiers() -> None:
    assert parse_tiers("1m,15m,1h") == (Tier(60), Tier(900), Tier(3600))
    assert parse_tiers(" 1h , 1m ") == (Tier(60), Tier(3600))
    assert parse_tiers("") == ()
    assert Tier(900).bucket("grid") == "grid_15m"
    bad_tiers = [
        ("7m", "does not divide a day"), ("1m,90s", "not a multiple"), ("1x", "invalid tier"),
        ("1m,1m", "not a multiple"), ("0m", "invalid"),
    ]  # fmt: skip
    for bad, why in bad_tiers:
        with pytest.raises(ValueError, match=why):
            parse_tiers(bad)


def _frame(times: np.ndarray, values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=pd.to_datetime(times, unit="s", utc=True))


def _check(got: tiers.Windows, times: np.ndarray, values: np.ndarray, seconds: int) -> None:
    g = _frame(times, values).resample(f"{seconds}s", origin="epoch")
    want = pd.DataFrame(
        {"count": g.count(), "sum": g.sum(), "min": g.min(), "max": g.max(),
         "first": g.first(), "last": g.last(), "std": g.std(ddof=1)}
    )  # fmt: skip
    want = want[want["count"] > 0]
    assert got.start.tolist() == [int(t.timestamp()) for t in want.index]
    assert got.count.tolist() == want["count"].tolist()
    for field in ("min", "max", "first", "last"):
        assert getattr(got, field).tolist() == want[field].tolist(), field
    np.testing.assert_allclose(got.sum, want["sum"], rtol=1e-12)
    std = got.stddev()
    for a, b in zip(std, want["std"], strict=True):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    spacing=st.sampled_from([1, 7, 30, 900]),
)
def test_windows_and_their_merges_equal_pandas_on_the_points(
    seed: int, n: int, spacing: int
) -> None:
    rng = np.random.default_rng(seed)
    gaps = rng.integers(1, 3, n) * spacing
    times = (1_620_000_000 + np.cumsum(gaps) - gaps[0]).astype(np.int64)
    values = 50.0 + rng.normal(0, 0.02, n)
    fine = tiers.from_points(times, values, 60)
    _check(fine, times, values, 60)
    for seconds in (900, 3600, 86400):
        _check(tiers.coarsen(fine, seconds), times, values, seconds)
        _check(tiers.from_points(times, values, seconds), times, values, seconds)
    # two disjoint halves computed apart and merged: the same as all at once
    cut = n // 2
    a = tiers.from_points(times[:cut], values[:cut], 60)
    b = tiers.from_points(times[cut:], values[cut:], 60)
    _check(tiers.merge(tiers.concat(a, b), tiers.concat(a, b).start), times, values, 60)


def test_m2_keeps_millihertz_deviations_at_50_hz() -> None:
    """A day of 1 s frequency: sums of squares would lose the deviations; m2 does not."""
    rng = np.random.default_rng(1)
    times = np.arange(86_400, dtype=np.int64) + 1_620_000_000 - 1_620_000_000 % 86_400
    values = 50.0 + rng.normal(0, 0.001, len(times))
    day = tiers.coarsen(tiers.coarsen(tiers.from_points(times, values, 60), 3600), 86_400)
    exact = float(np.std(values, ddof=1))
    assert math.isclose(float(day.stddev()[0]), exact, rel_tol=1e-9)
    naive = math.sqrt((np.sum(values**2) - len(values) * np.mean(values) ** 2) / (len(values) - 1))
    assert not math.isclose(naive, exact, rel_tol=1e-9)  # the formulation the ADR rejects
