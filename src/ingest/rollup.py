"""Rollup tiers from raw points: exact window statistics per series in `<bucket>_<tier>` buckets.

The finest tier is made from points, the coarser ones by merging its windows (gridts.tiers).
Where the points come from is the point of this module:

- after a load, from the **parsed columns** for every finest window whose raw count in InfluxDB
  equals the number of points the file put there (then the raw window holds exactly the file's
  points, written last); every other window of the range (the file's edges, where neighbours
  live, and windows that other files share) is recomputed from the **raw points in InfluxDB**.
  The counts are one pushed-down query per series; only the windows that differ are read back.
- `python -m ingest rollup` (data written by other tools, or a repair): every window from raw.

The range is widened to whole windows of the coarsest tier, so each tier point written is a
whole window computed from everything InfluxDB holds: two files meeting mid-window give the
same tiers as one file, and a re-run rewrites the same values (idempotent; kill -9 and a re-run
repair). Tier points carry the raw points' tags (one tier series per raw series key).

After writing, a rollup **settles** (``settle``): it counts the raw points per coarsest window
again and rolls up from raw every window it wrote whose count changed meanwhile (a concurrent
load's points landed after its read), so that the last writer of every window wrote it from the
final raw points (ADR 0014, addendum "concurrent writers of a tier window").
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from gridts import tiers as stats
from gridts.durations import parse_influx_duration
from gridts.names import is_series_name
from gridts.tiers import Tier, Windows
from ingest.lineproto import line_prefix
from ingest.settings import Settings, load_settings
from ingest.writer import RETRYABLE, Target, _retry_after, retry_delay

if TYPE_CHECKING:  # pandas is imported where a rollup reads InfluxDB: not for --help or a parse
    import pandas as pd

TagSet = tuple[tuple[str, str], ...]
# Columns of a Flux row that are not the series key's tags.
_NOT_TAGS = {"", "result", "table", "_time", "_value", "_start", "_stop", "_field", "_measurement"}
# One raw read covers at most this many windows of the coarsest tier (a day of 1 h windows).
READ_SPAN_SECONDS = 86_400
# The finest windows' raw counts of up to this many days in one query (a month of 1 m windows:
# 44,640 rows), and tier points written up to this many lines per request.
COUNT_DAYS = 31
WRITE_LINES = 5_000
# Rounds of "count again, roll up again what changed" after a rollup's tier writes (settle): one
# round per concurrent load that landed raw points in a window meanwhile.
SETTLE_ROUNDS = 4
# Decimal texts of at most this many digits are read by one exact division (values_of).
_EXACT_DIGITS = 15
_POW10 = np.array([float(10**k) for k in range(_EXACT_DIGITS + 1)])  # exact doubles


class RollupError(RuntimeError):
    """InfluxDB refused a rollup query or write, or stayed unreachable through the retries."""


@dataclass
class RollupStats:
    windows_written: int = 0  # tier points, all tiers
    windows_from_file: int = 0  # finest windows taken from the parsed columns
    windows_from_raw: int = 0  # finest windows recomputed from raw points
    points_read: int = 0  # raw points read back
    raw_reads: int = 0  # queries that read raw points
    # coarsest windows whose raw count changed while they were rolled up (rolled up again)
    windows_rechecked: int = 0
    series: set[str] = field(default_factory=set)
    # per series, runs of coarsest windows [start, stop) that kept changing (settle gave up)
    unsettled: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def tier_lines(measurement: str, tags: Mapping[str, str], windows: Windows) -> bytes:
    """Line protocol for tier points: `count` an integer, the others floats (repr: exact);
    `mean` is `sum / count` as the API would divide them (IEEE division rounds the same in numpy
    and Python), stored so that a mean at the tier's own window reads one field (ADR 0015)."""
    if len(windows) == 0:
        return b""
    head = line_prefix(measurement, tags)[: -len(b" value=")].decode()
    cols = [windows.count, windows.sum, windows.min, windows.max, windows.first, windows.last]
    # tolist(): Python ints and floats, whose repr is the shortest exact text
    rows = zip(
        *(c.tolist() for c in cols),
        windows.m2.tolist(),
        windows.mean.tolist(),
        windows.start.tolist(),
        strict=True,
    )
    return "".join(
        f"{head} count={n}i,sum={s!r},min={lo!r},max={hi!r},first={a!r},last={b!r},m2={m!r},"
        f"mean={mu!r} {t}\n"
        for n, s, lo, hi, a, b, m, mu, t in rows
    ).encode()


