"""ingest.rollup.values_of: the float of every value text, bit for bit what Python's float()
(and InfluxDB's parser: both correctly rounded) makes of it, on its fast path and off it."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ingest.rollup import values_of


def spans(texts: list[str], gap: bytes = b";x;") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The texts inside one buffer with other bytes between them, as the parser hands them."""
    buf, start, length = bytearray(), [], []
    for t in texts:
        buf += gap
        start.append(len(buf))
        length.append(len(t))
        buf += t.encode()
    return (
        np.frombuffer(bytes(buf), dtype=np.uint8),
        np.array(start, dtype=np.int64),
        np.array(length, dtype=np.int64),
    )


def same_bits(got: np.ndarray, texts: list[str]) -> bool:
    want = np.array([float(t) for t in texts], dtype=np.float64)
    return bool(np.array_equal(got.view(np.int64), want.view(np.int64)))


def test_fast_path_and_fallback() -> None:
    texts = [
        "50", "49.99", "49.987", "-0", "0", "-0.0", ".5", "5.", "-1.5", "0.1", "0.3",
        "123456789012345", "0.000000000000001", "999999999999999",  # 15 digits: fast path
        "1234567890123456", "9007199254740993", "0.1234567890123456",  # 16+: numpy's parser
        "1e5", "-2.5E-3", "nan", "inf", "-inf", "+3", "1.7976931348623157e308",
    ]  # fmt: skip
    got = values_of(*spans(texts))
    want = np.array([float(t) for t in texts])
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))  # -0 stays negative


def test_empty() -> None:
    assert len(values_of(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))) == 0


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_any_float_text(values: list[float]) -> None:
    texts = [repr(v) for v in values] + [f"{v:.6f}" for v in values if abs(v) < 1e8]
    assert same_bits(values_of(*spans(texts)), texts)


@given(
    st.lists(
        st.tuples(st.integers(0, 10**15 - 1), st.integers(0, 15), st.booleans()),
        min_size=1,
        max_size=50,
    )
)
def test_decimals_of_up_to_15_digits(parts: list[tuple[int, int, bool]]) -> None:
    texts = []
    for mantissa, decimals, negative in parts:
        digits = str(mantissa).rjust(decimals + 1, "0")
        text = digits[: len(digits) - decimals] + ("." + digits[-decimals:] if decimals else "")
        texts.append(("-" if negative else "") + text)
    assert same_bits(values_of(*spans(texts)), texts)


def test_a_year_of_millihertz_texts() -> None:
    mhz = np.random.default_rng(0).integers(49_800, 50_200, 200_000)
    texts = [f"{m // 1000}.{m % 1000:03d}".rstrip("0").rstrip(".") for m in mhz.tolist()]
    assert same_bits(values_of(*spans(texts, gap=b"\n")), texts)
