"""A load's pending-rollup markers (gridts.pending, ADR 0014 addendum): written into every tier
bucket before the raw points they announce, narrowed once the raw writes are done, cleared once
the tiers hold them.

During the raw writes a series' marker range is wider than what has been written so far (whole
UTC days, grown by the span already covered, at most 31 days ahead), so that a year-long file
costs a few marker writes, not one per chunk. Once every raw write is acknowledged it is
narrowed to exactly the points written (state `written`), which is what a kill after the raw
writes leaves behind and what a later load or `ingest rollup` must cover to clear it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import UTC, datetime

from gridts.pending import (
    DONE,
    MEASUREMENT,
    WRITING,
    WRITTEN,
    Marker,
    marker_line,
    marker_time,
    open_markers_flux,
    parse_markers,
)
from ingest.rollup import Influx, RollupError

DAY = 86_400
MOST_AHEAD = 31 * DAY


def _floor(t: int) -> int:
    return t - t % DAY


def _ceil(t: int) -> int:
    return -(-t // DAY) * DAY


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def read_open(influx: Influx, bucket: str) -> list[Marker]:
    """The markers of ``bucket`` that are not `done`."""
    frame = influx.query(open_markers_flux(_quoted(bucket)))
    if frame.empty:
        return []
    try:
        return parse_markers(frame.to_csv(index=False))
    except ValueError as exc:
        raise RollupError(str(exc)) from exc


def clear(influx: Influx, bucket: str, markers: Iterable[Marker]) -> int:
    """Mark ``markers`` of ``bucket`` `done` (one write: each the same point again), then delete
    them (best effort: a `done` marker left behind is ignored). The number cleared."""
    found = list(markers)
    if not found:
        return 0
    lines = [marker_line(m.series, m.load, m.time, m.start, m.stop, DONE) for m in found]
    influx.write(bucket, ("\n".join(lines) + "\n").encode())
    for m in found:
        _delete(influx, bucket, m.time, m.time, f'load="{m.load}" AND series="{m.series}"')
    return len(found)


def _delete(influx: Influx, bucket: str, first: int, last: int, predicate: str) -> None:
    body = {
        "start": iso(first),
        "stop": iso(last + 1),
        "predicate": f'_measurement="{MEASUREMENT}" AND {predicate}',
    }
    with suppress(RollupError):  # a done marker stays: the API ignores it
        influx.api(
            "POST",
            "/api/v2/delete",
            f"marker delete in {bucket}",
            params={"org": influx.target.org, "bucket": bucket},
            json=body,
        )


class Pending:
    """One load's markers in ``buckets`` (every tier bucket that exists), per series."""

    def __init__(
        self, influx: Influx, buckets: Iterable[str], started: int, load: str | None = None
    ) -> None:
        self.influx = influx
        self.buckets = tuple(buckets)
        self.started = started
        self.load = load or secrets.token_hex(6)
        self.writes = 0  # marker write requests sent
        self._range: dict[str, tuple[int, int]] = {}  # what the markers say, [start, stop)
        self._time: dict[str, int] = {}
        self._span: dict[str, tuple[int, int]] = {}  # the points covered, [lo, hi]
        self._state = WRITING
        self._cleared: set[str] = set()
        self._kept: dict[str, tuple[int, int]] = {}  # left open by keep_open, [start, stop)

    @property
    def series(self) -> list[str]:
        return sorted(self._range)

    def span(self, series: str) -> tuple[int, int] | None:
        """The points of ``series`` this load covered so far, [lo, hi] (seconds)."""
        return self._span.get(series)

    def cover(self, spans: Mapping[str, tuple[int, int]]) -> None:
        """Before points of these series in [lo, hi] are written: markers that hold them (a
        write per bucket when a range must grow)."""
        grown: dict[str, tuple[int, int]] = {}
        for series, (lo, hi) in spans.items():
            old = self._span.get(series)
            self._span[series] = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))
            current = self._range.get(series)
            if current is not None and current[0] <= lo and hi < current[1]:
                continue
            start, stop = (lo, hi + 1) if current is None else current
            start, stop = min(start, lo), max(stop, hi + 1)
            ahead = min(max(stop - _floor(start), DAY), MOST_AHEAD)
            grown[series] = (_floor(start - (ahead if current and lo < current[0] else 0)),
                             _ceil(stop + ahead))  # fmt: skip
        if grown:
            self._write(grown, WRITING)

    def written(self) -> None:
        """Every raw write of this load is over (acknowledged, failed or abandoned): the markers
        say exactly the points covered, state `written`."""
        if self._state != WRITING or not self._range:
            self._state = WRITTEN
            return
        exact = {s: (lo, hi + 1) for s, (lo, hi) in self._span.items()}
        self._write(exact, WRITTEN)
        self._state = WRITTEN

    def done(self, buckets: Iterable[str]) -> None:
        """The tiers of ``buckets`` hold every point this load wrote: clear its markers there."""
        for bucket in buckets:
            if bucket not in self.buckets or bucket in self._cleared or not self._range:
                continue
            lines = [
                marker_line(s, self.load, self._time[s], *self._range[s], DONE) for s in self._range
            ]
            self.influx.write(bucket, ("\n".join(lines) + "\n").encode())
            self.writes += 1
            self._cleared.add(bucket)
            times = self._time.values()
            _delete(self.influx, bucket, min(times), max(times), f'load="{self.load}"')

    def keep_open(self, ranges: Mapping[str, tuple[int, int]]) -> None:
        """Tier windows of these series in [start, stop) kept changing while this load rolled
        them up (concurrent loads): markers of their own (`written`, under this load's id with
        `-open`, so that ``done`` does not delete them) keep the API on raw there until a later
        load of the range or ``ingest rollup`` clears them. Written before ``done``."""
        if not ranges:
            return
        lines = [
            marker_line(s, self.open_id, marker_time(self.started, stop), start, stop, WRITTEN)
            for s, (start, stop) in ranges.items()
        ]
        body = ("\n".join(lines) + "\n").encode()
        for bucket in self.buckets:
            self.influx.write(bucket, body)
            self.writes += 1
        self._kept.update(ranges)

    @property
    def open_id(self) -> str:
        return f"{self.load}-open"

    def still_open(self) -> dict[str, tuple[int, int]]:
        """Series whose markers some bucket keeps: their ranges."""
        out = dict(self._kept)
        if not all(b in self._cleared for b in self.buckets):
            for series, (start, stop) in self._range.items():
                old = out.get(series, (start, stop))
                out[series] = (min(start, old[0]), max(stop, old[1]))
        return out

    def open_buckets(self) -> list[str]:
        if self._kept:
            return list(self.buckets)
        return [b for b in self.buckets if b not in self._cleared] if self._range else []

    def _write(self, ranges: Mapping[str, tuple[int, int]], state: str) -> None:
        lines = []
        for series, (start, stop) in ranges.items():
            old = self._time.get(series)
            when = marker_time(self.started, stop) if old is None or old < stop else old
            if old is not None and old != when:  # the range passed the point's time
                lines.append(marker_line(series, self.load, old, start, stop, DONE))
            lines.append(marker_line(series, self.load, when, start, stop, state))
            self._time[series] = when
            self._range[series] = (start, stop)
        body = ("\n".join(lines) + "\n").encode()
        for bucket in self.buckets:
            self.influx.write(bucket, body)
            self.writes += 1