class Influx:
    """The queries and writes a rollup makes, with retries on 429, 5xx and lost connections."""

    def __init__(
        self,
        target: Target,
        *,
        retries: int = 6,
        timeout: float = 120.0,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        on_retry: Callable[[str, float, int], None] | None = None,
    ) -> None:
        """``on_retry(problem, delay_seconds, attempt)`` is called before each wait for a retry,
        as the raw writer's is: an operator sees why the tier step is slow."""
        self.target = target
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._on_retry = on_retry
        self.queries = 0  # Flux queries sent
        self.retried = 0  # requests sent again after a 429, 5xx or lost connection
        self._http = httpx.Client(
            base_url=target.url,
            timeout=timeout,
            headers={"Authorization": f"Token {target.token}"},
        )

    def close(self) -> None:
        self._http.close()

    def _call(
        self, send: Callable[[], httpx.Response], what: str, *, absent_ok: bool = False
    ) -> httpx.Response:
        for attempt in range(self.retries + 1):
            wait: float | None = None
            try:
                resp = send()
            except httpx.TransportError as exc:
                problem = f"cannot reach InfluxDB at {self.target.url}: {exc or type(exc).__name__}"
            else:
                if resp.status_code < 300 or (absent_ok and resp.status_code == 404):
                    return resp
                if resp.status_code == 422 and "outside retention policy" in resp.text:
                    return resp  # a partial write: windows older than the tier keeps are dropped
                problem = f"InfluxDB answered {resp.status_code} to the {what}: {resp.text[:300]}"
                if resp.status_code not in RETRYABLE:
                    raise RollupError(problem)
                wait = _retry_after(resp)
            if attempt == self.retries:
                raise RollupError(f"{problem} (gave up after {attempt + 1} attempts)")
            delay = retry_delay(attempt, self.backoff, self.max_backoff, wait, jitter=False)
            if self._on_retry is not None:
                self._on_retry(problem, delay, attempt + 1)
            time.sleep(delay)
            self.retried += 1
        raise AssertionError("unreachable")

    def api(
        self, method: str, path: str, what: str, *, absent_ok: bool = False, **kwargs: Any
    ) -> Any:
        """A JSON call of InfluxDB's HTTP API; its decoded answer (None for a 404 when
        ``absent_ok``)."""
        resp = self._call(
            lambda: self._http.request(method, path, **kwargs), what, absent_ok=absent_ok
        )
        if resp.status_code == 404:
            return None
        return resp.json() if resp.content else None

    def query(self, flux: str) -> pd.DataFrame:
        """Flux's annotation-free CSV as a frame (strings; empty when no rows)."""
        import pandas as pd

        self.queries += 1
        body = {"query": flux, "type": "flux", "dialect": {"annotations": [], "header": True}}
        resp = self._call(
            lambda: self._http.post("/api/v2/query", params={"org": self.target.org}, json=body),
            f"rollup query of {self.target.bucket}",
        )
        text = resp.text
        if not text.strip():
            return pd.DataFrame()
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        if "error" in frame.columns:
            raise RollupError(f"InfluxDB failed the rollup query: {frame['error'].iloc[0]}")
        return frame

    def write(self, bucket: str, body: bytes) -> None:
        if not body:
            return
        params = {"org": self.target.org, "bucket": bucket, "precision": "s"}
        self._call(
            lambda: self._http.post(
                "/api/v2/write",
                params=params,
                content=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            ),
            f"tier write to {bucket}",
        )


def _flux_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _source(bucket: str, series: str, start: int, stop: int) -> str:
    # The series name is checked against the one rule (letters, digits, _ . -), so it needs no
    # escaping inside a Flux string; bucket names come from the operator's configuration.
    if not is_series_name(series):
        raise ValueError(f"invalid series name {series!r}")
    quoted = bucket.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return (
        f'from(bucket: "{quoted}")\n'
        f"    |> range(start: {_flux_time(start)}, stop: {_flux_time(stop)})\n"
        f'    |> filter(fn: (r) => r._measurement == "{series}" and r._field == "value")'
    )


def _seconds(column: pd.Series) -> np.ndarray:
    """RFC 3339 texts (whole seconds, UTC) as seconds since the epoch."""
    import pandas as pd

    return pd.to_datetime(column, utc=True).dt.as_unit("s").astype("int64").to_numpy()


