"""Request parameters -> a validated, typed QueryPlan. Pure: no I/O, no clock, no Flux.

Everything a user sends is parsed here into typed values (datetimes, whole-second windows, enums,
a zone name checked against the IANA database); `flux.py` turns the plan into Flux text and
parameters, and never sees a raw user string. Window arithmetic (how many windows a range spans,
where the first one starts) lives here too, so `auto`, the point cap and the label of a window
clipped by `start` all agree with what Flux computes.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from enum import StrEnum
from functools import cache
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from app.errors import InvalidParameter, NotAcceptable, ScanTooLarge, TooManyPoints, UnknownSeries
from gridts.durations import format_duration, parse_duration
from gridts.names import is_series_name
from gridts.tiers import Tier

MAX_SERIES_PER_REQUEST = 20

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+\- ]\d{2}:\d{2})"
)
# InfluxDB stores int64 nanoseconds since 1970: roughly 1677-09-21 to 2262-04-11.
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
E = TypeVar("E", bound=StrEnum)

DAY = 86_400
WEEK = 7 * DAY
MAX_WINDOW_SECONDS = 520 * WEEK
# 1970-01-01 was a Thursday; windows of whole weeks are shifted by four days to start on Monday.
WEEK_OFFSET_SECONDS = 4 * DAY


class Agg(StrEnum):
    """Aggregate applied to the points of each window."""

    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    FIRST = "first"
    LAST = "last"
    MEDIAN = "median"
    STDDEV = "stddev"


class Fill(StrEnum):
    """What a window without points becomes."""

    NONE = "none"  # omitted
    NULL = "null"  # present with value null
    PREVIOUS = "previous"  # the last non-empty window's value (null before the first)
    LINEAR = "linear"  # interpolated in time between the neighbouring non-empty windows


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"
    NDJSON = "ndjson"


MEDIA_TYPES: dict[Format, str] = {
    Format.JSON: "application/json",
    Format.CSV: "text/csv; charset=utf-8",
    Format.NDJSON: "application/x-ndjson",
}
_ACCEPTED: dict[str, Format] = {
    "application/json": Format.JSON,
    "text/csv": Format.CSV,
    "application/x-ndjson": Format.NDJSON,
    "application/ndjson": Format.NDJSON,
    "application/jsonl": Format.NDJSON,
    "*/*": Format.JSON,
    "application/*": Format.JSON,
    "text/*": Format.CSV,
}


@dataclass(frozen=True, order=True)
class Window:
    """A window length in whole seconds, aligned to the Unix epoch (weeks: to Mondays)."""

    seconds: int

    @property
    def text(self) -> str:
        """The canonical spelling: the largest unit that divides the length (`60m` -> `1h`)."""
        return format_duration(self.seconds, units="smhdw")

    @property
    def whole_days(self) -> bool:
        return self.seconds % DAY == 0

    @property
    def offset_seconds(self) -> int:
        return WEEK_OFFSET_SECONDS if self.seconds % WEEK == 0 else 0

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def offset(self) -> timedelta:
        return timedelta(seconds=self.offset_seconds)


# The ladder `auto` climbs, finest first; each divides a day or is whole days.
STANDARD_WINDOWS: tuple[Window, ...] = tuple(
    Window(s)
    for s in (
        1, 2, 5, 10, 15, 30,
        60, 120, 300, 600, 900, 1800,
        3600, 7200, 10800, 21600, 43200,
        DAY, WEEK,
    )
)  # fmt: skip


@dataclass(frozen=True)
class QueryPlan:
    """One validated request: which series, which instants, which windows, which aggregate."""

    series: tuple[str, ...]
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    window: Window | None  # None: raw points
    agg: Agg
    fill: Fill
    tz: str | None  # set only for windows of whole days
    max_points: int
    format: Format
    bucket: str
    auto: bool = False
    tier: Tier | None = None  # the rollup tier that answers the plan; None: the raw points
    answered_by: str | None = None  # set after the query when not every series was `source`

    @property
    def resolution(self) -> str:
        return self.window.text if self.window is not None else "raw"

    @property
    def source(self) -> str:
        """Which data answers: `raw`, or `tier:15m` for the tier bucket of 15-minute windows
        (after the query: `tier:15m,raw` when one series of several had to be read raw)."""
        if self.answered_by is not None:
            return self.answered_by
        return "raw" if self.tier is None else f"tier:{self.tier.text}"

    def answered(self, sources: list[str]) -> QueryPlan:
        """The plan saying which data answered its series (``Points.source`` of each)."""
        found = sorted(set(sources), key=lambda s: (s == "raw", s))
        text = ",".join(found) if found else self.source
        return self if text == self.source else replace(self, answered_by=text)

    @property
    def tier_range(self) -> tuple[datetime, datetime]:
        """The part of the range the tier answers; before and after it (at most a tier
        window each) the raw points do. The whole range without a tier."""
        if self.tier is None:
            return self.start, self.end
        return tier_range(self, self.tier)

    @property
    def edge_ranges(self) -> list[tuple[datetime, datetime]]:
        """The pieces of the range before and after ``tier_range`` that the raw points
        answer (none, one or two)."""
        inner_start, inner_end = self.tier_range
        return [(a, b) for a, b in ((self.start, inner_start), (inner_end, self.end)) if a < b]

    @property
    def source_bucket(self) -> str:
        """The bucket the plan reads: the raw bucket, or its tier's (`grid_15m`)."""
        return self.bucket if self.tier is None else self.tier.bucket(self.bucket)

    @property
    def raw_limit(self) -> int:
        """Raw queries fetch one point more than the cap to detect an overflow."""
        return self.max_points + 1

    def window_count(self) -> int | None:
        """Windows the range spans, i.e. the most points per series; None for raw."""
        if self.window is None:
            return None
        return window_count(self.start, self.end, self.window, self.tz)

    def first_window_start(self) -> datetime | None:
        if self.window is None:
            return None
        return window_start(self.start, self.window, self.tz)

    def clipped(self) -> frozenset[str]:
        """Labels of the windows the range cuts (at most the first and the last): they hold
        only part of their span, which a user summing or comparing windows must know."""
        if self.window is None:
            return frozenset()
        labels = set()
        first = window_start(self.start, self.window, self.tz)
        if first != self.start:
            labels.add(format_time(first))
        if window_start(self.end, self.window, self.tz) != self.end:
            last = window_start(self.end - timedelta(microseconds=1), self.window, self.tz)
            labels.add(format_time(last))
        return frozenset(labels)

    def window_starts(self) -> list[datetime]:
        """The start of every window of the range, in order (empty for raw)."""
        if self.window is None:
            return []
        return window_starts(self.start, self.end, self.window, self.tz)

    def window_start_micros(self) -> Sequence[int]:
        """``window_starts`` in microseconds since the epoch (``window_start_micros``)."""
        if self.window is None:
            return []
        return window_start_micros(self.start, self.end, self.window, self.tz)


