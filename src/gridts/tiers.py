"""Rollup tiers: what they are, where they live, and the exact statistics they hold.

A tier is a window length (default `1m`, `15m`, `1h`). For every series and every window of a
tier that holds points, the tier bucket `<bucket>_<tier>` has one point at the window's **start**
with the fields of `FIELDS`: `count` (int), `sum`, `min`, `max`, `first`, `last`, and `m2`, the
sum of squared deviations from the window's mean (and `mean`, which follows from them). Every
aggregate the API offers except the median follows exactly from these, for any union of windows
(ADR 0014):

    mean = sum / count,  stddev = sqrt(m2 / (count - 1)),
    m2 of a union = sum of (m2_i + count_i * (mean_i - mean)^2)   (Chan, Golub and LeVeque)

`m2` instead of a sum of squares: at 50 Hz with deviations of millihertz, `sum(x^2)` holds
2.5e3 per point and `sum(x^2) - n * mean^2` cancels 9 to 10 of float64's 16 digits; `m2` sums
the deviations themselves and keeps them.

Pure: numpy in, numpy out. The ingest computes windows from parsed columns and merges them into
coarser tiers; the API merges tier rows into the windows a request asks for.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridts.durations import format_duration, parse_duration

FIELDS = ("count", "sum", "min", "max", "first", "last", "m2")
# What a tier point stores: FIELDS and `mean` (= sum / count: a mean at the tier's own window
# reads one field; ADR 0015).
STORED_FIELDS = (*FIELDS, "mean")
DEFAULT_TIERS = "1m,15m,1h"

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, order=True)
class Tier:
    """A rollup window length in whole seconds; it divides a day."""

    seconds: int

    @property
    def text(self) -> str:
        return format_duration(self.seconds)

    def bucket(self, raw_bucket: str) -> str:
        """The bucket that holds this tier of ``raw_bucket``: `grid` -> `grid_15m`."""
        return f"{raw_bucket}_{self.text}"


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """`1m,15m,1h` -> tiers, finest first. Each divides a day and the next one, so that a
    coarser tier is made of whole windows of the finer ones. Empty: no tiers."""
    tiers: list[Tier] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            seconds = parse_duration(part, digits=6)
        except ValueError:
            raise ValueError(f"invalid tier {part!r}: a duration such as 1m, 15m, 1h") from None
        if 86400 % seconds:
            raise ValueError(f"tier {part} does not divide a day")
        tiers.append(Tier(seconds))
    tiers.sort()
    for finer, coarser in itertools.pairwise(tiers):
        if coarser.seconds % finer.seconds or coarser == finer:
            raise ValueError(f"tier {coarser.text} is not a multiple of {finer.text}")
    return tuple(tiers)


@dataclass
class Windows:
    """Statistics of consecutive windows, one entry per window that holds points, in time
    order: ``start`` in seconds since the epoch (UTC)."""

    start: Ints
    count: Ints
    sum: Floats
    min: Floats
    max: Floats
    first: Floats
    last: Floats
    m2: Floats

    def __len__(self) -> int:
        return len(self.start)

    @property
    def mean(self) -> Floats:
        return self.sum / self.count

    def stddev(self) -> Floats:
        """The sample standard deviation (n - 1), NaN for windows of one point."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.where(self.count > 1, self.m2 / (self.count - 1), np.nan))

    def select(self, keep: npt.NDArray[np.bool_] | Ints) -> Windows:
        """The windows a boolean mask keeps, or those an index array picks, in its order."""
        return Windows(*(getattr(self, f)[keep] for f in ("start", *FIELDS)))


def _groups(keys: Ints) -> tuple[Ints, Ints]:
    """Starts of the runs of equal keys in a sorted array, and the run of each element."""
    edges = np.flatnonzero(np.diff(keys)) + 1
    firsts = np.concatenate([[0], edges]).astype(np.int64)
    run = np.repeat(np.arange(len(firsts)), np.diff(np.concatenate([firsts, [len(keys)]])))
    return firsts, run


def from_points(times: Ints, values: Floats, seconds: int) -> Windows:
    """Windows of ``seconds`` (aligned to the epoch) from points in time order (seconds)."""
    if len(times) == 0:
        return empty()
    if np.any(np.diff(times) < 0):
        raise ValueError("points must be in time order")
    return grouped(times - times % seconds, values)


def grouped(keys: Ints, values: Floats) -> Windows:
    """One window per run of equal ``keys`` (non-decreasing; the window's start, or any key
    of it) from the values of its points, in order: m2 in two passes, about each window's own
    mean."""
    if len(keys) == 0:
        return empty()
    firsts, run = _groups(keys)
    lasts = np.concatenate([firsts[1:], [len(keys)]]) - 1
    count = np.diff(np.concatenate([firsts, [len(keys)]])).astype(np.int64)
    total = np.add.reduceat(values, firsts)
    mean = total / count
    return Windows(
        start=keys[firsts],
        count=count,
        sum=total,
        min=np.minimum.reduceat(values, firsts),
        max=np.maximum.reduceat(values, firsts),
        first=values[firsts],
        last=values[lasts],
        m2=np.add.reduceat((values - mean[run]) ** 2, firsts),
    )


def merge(parts: Windows, keys: Ints) -> Windows:
    """Merge consecutive windows that share a key (the start of the window they make up,
    non-decreasing) into one window each: the exact union of their points' statistics."""
    if len(parts) == 0:
        return empty()
    if np.any(np.diff(keys) < 0):
        raise ValueError("keys must be non-decreasing")
    firsts, run = _groups(keys)
    lasts = np.concatenate([firsts[1:], [len(keys)]]) - 1
    count = np.add.reduceat(parts.count, firsts)
    total = np.add.reduceat(parts.sum, firsts)
    mean = total / count
    spread = parts.count * (parts.mean - mean[run]) ** 2
    return Windows(
        start=keys[firsts],
        count=count,
        sum=total,
        min=np.minimum.reduceat(parts.min, firsts),
        max=np.maximum.reduceat(parts.max, firsts),
        first=parts.first[firsts],
        last=parts.last[lasts],
        m2=np.add.reduceat(parts.m2 + spread, firsts),
    )


def coarsen(parts: Windows, seconds: int) -> Windows:
    """Windows of ``seconds`` (epoch-aligned) from finer windows whose length divides it."""
    return merge(parts, parts.start - parts.start % seconds)


def stacked(*many: Windows) -> Windows:
    """The windows of several parts one after the other, in the order they come."""
    return Windows(*(np.concatenate([getattr(w, f) for w in many]) for f in ("start", *FIELDS)))


def concat(*many: Windows) -> Windows:
    """Windows of several disjoint ranges, put in time order."""
    joined = stacked(*many)
    order = np.argsort(joined.start, kind="stable")
    return joined.select(order.astype(np.int64))


def empty() -> Windows:
    f = np.empty(0, dtype=np.float64)
    return Windows(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), f, f, f, f, f, f)