def _tag_sets(frame: pd.DataFrame) -> list[tuple[TagSet, pd.DataFrame]]:
    """Rows grouped by series key (Flux table), with each key's tags."""
    if frame.empty:
        return []
    tag_columns = [c for c in frame.columns if c not in _NOT_TAGS]
    out = []
    for _, rows in frame.groupby("table", sort=False):
        first = rows.iloc[0]
        tags = tuple(sorted((c, str(first[c])) for c in tag_columns if str(first[c])))
        out.append((tags, rows))
    return out


def raw_counts(
    influx: Influx, series: str, start: int, stop: int, seconds: int
) -> dict[TagSet, dict[int, int]]:
    """Points per window of ``seconds`` in [start, stop), per series key: pushed down."""
    flux = (
        _source(influx.target.bucket, series, start, stop)
        + f'\n    |> aggregateWindow(every: {seconds}s, fn: count, timeSrc: "_start",'
        + " createEmpty: false)"
        + '\n    |> drop(columns: ["_start", "_stop", "_field", "_measurement"])'
    )
    out: dict[TagSet, dict[int, int]] = {}
    for tags, rows in _tag_sets(influx.query(flux)):
        times = _seconds(rows["_time"])
        counts = out.setdefault(tags, {})
        for t, n in zip(times.tolist(), rows["_value"].astype(np.int64).tolist(), strict=True):
            counts[int(t)] = counts.get(int(t), 0) + int(n)
    return out


def raw_points(
    influx: Influx, series: str, start: int, stop: int
) -> dict[TagSet, tuple[np.ndarray, np.ndarray]]:
    """Every raw point in [start, stop), per series key: (seconds, values) in time order."""
    flux = (
        _source(influx.target.bucket, series, start, stop)
        + '\n    |> drop(columns: ["_start", "_stop", "_field", "_measurement"])'
    )
    out = {}
    for tags, rows in _tag_sets(influx.query(flux)):
        times = _seconds(rows["_time"])
        values = rows["_value"].astype(np.float64).to_numpy()
        order = np.argsort(times, kind="stable")
        out[tags] = (times[order].astype(np.int64), values[order])
    return out


def _runs(starts: Iterable[int], seconds: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) runs of windows, given their starts."""
    runs: list[tuple[int, int]] = []
    for s in sorted(starts):
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], s + seconds)
        else:
            runs.append((s, s + seconds))
    return runs


def widen(lo: int, hi: int, tiers: tuple[Tier, ...]) -> tuple[int, int]:
    """[lo, hi] (seconds, inclusive) widened to whole windows of the coarsest tier."""
    c = tiers[-1].seconds
    return lo - lo % c, hi - hi % c + c


class _TierWrites:
    """Tier lines gathered per bucket and written ``WRITE_LINES`` at a time: a year of 1 s data
    is 365 days of three tiers, and a request per day and tier cost more than the writing."""

    def __init__(self, influx: Influx) -> None:
        self.influx = influx
        self._lines: dict[str, list[bytes]] = {}
        self._count: dict[str, int] = {}

    def add(self, bucket: str, body: bytes, lines: int) -> None:
        if not lines:
            return
        self._lines.setdefault(bucket, []).append(body)
        self._count[bucket] = self._count.get(bucket, 0) + lines
        if self._count[bucket] >= WRITE_LINES:
            self.flush(bucket)

    def flush(self, bucket: str | None = None) -> None:
        for name in [bucket] if bucket is not None else list(self._lines):
            body = b"".join(self._lines.pop(name, []))
            self._count.pop(name, None)
            self.influx.write(name, body)


def _blocks(days: list[int], span: int, most: int) -> list[list[int]]:
    """Consecutive days (starts ``span`` apart) in runs of at most ``most``."""
    blocks: list[list[int]] = []
    for day in days:
        if blocks and blocks[-1][-1] + span == day and len(blocks[-1]) < most:
            blocks[-1].append(day)
        else:
            blocks.append([day])
    return blocks


def _near(runs: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Runs less than ``gap`` apart joined into one: a sparse series (a point every 15
    minutes) has a dirty finest window every few windows, and a read per window was a query
    per point (35,040 queries for a year of 15 m data)."""
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if out and a - out[-1][1] < gap:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _split(runs: list[tuple[int, int]], span: int) -> list[tuple[int, int]]:
    """Runs cut at multiples of ``span``: one raw read covers at most a day."""
    out = []
    for a, b in runs:
        while a < b:
            cut = min(b, a - a % span + span)
            out.append((a, cut))
            a = cut
    return out