@dataclass(frozen=True)
class DataParams:
    """The raw strings of a data request, as they arrived."""

    start: str | None = None
    end: str | None = None
    resolution: str | None = None
    agg: str | None = None
    fill: str | None = None
    tz: str | None = None
    max_points: str | None = None
    format: str | None = None
    accept: str | None = None


def check_query(
    items: list[tuple[str, str]], allowed: Collection[str], repeatable: Collection[str] = ()
) -> None:
    """Every query parameter is one the route takes, has a value, and (unless repeatable) is
    given once: `aggregate=sum` returning the mean, or `agg=` meaning the default, would be a
    parameter silently ignored."""
    seen: set[str] = set()
    for name, value in items:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) if allowed else "no parameters"
            raise InvalidParameter(
                name[:60], f"unknown parameter {_quote(name)}; this route takes {takes}"
            )
        if not value.strip():
            raise InvalidParameter(name, "empty: give a value, or leave it out for the default")
        if name in seen and name not in repeatable:
            raise InvalidParameter(name, "given more than once")
        seen.add(name)


def parse_time(param: str, text: str | None) -> datetime:
    """An RFC 3339 instant with `Z` or an offset, to microseconds, in UTC."""
    if text is None or text == "":
        raise InvalidParameter(param, "required (RFC 3339, e.g. 2021-05-02T00:00:00Z)")
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        raise InvalidParameter(param, f"not an RFC 3339 time with Z or an offset: {_quote(text)}")
    frac = m["frac"] or ""
    if len(frac) > 6 and int(frac[6:]) != 0:
        raise InvalidParameter(param, "sub-microsecond precision is not supported")
    zone = m["zone"].upper()
    # A `+` left unescaped in a query string arrives as a space.
    zone = "+00:00" if zone == "Z" else zone.replace(" ", "+")
    iso = f"{m['date']}T{m['time']}" + (f".{frac[:6].ljust(6, '0')}" if frac else "") + zone
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise InvalidParameter(param, f"not a valid date or time: {_quote(text)}") from exc
    utc = parsed.astimezone(UTC)
    if not EARLIEST <= utc <= LATEST:
        raise InvalidParameter(param, "outside the range InfluxDB can store (1678 to 2262)")
    return utc


