"""Pending-rollup markers: which ranges of a series a tier bucket does not hold yet (ADR 0014).

Before a load writes raw points of a series, it writes a marker into every tier bucket that
exists: one point of measurement `MEASUREMENT`, tags ``load`` (the load's random id) and
``series``, fields ``start`` and ``stop`` (the UTC range it may write, seconds since the epoch,
``stop`` exclusive) and ``state``: `writing` while its raw writes go on, `written` once every raw
write was acknowledged (the range is then exactly the points written), `done` once the tier
holds them (the rollup of the range succeeded). The API does not answer from a tier over a range
that meets a marker of that tier bucket which is not `done`; it reads them with its catalog
(``open_markers_flux``).

The point's time is ``marker_time``: not before the load started and not before the marker's
``stop``, so that a bucket's retention drops it only after the tier stops answering its range
(the API uses a tier only for ranges starting after now minus the retention). Markers are
cleared by overwriting ``state`` (one write, the same point: a concurrent load's markers, under
their own ``load`` tag, are untouched), then deleted by ``load`` (best effort: a `done` marker
left behind is ignored).

The measurement name holds a `:`, which a series name never does (gridts.names): no series'
tier points can be taken for markers, nor markers for a series.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

MEASUREMENT = "gridts:pending"
WRITING, WRITTEN, DONE = "writing", "written", "done"
# The time range a markers query reads: every marker time a load can choose.
QUERY_START, QUERY_STOP = "1970-01-01T00:00:00Z", "2262-04-11T00:00:00Z"


@dataclass(frozen=True)
class Marker:
    """One open marker: ``series`` may lack tier windows (or hold stale ones) over
    [start, stop) (seconds since the epoch, UTC) in the bucket it was read from."""

    series: str
    load: str
    time: int  # the marker point's own time (seconds): its key with ``series`` and ``load``
    start: int
    stop: int
    state: str

    def within(self, start: int, stop: int) -> bool:
        """Whether [start, stop) holds the marker's whole range."""
        return start <= self.start and self.stop <= stop


def marker_time(load_started: int, stop: int) -> int:
    """The marker point's time: the load's start, or its range's end when that is later
    (future-dated data): never dropped by retention while the tier may answer its range."""
    return max(load_started, stop)


def marker_line(series: str, load: str, time: int, start: int, stop: int, state: str) -> str:
    """Line protocol (precision s) for one marker."""
    return (
        f'gridts:pending,load={load},series={series} start={start}i,stop={stop}i,state="{state}" '
        f"{time}"
    )


def open_markers_flux(bucket_param: str = "p_bucket") -> str:
    """Flux reading a tier bucket's markers that are not `done`; columns series, load, _time,
    start, stop, state. The bucket is the parameter ``bucket_param``."""
    return f"""from(bucket: {bucket_param})
    |> range(start: {QUERY_START}, stop: {QUERY_STOP})
    |> filter(fn: (r) => r._measurement == "{MEASUREMENT}")
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> filter(fn: (r) => exists r.state and r.state != "{DONE}")
    |> group()
    |> keep(columns: ["_time", "series", "load", "start", "stop", "state"])"""


def parse_markers(text: str) -> list[Marker]:
    """Markers from the annotation-free CSV answer to ``open_markers_flux``."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("error"):
            raise ValueError(f"InfluxDB failed the markers query: {row['error']}")
        if not row.get("series") or not row.get("start"):
            continue
        out.append(
            Marker(
                series=row["series"],
                load=row["load"],
                time=_seconds(row["_time"]),
                start=int(row["start"]),
                stop=int(row["stop"]),
                state=row["state"],
            )
        )
    return out


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