def refresh(
    influx: Influx,
    tiers: tuple[Tier, ...],
    series: str,
    lo: int,
    hi: int,
    parsed: Mapping[TagSet, Windows] | None = None,
    result: RollupStats | None = None,
) -> RollupStats:
    """Rewrite every tier window of ``series`` that meets [lo, hi] (seconds, inclusive) from what
    InfluxDB holds, using ``parsed`` finest windows (per series key) where the raw counts prove
    them exact; then ``settle`` them: a coarsest window whose raw count changed while it was
    rolled up (a concurrent load's raw points landed) is rolled up again from raw. Ranges that
    did not settle in ``SETTLE_ROUNDS`` are left in ``result.unsettled``."""
    result = result if result is not None else RollupStats()
    if not tiers:
        return result
    start, stop = widen(lo, hi, tiers)
    written = _rollup_range(influx, tiers, series, start, stop, parsed or {}, result)
    unsettled = settle(influx, tiers, series, start, stop, written, result)
    if unsettled:
        result.unsettled.setdefault(series, []).extend(unsettled)
    return result


def _changed(
    now: Mapping[TagSet, Mapping[int, int]], written: Mapping[TagSet, Mapping[int, int]]
) -> list[int]:
    """The windows written whose raw count ``now`` differs from the count written, any series
    key. Windows not written are not this writer's to check: it left no tier point there."""
    out: set[int] = set()
    for tags, wrote in written.items():
        have = now.get(tags, {})
        out.update(w for w, n in wrote.items() if have.get(w, 0) != n)
    return sorted(out)


def settle(
    influx: Influx,
    tiers: tuple[Tier, ...],
    series: str,
    start: int,
    stop: int,
    written: dict[TagSet, dict[int, int]],
    result: RollupStats,
) -> list[tuple[int, int]]:
    """After the tier windows of [start, stop) (whole coarsest windows) were written with the
    coarsest counts ``written``: count the raw points per coarsest window again (one pushed-down
    query) and roll up from raw, and write again, every window whose count differs; until none
    does, at most ``SETTLE_ROUNDS`` times. The runs still differing (empty: settled).

    Why (ADR 0014, concurrent writers of a tier window): a concurrent load may land raw points
    in a window after this rollup read it and write its own tiers before this one writes. The
    last writer of a window has then checked, after its write, a raw count that every raw write
    of the window had reached (a later raw write would be followed by its load's tier write), and
    found it equal to what it wrote: points are only added, so equal counts mean the very points
    it read."""
    coarse = tiers[-1].seconds
    for round_ in range(SETTLE_ROUNDS + 1):
        changed = _changed(raw_counts(influx, series, start, stop, coarse), written)
        if not changed or round_ == SETTLE_ROUNDS:
            return _runs(changed, coarse)
        result.windows_rechecked += len(changed)
        for a, b in _runs(changed, coarse):
            again = _rollup_range(influx, tiers, series, a, b, {}, result)
            for counts in written.values():
                for w in range(a, b, coarse):
                    counts.pop(w, None)
            for tags, counts in again.items():
                written.setdefault(tags, {}).update(counts)
    raise AssertionError("unreachable")