def parse_window(text: str) -> Window:
    """A duration in the strict grammar `<1-999999><s|m|h|d|w>`, e.g. `30s`, `15m`, `1d`."""
    try:
        if text != text.strip():
            raise ValueError(text)
        seconds = parse_duration(text, units="smhdw", digits=6)
    except ValueError:
        raise InvalidParameter(
            "resolution",
            f"{_quote(text)} is not raw, auto or a duration such as 30s, 15m, 1h, 1d, 1w",
        ) from None
    if seconds > MAX_WINDOW_SECONDS:
        raise InvalidParameter("resolution", f"{text} is longer than the maximum, 520w")
    return Window(seconds)


@cache
def iana_zones() -> frozenset[str]:
    """The zone names a user may give: the tz database's zones, not its folders (`Europe`),
    its helper files (`localtime`, `posixrules`) or the `Factory` placeholder. Checking against
    this list means no user string is opened as a path (a folder gave IsADirectoryError, a name
    over 255 characters OSError: both were 500s)."""
    return frozenset(available_timezones() - {"Factory", "localtime", "posixrules"})


def parse_tz(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    if not re.fullmatch(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,2}", text):
        raise InvalidParameter("tz", f"not an IANA time zone name: {_quote(text)}")
    if text not in iana_zones():
        raise InvalidParameter("tz", f"unknown IANA time zone: {_quote(text)}")
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidParameter("tz", f"unknown IANA time zone: {_quote(text)}") from exc
    return text


def parse_series(names: list[str]) -> tuple[str, ...]:
    """Series names in the catalog's grammar; an impossible name is an unknown series."""
    if not names:
        raise InvalidParameter("series", "at least one series is required")
    if len(names) > MAX_SERIES_PER_REQUEST:
        raise InvalidParameter("series", f"at most {MAX_SERIES_PER_REQUEST} series per request")
    if len(set(names)) != len(names):
        raise InvalidParameter("series", "a series is listed twice")
    for name in names:
        if not is_series_name(name):
            raise UnknownSeries(name)
    return tuple(names)


def _choice(param: str, text: str | None, enum: type[E], default: E) -> E:
    if text is None or text == "":
        return default
    try:
        return enum(text)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise InvalidParameter(param, f"{_quote(text)} is not one of {allowed}") from None


def negotiate_format(format_param: str | None, accept: str | None) -> Format:
    """`format=` wins; otherwise the best-rated supported type in Accept; JSON by default."""
    if format_param:
        return _choice("format", format_param, Format, Format.JSON)
    if not accept or not accept.strip():
        return Format.JSON
    best: tuple[tuple[float, int, int], Format] | None = None
    for order, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        fmt = _ACCEPTED.get(media.lower())
        if fmt is None or not quality > 0:
            continue
        # Higher quality wins; at equal quality an exact type beats a wildcard, then the order.
        rank = (quality, 0 if "*" in media else 1, -order)
        if best is None or rank > best[0]:
            best = (rank, fmt)
    if best is None:
        raise NotAcceptable(
            "none of the accepted media types is supported: "
            "application/json, text/csv, application/x-ndjson"
        )
    return best[1]


def parse_max_points(text: str | None, cap: int) -> int:
    if text is None or text == "":
        return cap
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise InvalidParameter("max_points", f"not a positive integer: {_quote(text)}")
    value = int(text)
    if not 1 <= value <= cap:
        raise InvalidParameter("max_points", f"must be between 1 and {cap}")
    return value


def window_start(instant: datetime, window: Window, tz: str | None) -> datetime:
    """Start of the window containing `instant`: epoch-aligned in UTC, or with `tz` on the
    local clock (local midnights for days; `_local_starts` for windows under a day)."""
    if tz is not None and not window.whole_days:
        return _from_micros(_local_start(_micros(instant), window.seconds * MICRO, tz))
    if tz is not None and window.whole_days:
        zone = ZoneInfo(tz)
        days = window.seconds // DAY
        index = _local_day_index(instant, zone, window)
        first = date(1970, 1, 1) + timedelta(days=index * days + window.offset_seconds // DAY)
        return datetime.combine(first, dtime(0), tzinfo=zone).astimezone(UTC)
    micros = _micros(instant) - window.offset_seconds * 1_000_000
    step = window.seconds * 1_000_000
    aligned = (micros // step) * step + window.offset_seconds * 1_000_000
    return EPOCH + timedelta(microseconds=aligned)


def window_starts(start: datetime, end: datetime, window: Window, tz: str | None) -> list[datetime]:
    """Starts of the windows that intersect [start, end)."""
    return [_from_micros(us) for us in window_start_micros(start, end, window, tz)]


def window_start_micros(
    start: datetime, end: datetime, window: Window, tz: str | None
) -> Sequence[int]:
    """``window_starts`` as microseconds since the epoch, without a datetime each: a `range`
    for UTC windows (evenly spaced), a list for local ones."""
    if tz is not None and not window.whole_days:
        step_us = window.seconds * MICRO
        first_us = _local_start(_micros(start), step_us, tz)
        return [first_us, *_local_starts(_micros(start) + 1, _micros(end), step_us, tz)]
    first = window_start(start, window, tz)
    if tz is not None and window.whole_days:
        zone = ZoneInfo(tz)
        day = first.astimezone(zone).date()
        step = timedelta(days=window.seconds // DAY)
        count = window_count(start, end, window, tz)
        days = [day + step * i for i in range(count)]
        return [_micros(datetime.combine(d, dtime(0), tzinfo=zone)) for d in days]
    count = window_count(start, end, window, None)
    step_us = window.seconds * MICRO
    return range(_micros(first), _micros(first) + step_us * count, step_us)


def window_count(start: datetime, end: datetime, window: Window, tz: str | None) -> int:
    """How many windows intersect [start, end)."""
    if end <= start:
        return 0
    last = end - timedelta(microseconds=1)
    if tz is not None and not window.whole_days:
        step = window.seconds * MICRO
        return 1 + _count_local_starts(_micros(start) + 1, _micros(end), step, tz)
    if tz is not None and window.whole_days:
        zone = ZoneInfo(tz)
        return _local_day_index(last, zone, window) - _local_day_index(start, zone, window) + 1
    offset = window.offset_seconds * 1_000_000
    step = window.seconds * 1_000_000
    return (_micros(last) - offset) // step - (_micros(start) - offset) // step + 1


def _local_day_index(instant: datetime, zone: ZoneInfo, window: Window) -> int:
    local_day = instant.astimezone(zone).date()
    days = (local_day - date(1970, 1, 1)).days - window.offset_seconds // DAY
    return days // (window.seconds // DAY)


# Windows under a day in a zone follow the local clock: a window starts at every instant whose
# local time is a multiple of the window since the local epoch (`1h` in Asia/Kathmandu, UTC+05:45,
# starts at :15 UTC; `6h` in Zurich at local 00, 06, 12, 18). A boundary the clock skips starts
# its window at the jump (`2h` on Zurich's spring day: 00:00, then 03:00 CEST for the skipped
# 02:00, then 04:00), as Flux's `location` and local midnights do; a boundary the clock repeats
# starts two (`1h` on the autumn day: 02:00 CEST and 02:00 CET). Between offset changes the
# starts are an arithmetic series, so they are computed per stretch of constant offset.
MICRO = 1_000_000
_PROBE = 7 * DAY * MICRO  # offset changes of real zones are weeks apart
_MARGIN = 2 * DAY * MICRO  # a window under a day never reaches further back than this


@cache
def _stretches(tz: str, lo_week: int, hi_week: int) -> tuple[tuple[int, int], ...]:
    """(from, offset) in microseconds: the zone's UTC offset from each instant on, covering the
    weeks [lo_week, hi_week] since the epoch (probed weekly, changes found to the second)."""
    zone = ZoneInfo(tz)

    def offset(us: int) -> int:
        delta = _from_micros(us).astimezone(zone).utcoffset()
        return int(delta.total_seconds()) * MICRO if delta is not None else 0

    lo, hi = lo_week * _PROBE, (hi_week + 1) * _PROBE
    out = [(lo, offset(lo))]
    for probe in range(lo + _PROBE, hi + 1, _PROBE):
        now = offset(probe)
        if now == out[-1][1]:
            continue
        a, b = (probe - _PROBE) // MICRO, probe // MICRO  # offset(a) is old, offset(b) new
        while b - a > 1:
            mid = (a + b) // 2
            a, b = (mid, b) if offset(mid * MICRO) == out[-1][1] else (a, mid)
        out.append((b * MICRO, now))
    return tuple(out)


def _stretches_over(lo: int, hi: int, tz: str) -> list[tuple[int, int, int]]:
    """(start, end, offset) of the stretches of constant offset that cover [lo, hi)."""
    found = _stretches(tz, (lo - _MARGIN) // _PROBE, (hi + _MARGIN) // _PROBE)
    out = []
    for i, (a, off) in enumerate(found):
        b = found[i + 1][0] if i + 1 < len(found) else hi + _MARGIN + _PROBE
        if b > lo - _MARGIN and a < hi + _MARGIN:
            out.append((a, b, off))
    return out


def _jump_starts(lo: int, hi: int, step: int, tz: str) -> list[int]:
    """Instants in [lo, hi) where the clock jumps forward over a window boundary without
    landing on one: each starts the window of the skipped boundary."""
    stretches = _stretches_over(lo, hi, tz)
    out = []
    for (_, _, before), (a, _, after) in itertools.pairwise(stretches):
        skipped = after > before and (a + after - 1) // step >= -(-(a + before) // step)
        if skipped and (a + after) % step and lo <= a < hi:
            out.append(a)
    return out


def _count_local_starts(lo: int, hi: int, step: int, tz: str) -> int:
    """How many local window starts lie in [lo, hi) (microseconds)."""
    total = len(_jump_starts(lo, hi, step, tz))
    for a, b, off in _stretches_over(lo, hi, tz):
        a, b = max(a, lo), min(b, hi)
        if a < b:  # instants s in [a, b) with s + off a multiple of step
            total += (b - 1 + off) // step - (a - 1 + off) // step
    return total


def _local_starts(lo: int, hi: int, step: int, tz: str) -> list[int]:
    """The local window starts in [lo, hi), in order."""
    out: list[int] = _jump_starts(lo, hi, step, tz)
    for a, b, off in _stretches_over(lo, hi, tz):
        a, b = max(a, lo), min(b, hi)
        if a < b:
            first = a + (-(a + off)) % step
            out.extend(range(first, b, step))
    return sorted(out)


def _local_start(instant: int, step: int, tz: str) -> int:
    """The last local window start at or before ``instant``: one window back at most (a
    window longer than a day that is not whole days, such as 36h, reaches back past the
    stretches around ``instant``)."""
    back = instant - step
    jumps = _jump_starts(back - _MARGIN, instant + 1, step, tz)
    for a, b, off in reversed(_stretches_over(back, instant + 1, tz)):
        top = min(b - 1, instant)
        if top < a:
            continue
        candidate = top - (top + off) % step
        if candidate >= a:
            return max([candidate, *jumps])
    if jumps:  # no boundary on the clock since the last jump over one (a window of months)
        return max(jumps)
    raise AssertionError("unreachable: every stretch of a day holds a start")


def _from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _micros(instant: datetime) -> int:
    delta = instant - EPOCH
    return (delta.days * DAY + delta.seconds) * 1_000_000 + delta.microseconds


def suggest_window(
    start: datetime, end: datetime, tz: str | None, max_points: int, coarser_than: int = 0
) -> Window | None:
    """The finest standard window longer than `coarser_than` seconds that fits `max_points`."""
    for window in STANDARD_WINDOWS:
        if window.seconds <= coarser_than:
            continue
        if window_count(start, end, window, tz) <= max_points:
            return window
    return None


def no_finer_than(plan: QueryPlan, step_seconds: float | None) -> QueryPlan:
    """An ``auto`` plan whose window is at least the series' spacing: windows finer than the
    points are mostly empty (a 15-minute series at 1 m is one value in 15 windows, which
    draws no line). Explicit resolutions are the user's choice and stay."""
    if not plan.auto or plan.window is None or not step_seconds:
        return plan
    if plan.window.seconds >= step_seconds:
        return plan
    coarser = [w for w in STANDARD_WINDOWS if w.seconds >= step_seconds]
    window = coarser[0] if coarser else STANDARD_WINDOWS[-1]
    return replace(plan, window=window)


def build_plan(
    series: list[str], params: DataParams, *, bucket: str, max_points_cap: int
) -> QueryPlan:
    """Validate every parameter and settle the window; raises InvalidParameter with the reason."""
    names = parse_series(series)
    start = parse_time("start", params.start)
    end = parse_time("end", params.end)
    if end <= start:
        raise InvalidParameter("end", "must be after start (the range is [start, end))")
    agg = _choice("agg", params.agg, Agg, Agg.MEAN)
    fill = _choice("fill", params.fill, Fill, Fill.NONE)
    tz = parse_tz(params.tz)
    max_points = parse_max_points(params.max_points, max_points_cap)
    fmt = negotiate_format(params.format, params.accept)
    resolution = (params.resolution or "auto").strip()

    window: Window | None
    auto = resolution == "auto"
    if resolution == "raw":
        window = None
    elif auto:
        window = suggest_window(start, end, tz, max_points)
        if window is None:
            raise TooManyPoints(None, max_points, None)
    else:
        window = parse_window(resolution)
        count = window_count(start, end, window, tz)
        if count > max_points:
            better = suggest_window(start, end, tz, max_points, coarser_than=window.seconds)
            raise TooManyPoints(count, max_points, better.text if better else None)
    return QueryPlan(
        series=names,
        start=start,
        end=end,
        window=window,
        agg=agg,
        fill=fill,
        tz=tz if window is not None else None,
        max_points=max_points,
        format=fmt,
        bucket=bucket,
        auto=auto,
    )


# Flux computes these from every stored point; the others are pushed down into the engine.
SCAN_AGGS = frozenset({Agg.MEDIAN, Agg.STDDEV})


# A window's value of these follows from its parts' values: local days are composed from UTC
# hours that InfluxDB aggregates in its engine (`location` would disable that pushdown).
COMPOSABLE_AGGS = frozenset({Agg.MEAN, Agg.MIN, Agg.MAX, Agg.SUM, Agg.COUNT, Agg.FIRST, Agg.LAST})


def _zone_offsets(plan: QueryPlan) -> set[int]:
    """The UTC offsets (seconds) the plan's zone takes around its range."""
    if plan.tz is None:
        return {0}
    lo, hi = _micros(plan.start), _micros(plan.end)
    return {off // MICRO for _, _, off in _stretches_over(lo, hi, plan.tz)}


def local_grain(plan: QueryPlan) -> int | None:
    """The longest UTC-aligned length that tiles every local window of the plan: the greatest
    common divisor of the window and the zone's offsets (Zurich: 1 h; Kathmandu, UTC+05:45:
    15 min for hours and days, 5 min for 10 min windows). None without windows."""
    if plan.window is None:
        return None
    return math.gcd(plan.window.seconds, *_zone_offsets(plan))


def utc_aligned(plan: QueryPlan) -> bool:
    """Whether the plan's windows are the UTC windows: no zone, or every offset of the zone is
    a multiple of the window (`15m` or `1h` in Zurich), so local and UTC windows coincide and
    InfluxDB aligns them itself."""
    if plan.tz is None or plan.window is None:
        return True
    return local_grain(plan) == plan.window.seconds


# Local windows are composed from at most this many UTC grains per window, and per request.
MAX_GRAINS_PER_WINDOW = 96
MAX_GRAINS = 1_000_000


def composed_grain(plan: QueryPlan) -> int | None:
    """The UTC grain (``local_grain``) that tiles every local window of a plan with ``tz``,
    when its aggregate composes and the grains stay few; None when the windows are UTC
    windows anyway, or must be made by Flux with a location."""
    if plan.window is None or plan.agg not in COMPOSABLE_AGGS or utc_aligned(plan):
        return None
    grain = local_grain(plan)
    if grain is None or plan.window.seconds // grain > MAX_GRAINS_PER_WINDOW:
        return None
    if (plan.end - plan.start).total_seconds() / grain > MAX_GRAINS:
        return None
    return grain


def scan_reason(plan: QueryPlan) -> str | None:
    """Why the plan's windows would be computed in Flux from every stored point (no storage
    pushdown), or None when InfluxDB's engine aggregates them."""
    if plan.window is None or plan.tier is not None:
        return None
    if plan.agg in SCAN_AGGS:
        return f"{plan.agg.value} reads every stored point"
    if not utc_aligned(plan) and composed_grain(plan) is None:
        return f"windows in tz={plan.tz} read every stored point (no storage pushdown)"
    return None


# Without pushdown Flux also pays per window it builds: about as long as reading this many points
# (measured: 3,600 one-second windows of a median cost 0.5 s, 86,400 points in 1 h windows 0.35 s).
WINDOW_COST = 40


@dataclass(frozen=True)
class ScanCost:
    """The work of a plan without storage pushdown, in points read: ``points`` stored points
    (from the series' spacing) plus ``WINDOW_COST`` per window Flux builds. Without fill it
    builds only windows that hold points (at most one per point); with a fill, every window."""

    points: int
    windows: int

    @property
    def cost(self) -> int:
        return self.points + WINDOW_COST * self.windows


def scan_cost(plan: QueryPlan, window: Window, step_seconds: float, span: timedelta) -> ScanCost:
    points = int(span.total_seconds() / step_seconds)
    end = plan.start + span
    windows = window_count(plan.start, end, window, plan.tz)
    built = windows if plan.fill is not Fill.NONE else min(windows, points)
    return ScanCost(points, built)


def longest_fitting_span(
    plan: QueryPlan, window: Window, step_seconds: float, limit: int
) -> timedelta:
    """The longest range from ``plan.start`` whose scan cost at ``window`` stays in ``limit``
    (a bisection over whole seconds: the cost grows with the range)."""
    lo, hi = 0, int((plan.end - plan.start).total_seconds())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if scan_cost(plan, window, step_seconds, timedelta(seconds=mid)).cost <= limit:
            lo = mid
        else:
            hi = mid - 1
    return timedelta(seconds=lo)


def fit_scan(
    plan: QueryPlan,
    step_seconds: float | None,
    limit: int,
    tiered: Callable[[QueryPlan], QueryPlan] | None = None,
) -> QueryPlan:
    """The plan, if its work without storage pushdown (``scan_cost``) stays within ``limit``;
    with ``auto`` the finest coarser standard window that does, or that a rollup tier answers
    (``tiered``: the plan with the tier that answers it, ``with_tier``). Otherwise ScanTooLarge
    says the longest range that fits at the requested resolution and the finest resolution that
    fits the requested range. ``step_seconds`` is the series' spacing (None: unknown, not
    checked)."""
    reason = scan_reason(plan)
    if reason is None or not step_seconds or plan.window is None:
        return plan
    span = plan.end - plan.start
    asked = scan_cost(plan, plan.window, step_seconds, span)
    if asked.cost <= limit:
        return plan
    coarser: QueryPlan | None = None
    for w in STANDARD_WINDOWS:
        if w.seconds <= plan.window.seconds:
            continue
        candidate = replace(plan, window=w)
        if tiered is not None:
            candidate = tiered(candidate)
        if candidate.tier is not None or scan_cost(plan, w, step_seconds, span).cost <= limit:
            coarser = candidate
            break
    if plan.auto and coarser is not None:
        return coarser
    longest = longest_fitting_span(plan, plan.window, step_seconds, limit)
    hints = []
    if longest.total_seconds() >= plan.window.seconds:
        hints.append(
            f"at resolution={plan.window.text} the longest range that fits is {_human(longest)}"
        )
    if coarser is not None and coarser.window is not None:
        hints.append(f"for this range use resolution={coarser.window.text} or coarser")
    hint = "; ".join(hints) or "shorten the range"
    raise ScanTooLarge(reason, asked.points, asked.windows, asked.cost, limit, hint, WINDOW_COST)


# Rollup tiers (ADR 0012, gridts.tiers): per series and tier window the exact count, sum, min, max,
# first, last and m2. Every aggregate but the median follows from them for any union of windows.
TIER_AGGS = COMPOSABLE_AGGS | {Agg.STDDEV}


@dataclass(frozen=True)
class TierBucket:
    """A tier whose bucket the API can read, and how far back that bucket keeps its windows
    (``retention_seconds``; 0: forever)."""

    tier: Tier
    retention_seconds: int = 0
    # The series whose every raw point the tier holds: its first and last windows are those of
    # the raw points (a tier bucket created on a release that already held data starts empty,
    # and must not answer until `ingest rollup` has filled it). None: not checked.
    covered: frozenset[str] | None = None
    # Ranges the tier does not hold yet, per series: [start, stop) in seconds since the epoch,
    # from the open pending-rollup markers of its bucket (gridts.pending: a load wrote or is
    # writing raw points there and has not rolled them up). The tier does not answer over them.
    pending: Mapping[str, tuple[tuple[int, int], ...]] = field(
        default_factory=dict, hash=False, compare=True
    )

    def not_held(self, series: Iterable[str]) -> list[str]:
        """Those of ``series`` the tier does not hold in full (``covered``), sorted; none when
        coverage was not checked."""
        return [] if self.covered is None else sorted(set(series) - self.covered)

    def pending_ranges(self) -> list[tuple[int, int, str]]:
        """Every range the tier does not hold yet, as (start, stop, series), in order."""
        return sorted((a, b, name) for name, spans in self.pending.items() for a, b in spans)

    def stale(self, series: Iterable[str], start: datetime, end: datetime) -> bool:
        """Whether the tier windows in [start, end) of any of ``series`` may not match the raw
        points: a pending range meets them."""
        if not self.pending or start >= end:
            return False
        lo, hi = start.timestamp(), end.timestamp()
        return any(a < hi and lo < b for s in series for a, b in self.pending.get(s, ()))


def tier_grain(plan: QueryPlan) -> int | None:
    """The UTC length every window of the plan is a union of: the window itself for UTC
    windows, ``local_grain`` for local ones (a Zurich day is 23, 24 or 25 UTC hours)."""
    if plan.window is None:
        return None
    return plan.window.seconds if utc_aligned(plan) else local_grain(plan)


def tier_rows(plan: QueryPlan, tier: Tier) -> int:
    """The tier rows a plan reads per tag set: one per tier window of the range."""
    return -(-int((plan.end - plan.start).total_seconds()) // tier.seconds)


def pick_tier(
    plan: QueryPlan,
    tiers: Sequence[TierBucket],
    now: datetime,
    max_rows: int | None = None,
    *,
    edges: bool = True,
) -> Tier | None:
    """The coarsest tier that answers the plan **exactly**, or None (raw points answer).

    A tier answers when the aggregate follows from its statistics (not the median, not raw
    points); its window divides every window of the plan (``tier_grain``: local windows are
    unions of tier windows too); the range lies inside the tier's retention (``now`` minus
    retention at or before ``start``); for ``stddev``, whose tier rows are merged by the
    API, at most ``max_rows`` rows are read; and no pending range of a series (a load's raw
    points not rolled up yet, ``TierBucket.pending``) meets the tier windows it would read.

    A tier window that ``start`` or ``end`` cuts would bring points from outside the range, so
    the coarsest tier whose boundaries both ends lie on is preferred. When none is, and
    ``edges``, the coarsest tier with at least one whole window inside the range answers its
    interior (``tier_range``) and the two edge pieces, each inside one tier window and one
    window of the plan, are read from the raw points.
    """
    grain = tier_grain(plan)
    if grain is None or plan.agg not in TIER_AGGS:
        return None
    if not utc_aligned(plan) and too_many_grains(plan, grain):
        return None
    usable = []
    for found in sorted(tiers, key=lambda t: t.tier.seconds, reverse=True):
        if grain % found.tier.seconds:
            continue
        if found.covered is not None and not set(plan.series) <= found.covered:
            continue
        if found.retention_seconds and plan.start < now - timedelta(
            seconds=found.retention_seconds
        ):
            continue
        too_many = max_rows is not None and tier_rows(plan, found.tier) > max_rows
        if plan.agg is Agg.STDDEV and too_many:
            continue
        usable.append(found)
    usable = [f for f in usable if not f.stale(plan.series, *tier_range(plan, f.tier))]
    for tier in (f.tier for f in usable):
        if tier_range(plan, tier) == (plan.start, plan.end):
            return tier
    if not edges:
        return None
    for tier in (f.tier for f in usable):
        inner_start, inner_end = tier_range(plan, tier)
        if inner_start < inner_end:
            return tier
    return None


def tier_range(plan: QueryPlan, tier: Tier) -> tuple[datetime, datetime]:
    """The part of the range a tier answers: ``start`` rounded up and ``end`` rounded down to
    the tier's window boundaries (empty when the range holds no whole tier window)."""
    step = tier.seconds * MICRO
    start_us, end_us = _micros(plan.start), _micros(plan.end)
    return _from_micros(-(-start_us // step) * step), _from_micros(end_us // step * step)


def too_many_grains(plan: QueryPlan, grain: int) -> bool:
    """Whether composing the plan's local windows from UTC grains of ``grain`` would take more
    grains than the API composes in one request."""
    return (plan.end - plan.start).total_seconds() / grain > MAX_GRAINS


def with_tier(
    plan: QueryPlan, tiers: Sequence[TierBucket], now: datetime, max_rows: int | None = None
) -> QueryPlan:
    """The plan read from the coarsest tier that answers it exactly (``pick_tier``), or from
    the raw points."""
    return replace(plan, tier=pick_tier(replace(plan, tier=None), tiers, now, max_rows))


def choose_source(
    plan: QueryPlan,
    tiers: Sequence[TierBucket],
    now: datetime,
    steps: Sequence[float | None],
    limit: int,
) -> QueryPlan:
    """Where a plan's answer comes from: a tier when one answers exactly, else the raw points
    under the scan limit for every series' spacing in ``steps`` (``fit_scan``; with ``auto``,
    the finest coarser window that a tier answers or whose scan fits). A tier's cost is the
    rows it holds, not the raw points."""
    tiered = with_tier(plan, tiers, now, limit)
    if tiered.tier is not None:
        return tiered
    for step in steps:
        plan = fit_scan(plan, step, limit, lambda p: with_tier(p, tiers, now, limit))
    return plan


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} seconds"


def raw_overflow(plan: QueryPlan, points: int | None = None) -> TooManyPoints:
    """The error for a raw query whose range holds more than `max_points` points (``points``,
    when counted)."""
    better = suggest_window(plan.start, plan.end, plan.tz, plan.max_points)
    return TooManyPoints(points, plan.max_points, better.text if better else None)


def format_time(instant: datetime) -> str:
    """RFC 3339 in UTC with `Z`, fractional seconds only when present (as InfluxDB writes them);
    four digits of year before 1000 too (`strftime`'s `%Y` gives `1-01-01` there)."""
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    if instant.microsecond:
        text += f".{instant.microsecond:06d}".rstrip("0")
    return text + "Z"


def _quote(text: str) -> str:
    """A user string, shortened and repr-quoted, safe to echo in an error message."""
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


__all__ = [
    "MEDIA_TYPES",
    "STANDARD_WINDOWS",
    "Agg",
    "DataParams",
    "Fill",
    "Format",
    "QueryPlan",
    "Window",
    "build_plan",
    "format_time",
    "negotiate_format",
    "parse_time",
    "parse_tz",
    "parse_window",
    "raw_overflow",
    "suggest_window",
    "window_count",
    "window_start",
]
