"""Local wall-clock labels to UTC instants: zone rules, DST changes, interval-end labels.

Rules (adr/0005-local-time-to-utc.md):

* Far from a DST change a label has one meaning: ``utc = wall - offset``; an interval-end label
  (``label="end"``) then stores the interval's start, ``utc - step``.
* Near a change (a *zone*: the wall-clock hour that is skipped or repeated, widened by one step
  for end labels) rows are decided together, in file order:
  - a repeated (autumn) wall time is read as summer time until the labels go back, then as
    winter time; a repeated time that the file shows only once cannot be decided and is rejected;
  - a skipped (spring) wall time does not exist; a row labelled with one is rejected.
* End labels come in two conventions, both seen in Swissgrid's own exports:
  ``A`` the label is the end instant (labels 02:00..02:45 repeat in autumn at 15 min), and
  ``B`` the label is the start's wall time plus one step (labels 02:15..03:00 repeat).
  Both are tried on each zone; the one under which the instants strictly increase wins. If both
  do and disagree, the rows that differ are rejected: never guessed.
* A row on the same instant as an earlier row, or before it, is rejected ("same instant as line
  N", "earlier than line N"): one input row is exactly one point, never a silent overwrite.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

LABELS = ("instant", "start", "end")
# The zone of the operator's wall-clock labels: the default of the ingest's --tz and of the
# generator's; defined here only.
DEFAULT_ZONE = "Europe/Zurich"


@dataclass(frozen=True)
class Transition:
    at: int  # UTC seconds of the change
    before: int  # UTC offset in seconds before it
    after: int  # and after it

    @property
    def wall_lo(self) -> int:
        return self.at + min(self.before, self.after)

    @property
    def wall_hi(self) -> int:
        return self.at + max(self.before, self.after)

    @property
    def gap(self) -> bool:
        """Clocks jump forward: wall times in [wall_lo, wall_hi) do not exist."""
        return self.after > self.before


def _offset(zone: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def zone_transitions(zone: ZoneInfo, first_year: int, last_year: int) -> list[Transition]:
    """Every offset change of ``zone`` in the given years, found by probing every 6 hours and
    bisecting (no zone changes its offset twice within 6 hours)."""
    start = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    stop = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    found: list[Transition] = []
    prev_t, prev_off = start, _offset(zone, start)
    for t in range(start + 6 * 3600, stop + 1, 6 * 3600):
        off = _offset(zone, t)
        if off != prev_off:
            lo, hi = prev_t, t  # offset(lo) == prev_off, offset(hi) == off
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(zone, mid) == prev_off:
                    lo = mid
                else:
                    hi = mid
            found.append(Transition(at=hi, before=prev_off, after=off))
        prev_t, prev_off = t, off
    return found


def _wall(seconds: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Converted:
    utc: NDArray[np.int64]
    rejects: dict[int, str]  # row index -> reason


class TimeConverter:
    """Stateful across chunks of one series: keeps the last instant for ordering and duplicates."""

    def __init__(self, zone: str, label: str, step: int | None) -> None:
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}")
        if label == "end" and not step:
            raise ValueError("end labels need the interval length (--step)")
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self.label = label
        self.step = step or 0
        self.prev_utc: int | None = None
        self.prev_line: int | None = None
        self._years: tuple[int, int] | None = None
        self._tr: list[Transition] = []
        self._lo = np.zeros(0, np.int64)
        self._hi = np.zeros(0, np.int64)
        self._const_offset = 0

    # -- zone bookkeeping -------------------------------------------------------------------
    def _cover(self, seconds: NDArray[np.int64]) -> None:
        if not len(seconds):
            return
        y0 = datetime(1970, 1, 1) + timedelta(seconds=int(seconds.min()))
        y1 = datetime(1970, 1, 1) + timedelta(seconds=int(seconds.max()))
        want = (y0.year - 1, y1.year + 1)
        if self._years and self._years[0] <= want[0] and self._years[1] >= want[1]:
            return
        if self._years:
            want = (min(want[0], self._years[0]), max(want[1], self._years[1]))
        self._years = want
        self._tr = zone_transitions(self.zone, *want)
        widen = self.step if self.label == "end" else 0
        self._lo = np.array([t.wall_lo for t in self._tr], dtype=np.int64)
        self._hi = np.array([t.wall_hi + widen for t in self._tr], dtype=np.int64)
        self._const_offset = _offset(
            self.zone, int(datetime(want[0] + 1, 1, 1, tzinfo=UTC).timestamp())
        )

    def _zones(self, seconds: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index of the DST zone each wall time falls in, or -1."""
        self._cover(seconds)
        if not self._tr:
            return np.full(len(seconds), -1, dtype=np.int64)
        idx = np.searchsorted(self._lo, seconds, side="right") - 1
        inside = (idx >= 0) & (seconds < self._hi[np.maximum(idx, 0)])
        return np.where(inside, idx, -1).astype(np.int64)

    def _offsets(self, seconds: NDArray[np.int64]) -> NDArray[np.int64]:
        """UTC offset of wall times that are not in a zone (there it is unique)."""
        if not self._tr:
            return np.full(len(seconds), self._const_offset, dtype=np.int64)
        his = np.array([t.wall_hi for t in self._tr], dtype=np.int64)
        after = np.array([t.after for t in self._tr], dtype=np.int64)
        seg = np.searchsorted(his, seconds, side="right")
        return np.where(seg > 0, after[np.maximum(seg - 1, 0)], self._tr[0].before).astype(np.int64)

    def safe_rows(self, seconds: NDArray[np.int64]) -> int:
        """How many leading rows can be converted now: a DST zone at the end of a chunk waits
        for the next chunk, because its rows are decided together."""
        if not len(seconds):
            return 0
        z = self._zones(seconds)
        if z[-1] < 0:
            return len(seconds)
        other = np.flatnonzero(z != z[-1])
        return int(other[-1]) + 1 if len(other) else 0

    # -- conversion -----------------------------------------------------------------------
    def convert(
        self, seconds: NDArray[np.int64], line: NDArray[np.int64], absolute: bool = False
    ) -> Converted:
        rejects: dict[int, str] = {}
        if absolute:
            utc = seconds.copy()
            if self.label == "end":
                utc -= self.step
        else:
            z = self._zones(seconds)
            utc = seconds - self._offsets(seconds)
            if self.label == "end":
                utc -= self.step
            in_zone = np.flatnonzero(z >= 0)
            if len(in_zone):
                # runs of consecutive rows in the same zone
                breaks = np.flatnonzero((np.diff(in_zone) != 1) | (np.diff(z[in_zone]) != 0))
                run_starts = np.concatenate([[0], breaks + 1])
                run_ends = np.concatenate([breaks + 1, [len(in_zone)]])
                for rs, re_ in zip(run_starts, run_ends, strict=True):
                    i0, i1 = int(in_zone[rs]), int(in_zone[re_ - 1]) + 1
                    before = int(utc[i0 - 1]) if i0 > 0 else self.prev_utc
                    after = int(utc[i1]) if i1 < len(utc) else None
                    decided = self._decide(
                        self._tr[int(z[i0])], [int(s) for s in seconds[i0:i1]], before, after
                    )
                    for j, (u, why) in enumerate(decided):
                        if u is None:
                            rejects[i0 + j] = why
                        else:
                            utc[i0 + j] = u
        self._ordering(utc, line, rejects)
        return Converted(utc=np.asarray(utc, np.int64), rejects=rejects)

    def _ordering(
        self, utc: NDArray[np.int64], line: NDArray[np.int64], rejects: dict[int, str]
    ) -> None:
        """Reject rows not strictly after every row before them: a repeated instant would
        overwrite a point, and a row back in time could (exports are in time order)."""
        keep = np.ones(len(utc), dtype=np.bool_)
        if rejects:
            keep[list(rejects)] = False
        idx = np.flatnonzero(keep)
        if not len(idx):
            return
        floor = np.iinfo(np.int64).min
        ext_u = np.concatenate([[self.prev_utc if self.prev_utc is not None else floor], utc[idx]])
        ext_line = np.concatenate([[self.prev_line or 0], line[idx]])
        top = np.maximum.accumulate(ext_u)
        setter = np.ones(len(ext_u), dtype=np.bool_)
        setter[1:] = ext_u[1:] > top[:-1]
        who = np.maximum.accumulate(np.where(setter, np.arange(len(ext_u)), 0))
        for k in np.flatnonzero(~setter):
            ref, when = int(ext_line[who[k - 1]]), int(top[k - 1])
            if ext_u[k] == when:
                why = f"same instant as line {ref} ({_wall(when)} UTC)"
            else:
                why = f"earlier than line {ref} ({_wall(when)} UTC): rows must be in time order"
            rejects[int(idx[k - 1])] = why
        self.prev_utc = int(top[-1])
        self.prev_line = int(ext_line[who[-1]])

    def _decide(
        self, tr: Transition, walls: list[int], before: int | None, after: int | None
    ) -> list[tuple[int | None, str]]:
        if self.label != "end":
            conventions = ["A"]
        elif self.step >= 86400:
            conventions = ["B"]  # calendar intervals: start = end label minus a wall-clock day
        else:
            conventions = ["A", "B"]
        tried = {c: self._by_order(tr, walls, c) for c in conventions}

        def valid(rows: list[tuple[int | None, str]]) -> bool:
            seq = [u for u, _ in rows]
            if any(u is None for u in seq):
                return False
            full = ([before] if before is not None else []) + seq
            full += [after] if after is not None else []
            return all(b > a for a, b in itertools.pairwise(full))  # type: ignore[operator]

        good = [c for c in conventions if valid(tried[c])]
        if len(good) == 1:
            return tried[good[0]]
        if len(good) == 2:
            a, b = tried["A"], tried["B"]
            return [
                ra
                if ra[0] == rb[0]
                else (
                    None,
                    f"cannot tell which DST convention the end label {_wall(w)} follows: "
                    f"{_wall(ra[0] or 0)} or {_wall(rb[0] or 0)} UTC",
                )
                for w, ra, rb in zip(walls, a, b, strict=True)
            ]
        return tried[conventions[0]]

    def _by_order(
        self, tr: Transition, walls: list[int], convention: str
    ) -> list[tuple[int | None, str]]:
        shift = self.step if (convention == "A" and self.label == "end") else 0
        crossed = False
        prev_t: int | None = None
        out: list[tuple[int | None, str]] = []
        first_pass: list[int] = []
        second_seen = False
        for w in walls:
            t = w - self.step if convention == "B" else w
            u: int | None
            why = ""
            if t < tr.wall_lo:
                u = t - tr.before
            elif t >= tr.wall_hi:
                u = t - tr.after
                crossed = True
            elif tr.gap:
                if convention == "B":
                    u = t - tr.after
                else:
                    u = None
                    why = (
                        f"local time {_wall(w)} does not exist in {self.zone_name} "
                        "(clocks jump forward at the DST change)"
                    )
            else:
                if prev_t is not None and t <= prev_t:
                    crossed = True
                if crossed:
                    second_seen = True
                    u = t - tr.after
                else:
                    first_pass.append(len(out))
                    u = t - tr.before
            prev_t = t
            out.append((None if u is None else u - shift, why))
        if first_pass and not second_seen:
            for j in first_pass:
                out[j] = (
                    None,
                    f"local time {_wall(walls[j])} occurs twice in {self.zone_name} (summer "
                    "and winter time) but the file has it once: cannot tell which",
                )
        return out
