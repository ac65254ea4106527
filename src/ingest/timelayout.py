"""Timestamp layouts of the exports, decoded to wall-clock seconds without one object per row.

A layout is a template whose letters stand for fields: ``WW`` a German weekday abbreviation,
``DD MM YY YYYY hh mm ss`` date and time digits, ``±OO:PP`` a UTC offset, anything else a literal.
``decode`` works on a whole column at once (a ``(rows, width)`` byte matrix); ``decode_one`` is the
same rules for a single string, used for the rare row that does not fit the column's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# InfluxDB stores 1677-2262; line protocol in seconds here starts at 1970; beyond 2200 is a typo
MIN_YEAR, MAX_YEAR = 1970, 2200
WEEKDAYS_DE = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")  # Monday first, as date.weekday()

_DIGIT_FIELDS = ("Y", "M", "D", "h", "m", "s", "O", "P")


@dataclass(frozen=True)
class Layout:
    name: str
    template: str
    example: str
    # positions of each field's characters in the template, filled in __post_init__
    fields: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pos: dict[str, list[int]] = {}
        for i, ch in enumerate(self.template):
            if ch in _DIGIT_FIELDS or ch in "W±":
                pos.setdefault(ch, []).append(i)
        object.__setattr__(self, "fields", {k: tuple(v) for k, v in pos.items()})

    @property
    def width(self) -> int:
        return len(self.template)

    @property
    def absolute(self) -> bool:
        """True when the text names its own offset (``Z`` or ``±hh:mm``): no zone rules apply."""
        return "±" in self.template or self.template.endswith("Z")

    @property
    def literals(self) -> list[tuple[int, int]]:
        taken = {i for v in self.fields.values() for i in v}
        return [(i, ord(c)) for i, c in enumerate(self.template) if i not in taken]


LAYOUTS: tuple[Layout, ...] = (
    Layout("de-weekday", "WW. DD.MM.YY hh:mm:ss", "Sa. 01.05.21 00:00:30"),
    Layout("de-weekday-hm", "WW. DD.MM.YY hh:mm", "Sa. 01.05.21 00:15"),
    Layout("de-weekday-y4", "WW. DD.MM.YYYY hh:mm:ss", "Sa. 01.05.2021 00:00:30"),
    Layout("dmy4-hms", "DD.MM.YYYY hh:mm:ss", "01.05.2021 00:00:30"),
    Layout("dmy4-hm", "DD.MM.YYYY hh:mm", "01.01.2019 00:15"),
    Layout("dmy2-hms", "DD.MM.YY hh:mm:ss", "01.05.21 00:00:30"),
    Layout("dmy2-hm", "DD.MM.YY hh:mm", "01.05.21 00:15"),
    Layout("iso-hms", "YYYY-MM-DD hh:mm:ss", "2019-01-01 00:15:00"),
    Layout("iso-t-hms", "YYYY-MM-DDThh:mm:ss", "2019-01-01T00:15:00"),
    Layout("iso-hm", "YYYY-MM-DD hh:mm", "2019-01-01 00:15"),
    Layout("iso-t-hm", "YYYY-MM-DDThh:mm", "2019-01-01T00:15"),
    Layout("iso-z", "YYYY-MM-DDThh:mm:ssZ", "2019-01-01T00:15:00Z"),
    Layout("iso-offset", "YYYY-MM-DDThh:mm:ss±OO:PP", "2019-01-01T00:15:00+01:00"),
    Layout("iso-space-offset", "YYYY-MM-DD hh:mm:ss±OO:PP", "2019-01-01 00:15:00+01:00"),
)

_WEEKDAY_CODE = np.full(1 << 16, -1, dtype=np.int8)
for _i, _w in enumerate(WEEKDAYS_DE):
    _WEEKDAY_CODE[ord(_w[0]) << 8 | ord(_w[1])] = _i


def days_from_civil(
    y: NDArray[np.int64], m: NDArray[np.int64], d: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Days since 1970-01-01 of proleptic Gregorian dates (vectorised, exact)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return np.asarray(era * 146097 + doe - 719468, dtype=np.int64)


def days_in_month(y: NDArray[np.int64], m: NDArray[np.int64]) -> NDArray[np.int64]:
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    base = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    return np.asarray(base[np.clip(m, 0, 12)] + (leap & (m == 2)), dtype=np.int64)


@dataclass
class Decoded:
    """Per row: seconds (wall clock; UTC for absolute layouts), and reasons for impossible ones."""

    seconds: NDArray[np.int64]
    ok: NDArray[np.bool_]
    # rows that fit the layout's shape but name an impossible date/time: index -> reason
    invalid: dict[int, str]


def decode(g: NDArray[np.uint8], layout: Layout) -> Decoded:
    """Decode a ``(rows, layout.width)`` byte matrix. Rows not of the layout's shape get ok=False
    and no reason (the caller tries them one by one); impossible values get a reason."""
    n = g.shape[0]
    lit_cols = [pos for pos, _ in layout.literals]
    lit_bytes = np.array([b for _, b in layout.literals], dtype=np.uint8)
    shape_ok = (g[:, lit_cols] == lit_bytes).all(axis=1)
    digit_cols = [c for key in _DIGIT_FIELDS for c in layout.fields.get(key, ())]
    where = {c: j for j, c in enumerate(digit_cols)}
    digits = g[:, digit_cols] - np.uint8(48)  # wraps non-digits to values above 9
    shape_ok &= (digits <= 9).all(axis=1)
    digits64 = digits.astype(np.int64)

    def number(key: str) -> NDArray[np.int64]:
        out = np.zeros(n, dtype=np.int64)
        for c in layout.fields.get(key, ()):
            out = out * 10 + digits64[:, where[c]]
        return out

    if "±" in layout.fields:
        sign_col = g[:, layout.fields["±"][0]]
        shape_ok &= (sign_col == 43) | (sign_col == 45)
    year = number("Y")
    if len(layout.fields["Y"]) == 2:
        year = year + 2000
    month = number("M")
    day = number("D")
    hour = number("h")
    minute = number("m")
    second = number("s")
    valid = (
        (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= days_in_month(year, month))
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
    )
    in_range = (year >= MIN_YEAR) & (year <= MAX_YEAR)
    valid &= in_range
    days = days_from_civil(year, np.clip(month, 1, 12), day)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    if "±" in layout.fields:
        sign = np.where(g[:, layout.fields["±"][0]] == 45, -1, 1)
        off_h = number("O")
        off_m = number("P")
        valid &= (off_h <= 18) & (off_m <= 59)
        seconds = seconds - sign * (off_h * 3600 + off_m * 60)
    weekday_bad = np.zeros(n, dtype=np.bool_)
    if "W" in layout.fields:
        c0, c1 = layout.fields["W"]
        code = _WEEKDAY_CODE[(g[:, c0].astype(np.int64) << 8) | g[:, c1]]
        shape_ok &= code >= 0
        weekday_bad = valid & (code >= 0) & (code != (days + 3) % 7)
    bad = shape_ok & (~valid | weekday_bad)
    invalid = _reasons(g, np.flatnonzero(bad), weekday_bad, in_range, year, days)
    return Decoded(seconds=np.asarray(seconds, np.int64), ok=shape_ok & ~bad, invalid=invalid)


def _reasons(
    g: NDArray[np.uint8],
    bad: NDArray[np.int64],
    weekday_bad: NDArray[np.bool_],
    in_range: NDArray[np.bool_],
    year: NDArray[np.int64],
    days: NDArray[np.int64],
) -> dict[int, str]:
    """Why each of the rows ``bad`` (of the layout's shape) names an impossible instant."""
    invalid: dict[int, str] = {}
    for i in bad:
        text = bytes(g[i]).decode("ascii", "replace")
        if weekday_bad[i]:
            actual = WEEKDAYS_DE[int((days[i] + 3) % 7)]
            invalid[int(i)] = f"weekday in {text!r} does not match the date (a {actual}.)"
        elif not in_range[i]:
            invalid[int(i)] = f"year {int(year[i])} in {text!r} is outside {MIN_YEAR}-{MAX_YEAR}"
        else:
            invalid[int(i)] = f"impossible date or time {text!r}"
    return invalid


def decode_one(text: str, layouts: tuple[Layout, ...] = LAYOUTS) -> tuple[int, Layout] | str:
    """One timestamp by the first layout whose shape it has: (seconds, layout) or a reason."""
    raw = text.strip().encode("ascii", "replace")
    for layout in layouts:
        if len(raw) != layout.width:
            continue
        g = np.frombuffer(raw, dtype=np.uint8).reshape(1, -1)
        d = decode(g, layout)
        if d.ok[0]:
            return int(d.seconds[0]), layout
        if 0 in d.invalid:
            return d.invalid[0]
    return f"unrecognised timestamp {text.strip()[:40]!r}"


def sniff_layout(text: str) -> Layout | None:
    found = decode_one(text)
    return found[1] if isinstance(found, tuple) else None