def _rollup_range(
    influx: Influx,
    tiers: tuple[Tier, ...],
    series: str,
    start: int,
    stop: int,
    parsed: Mapping[TagSet, Windows],
    result: RollupStats,
) -> dict[TagSet, dict[int, int]]:
    """Write every tier window of ``series`` in [start, stop) (whole coarsest windows); the
    coarsest windows' counts written, per series key."""
    finest, coarse = tiers[0].seconds, tiers[-1].seconds
    span = READ_SPAN_SECONDS
    written: dict[TagSet, dict[int, int]] = {}
    # One pushed-down count per day first: the days without points (gaps, a range wider than
    # the data) cost nothing more.
    counted = raw_counts(influx, series, start, stop, span).values()
    # Flux labels the window that the range's start cuts with that start: align it to the day
    busy = {day - day % span for by_day in counted for day in by_day}
    days = [d for d in range(start - start % span, stop, span) if d in busy]
    out = _TierWrites(influx)
    # Then the finest windows' counts of up to COUNT_DAYS busy days in one query.
    for block in _blocks(days, span, COUNT_DAYS):
        chunk_start, chunk_stop = max(block[0], start), min(stop, block[-1] + span)
        counts = raw_counts(influx, series, chunk_start, chunk_stop, finest)
        for tags, by_window in counts.items():
            mine = parsed.get(tags)
            if mine is not None:
                inside = (mine.start >= chunk_start) & (mine.start < chunk_stop)
                mine = mine.select(inside)
                stored = np.array([by_window.get(s, -1) for s in mine.start.tolist()])
                exact = stored == mine.count if len(mine) else np.zeros(0, dtype=bool)
                kept = mine.select(exact) if len(mine) else stats.empty()
            else:
                kept = stats.empty()
            known = set(kept.start.tolist())
            dirty = sorted(s for s in by_window if s not in known)
            read = _from_raw(influx, series, tags, dirty, (finest, coarse), result)
            windows = stats.concat(kept, *read)
            result.windows_from_file += len(kept)
            result.windows_from_raw += len(windows) - len(kept)
            tag_map = dict(tags)
            for tier in tiers:
                level = windows if tier.seconds == finest else stats.coarsen(windows, tier.seconds)
                body = tier_lines(series, tag_map, level)
                out.add(tier.bucket(influx.target.bucket), body, len(level))
                result.windows_written += len(level)
                if tier.seconds == coarse:
                    mine_counts = written.setdefault(tags, {})
                    for w, n in zip(level.start.tolist(), level.count.tolist(), strict=True):
                        mine_counts[int(w)] = mine_counts.get(int(w), 0) + int(n)
            result.series.add(series)
    out.flush()
    return written


def _from_raw(
    influx: Influx,
    series: str,
    tags: TagSet,
    dirty: list[int],
    sizes: tuple[int, int],
    result: RollupStats,
) -> list[Windows]:
    """The finest windows starting at ``dirty`` (sorted) of one series key, from its raw
    points: windows less than a coarsest window apart read in one query (``sizes``: the
    finest and the coarsest tier's seconds), a day at most per read."""
    finest, coarse = sizes
    wanted = np.array(dirty, dtype=np.int64)
    out = []
    for a, b in _split(_near(_runs(dirty, finest), coarse), READ_SPAN_SECONDS):
        result.raw_reads += 1
        for read_tags, (times, values) in raw_points(influx, series, a, b).items():
            if read_tags == tags:
                # a read spans the windows between dirty ones: theirs come from the file
                take = np.isin(times - times % finest, wanted)
                out.append(stats.from_points(times[take], values[take], finest))
                result.points_read += int(take.sum())
    return out


def series_in(influx: Influx, start: int, stop: int) -> list[str]:
    """Every measurement with points in [start, stop)."""
    bucket = influx.target.bucket.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    flux = (
        'import "influxdata/influxdb/schema"\n'
        f'schema.measurements(bucket: "{bucket}", start: {_flux_time(start)}, '
        f"stop: {_flux_time(stop)})"
    )
    frame = influx.query(flux)
    return sorted(frame["_value"].tolist()) if not frame.empty else []


def _bucket(influx: Influx, name: str) -> dict[str, Any] | None:
    found = influx.api(
        "GET",
        "/api/v2/buckets",
        "bucket lookup",
        absent_ok=True,
        params={"org": influx.target.org, "name": name},
    )
    matches = [b for b in (found or {}).get("buckets", []) if b.get("name") == name]
    return matches[0] if matches else None


def ensure_tier_buckets(
    influx: Influx, tiers: tuple[Tier, ...], retention: Mapping[Tier, int] | None = None
) -> list[str]:
    """Create the missing tier buckets and set every tier's retention (seconds, 0: forever);
    idempotent. Returns what it did, one line per bucket."""
    retention = retention or {}
    orgs = influx.api("GET", "/api/v2/orgs", "org lookup", params={"org": influx.target.org})
    org_id = orgs["orgs"][0]["id"]
    done = []
    for tier in tiers:
        name = tier.bucket(influx.target.bucket)
        keep = int(retention.get(tier, 0))
        rules = [{"type": "expire", "everySeconds": keep}] if keep else []
        shown = f"retention {keep}s" if keep else "kept forever"
        existing = _bucket(influx, name)
        if existing is None:
            body = {
                "orgID": org_id,
                "name": name,
                "retentionRules": rules,
                "description": f"gridts rollup tier {tier.text} of {influx.target.bucket}",
            }
            influx.api("POST", "/api/v2/buckets", "bucket create", json=body)
            done.append(f"created {name} ({shown})")
            continue
        current = [int(r.get("everySeconds", 0)) for r in existing.get("retentionRules") or []]
        if (current[0] if current else 0) != keep:
            path = f"/api/v2/buckets/{existing['id']}"
            # an empty list leaves the old rule in place: "forever" is an expiry of 0 seconds
            forever = [{"type": "expire", "everySeconds": 0}]
            if keep:  # shard groups may not be longer than the retention: InfluxDB's defaults
                rules[0]["shardGroupDurationSeconds"] = (
                    3600 if keep < 2 * 86400 else 86400 if keep < 180 * 86400 else 7 * 86400
                )
            influx.api("PATCH", path, "bucket update", json={"retentionRules": rules or forever})
            done.append(f"updated {name} ({shown})")
        else:
            done.append(f"kept {name} ({shown})")
    return done


def missing_tier_buckets(influx: Influx, tiers: tuple[Tier, ...]) -> list[str]:
    names = [t.bucket(influx.target.bucket) for t in tiers]
    return [name for name in names if _bucket(influx, name) is None]


def tier_buckets(influx: Influx) -> dict[str, Tier]:
    """Every tier bucket of the raw bucket that the token sees, whatever tiers are configured:
    `<bucket>_<tier>` with a valid tier in its own spelling (`grid_15m`, not `grid_900s`)."""
    prefix = influx.target.bucket + "_"
    found: dict[str, Tier] = {}
    offset = 0
    while True:
        page = influx.api(
            "GET",
            "/api/v2/buckets",
            "bucket list",
            absent_ok=True,
            params={"org": influx.target.org, "limit": 100, "offset": offset},
        )
        buckets = (page or {}).get("buckets", [])
        for b in buckets:
            name = str(b.get("name", ""))
            if not name.startswith(prefix):
                continue
            try:
                parsed = stats.parse_tiers(name[len(prefix) :])
            except ValueError:
                continue
            if len(parsed) == 1 and parsed[0].text == name[len(prefix) :]:
                found[name] = parsed[0]
        if len(buckets) < 100:
            return found
        offset += len(buckets)


def values_of(text: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The float of each value text span (the digits written to InfluxDB, which parses them the
    same way: correctly rounded), without a Python object per value.

    Plain decimals (an optional ``-``, at most 15 digits and one ``.``) take the exact fast path
    of Clinger's algorithm: the digits as an integer m < 10^15 < 2^53 and the power 10^k (k <= 15)
    are both exact doubles, so m / 10^k, one correctly rounded division, is the correctly rounded
    value of the text, as strtod gives it. Anything else (exponents, more digits, nan) goes
    through numpy's parser. The fast path is about 2.5 x quicker for a year of 1 s values."""
    n = len(start)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    width = int(length.max())
    padded = np.concatenate((text, np.zeros(width, dtype=np.uint8)))
    cells = np.lib.stride_tricks.sliding_window_view(padded, width)[start]
    valid = np.arange(width) < length[:, None]
    cells = np.where(valid, cells, 0).astype(np.uint8)
    digits = cells - np.uint8(48)  # wraps round for everything but 0-9
    is_digit = digits < 10
    dot = cells == 46
    minus = cells[:, 0] == 45
    places = np.count_nonzero(is_digit, axis=1)
    simple = (
        (np.count_nonzero(~(is_digit | dot) & valid, axis=1) == minus)
        & (np.count_nonzero(dot, axis=1) <= 1)
        & (places >= 1)
        & (places <= _EXACT_DIGITS)
    )
    mantissa = np.zeros(n, dtype=np.int64)
    for col in range(width):
        d = is_digit[:, col]
        mantissa[d] = mantissa[d] * 10 + digits[d, col]
    decimals = np.where(dot.any(axis=1), length - 1 - dot.argmax(axis=1), 0)
    out: np.ndarray = mantissa / _POW10[np.minimum(decimals, _EXACT_DIGITS)]
    np.negative(out, out=out, where=minus)
    if not simple.all():
        rest = ~simple
        out[rest] = np.ascontiguousarray(cells[rest]).view(f"S{width}").ravel().astype(np.float64)
    return out


class Collector:
    """The finest tier's windows of what a load writes, per series key, chunk by chunk; after
    the raw writes, ``finish`` rewrites the tiers of the ranges the load touched."""

    def __init__(self, tiers: tuple[Tier, ...]) -> None:
        self.tiers = tiers
        self._parts: dict[tuple[str, TagSet], list[Windows]] = {}
        self._span: dict[tuple[str, TagSet], tuple[int, int]] = {}

    def add(
        self,
        measurement: str,
        tags: TagSet,
        seconds: np.ndarray,
        text: np.ndarray,
        start: np.ndarray,
        length: np.ndarray,
    ) -> None:
        if len(seconds) == 0 or not self.tiers:
            return
        values = values_of(text, start, length)
        order = np.argsort(seconds, kind="stable")
        key = (measurement, tags)
        windows = stats.from_points(seconds[order], values[order], self.tiers[0].seconds)
        self._parts.setdefault(key, []).append(windows)
        lo, hi = int(seconds.min()), int(seconds.max())
        old = self._span.get(key, (lo, hi))
        self._span[key] = (min(lo, old[0]), max(hi, old[1]))

    @property
    def series(self) -> int:
        return len(self._parts)

    def spans(self) -> dict[str, tuple[int, int]]:
        """Per series name (over its tag sets), the points collected: [lo, hi] (seconds)."""
        out: dict[str, tuple[int, int]] = {}
        for (measurement, _tags), (lo, hi) in self._span.items():
            old = out.get(measurement, (lo, hi))
            out[measurement] = (min(lo, old[0]), max(hi, old[1]))
        return out

    def finish(
        self, influx: Influx, on_series: Callable[[str], None] = lambda _s: None
    ) -> RollupStats:
        result = RollupStats()
        for (measurement, tags), parts in self._parts.items():
            joined = stats.concat(*parts)
            windows = stats.merge(joined, joined.start)  # a window split across chunks
            lo, hi = self._span[(measurement, tags)]
            refresh(influx, self.tiers, measurement, lo, hi, {tags: windows}, result)
            on_series(measurement)
        return result


# --- the rollup and tiers commands -------------------------------------------------------------


def _connection(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("--url", help="InfluxDB URL (default $INFLUX_URL)")
    parser.add_argument("--org", help="organisation (default $INFLUX_ORG)")
    parser.add_argument("--bucket", help="the raw bucket (default $INFLUX_BUCKET)")
    parser.add_argument("--token", help="token (default $INFLUX_TOKEN)")
    parser.add_argument(
        "--tiers",
        default=settings.ingest_tiers,
        help="tiers (default $INGEST_TIERS or %(default)s)",
    )


def _instant(text: str) -> int:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs Z or an offset")
    return int(parsed.timestamp())


def _retention(text: str) -> dict[str, int]:
    """`1m=90d,15m=730d,1h=0`: seconds per tier (0: kept forever), in InfluxDB's duration
    grammar like every retention."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        tier, _, keep = part.partition("=")
        try:
            out[tier.strip()] = 0 if keep.strip() == "0" else parse_influx_duration(keep)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{part!r}: {exc}") from exc
    return out


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    settings = settings if settings is not None else load_settings()
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Rollup tiers: exact window statistics (count, sum, min, max, first, last, "
        "m2) per series in <bucket>_<tier> buckets, which the API answers from (ADR 0013).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rollup = sub.add_parser(
        "rollup",
        help="(re)build the tiers of a range from the raw points",
        description="Rewrite every tier window that meets [--start, --end] from the raw points "
        "InfluxDB holds: for data written by other tools, or to repair. A load refreshes the "
        "tiers of what it writes by itself. Idempotent.",
        epilog="example: python -m ingest rollup --series f_soll_aktiv "
        "--start 2021-05-01T00:00:00Z --end 2021-06-01T00:00:00Z",
    )
    rollup.add_argument("--series", nargs="+", help="series names (default: every series)")
    rollup.add_argument("--start", type=_instant, required=True, help="RFC 3339, inclusive")
    rollup.add_argument("--end", type=_instant, required=True, help="RFC 3339, exclusive")
    rollup.add_argument("--quiet", action="store_true", help="no progress")
    _connection(rollup, settings)
    tiers = sub.add_parser(
        "tiers",
        help="create the tier buckets and set their retention (idempotent)",
        description="Create the missing <bucket>_<tier> buckets and set each tier's retention; "
        "run by scripts/influxdb-local and the chart's setup Job. Needs a token that may "
        "create buckets (the operator token).",
        epilog="example: python -m ingest tiers --retention 1m=90d,15m=730d,1h=0",
    )
    tiers.add_argument(
        "--retention",
        type=_retention,
        default=settings.ingest_tier_retention,
        help="per tier, e.g. 1m=90d,15m=730d,1h=0 (0: forever; default $INGEST_TIER_RETENTION, "
        "else forever)",
    )
    _connection(tiers, settings)
    return parser


def _warn(problem: str, delay: float, attempt: int) -> None:
    print(f"ingest: warning: {problem}; retrying in {delay:.1f} s (attempt {attempt})",
          file=sys.stderr, flush=True)  # fmt: skip


def main(argv: list[str]) -> int:
    settings = load_settings()
    args = build_parser(settings).parse_args(argv)
    try:
        target = settings.target(args.url, args.org, args.bucket, args.token)
        tiers = stats.parse_tiers(args.tiers)
    except ValueError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 2
    influx = Influx(target, on_retry=_warn)
    try:
        command = _tiers_command if args.command == "tiers" else _rollup_command
        return command(influx, tiers, args)
    except RollupError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 1
    finally:
        influx.close()


def _error(message: str) -> int:
    print(f"ingest: error: {message}", file=sys.stderr)
    return 2


def _tiers_command(influx: Influx, tiers: tuple[Tier, ...], args: argparse.Namespace) -> int:
    """``ingest tiers``: create the tier buckets, set their retention."""
    by_text = {t.text: t for t in tiers}
    unknown = sorted(set(args.retention) - set(by_text))
    if unknown:
        return _error(f"--retention names tiers not in --tiers: {unknown}")
    retention = {by_text[k]: v for k, v in args.retention.items()}
    for line in ensure_tier_buckets(influx, tiers, retention):
        print(f"ingest: {line}", file=sys.stderr)
    return 0


def _rollup_command(influx: Influx, tiers: tuple[Tier, ...], args: argparse.Namespace) -> int:
    """``ingest rollup``: rewrite the tiers of a range from raw, and clear the pending-rollup
    markers of loads inside it."""
    from ingest.pending import clear, read_open

    if args.end <= args.start:
        return _error("--end must be after --start")
    missing = missing_tier_buckets(influx, tiers)
    if missing:
        return _error(
            f"tier buckets missing: {', '.join(missing)} (python -m ingest tiers creates them)"
        )
    bad = [n for n in args.series or [] if not is_series_name(n)]
    if bad:
        return _error(f"invalid series names: {bad}")
    # Loads' pending-rollup markers inside the range, read before the raw points are: the
    # rollup of their series clears them (and covers series a killed load left only there).
    markers = {
        b: [
            m
            for m in read_open(influx, b)
            if m.within(args.start, args.end) and (not args.series or m.series in args.series)
        ]
        for b in (t.bucket(influx.target.bucket) for t in tiers)
    }
    names = args.series or sorted(
        set(series_in(influx, args.start, args.end))
        | {m.series for found in markers.values() for m in found if is_series_name(m.series)}
    )
    result = RollupStats()
    for i, name in enumerate(names, 1):
        refresh(influx, tiers, name, args.start, args.end - 1, None, result)
        if not args.quiet:
            print(f"ingest: rollup {i}/{len(names)} {name}", file=sys.stderr, flush=True)
    settled = [n for n in names if n not in result.unsettled]
    cleared = sum(
        clear(influx, b, [m for m in found if m.series in settled]) for b, found in markers.items()
    )
    print(
        f"ingest: rollup of {len(names)} series: {result.windows_written:,} tier windows "
        f"written from {result.points_read:,} raw points"
        + (f"; {cleared} pending-rollup markers cleared" if cleared else "")
        + (
            f"; {result.windows_rechecked} windows changed while they were rolled up (a load "
            "wrote raw points there) and were rolled up again"
            if result.windows_rechecked
            else ""
        ),
        file=sys.stderr,
    )
    return _unsettled(result.unsettled)


def _unsettled(unsettled: Mapping[str, list[tuple[int, int]]]) -> int:
    """``ingest rollup``'s exit status: 1 (and the series named) when windows kept changing
    through every round of ``settle``: loads of that range are still writing."""
    if not unsettled:
        return 0
    lo = min(a for runs in unsettled.values() for a, _ in runs)
    hi = max(b for runs in unsettled.values() for _, b in runs)
    print(
        f"ingest: error: tier windows of {', '.join(sorted(unsettled))} in "
        f"[{_flux_time(lo)}, {_flux_time(hi)}) kept changing while they were rolled up "
        f"({SETTLE_ROUNDS} rounds: loads are writing there); their pending-rollup markers stay "
        "open: run this rollup again once those loads have ended",
        file=sys.stderr,
    )
    return 1
