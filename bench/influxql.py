#!/usr/bin/env python3
"""Plain reads in Flux against InfluxQL, by size (ADR 0018): where InfluxQL stops paying.

    .venv/bin/python bench/influxql.py          # about a minute

It starts its own influxd (compacted data, as a node holds data loaded hours before), writes
two days of a 1 s series, and reads its first N points, for each N, both ways the API can, in
the API's own code (``app.influx_http``, ``app.influxql_csv``, ``app.points.CsvReader``):

- Flux: `from |> range |> filter |> keep |> limit`, the CSV read as it arrives;
- InfluxQL: the same read on the v1 `/query`, its CSV read as the same points
  (``read_points``).

The two alternate read by read. Printed per N: the p50 of each and their ratio, InfluxDB's CPU
per read (from /proc, over the whole run of each) and this process's (reading the answers).
``app.store.INFLUXQL_MOST_ROWS`` is set from where the ratio crosses 1.

Then windowed aggregates of the raw points both ways (``AGGREGATES``), the answers read whole
and not parsed, InfluxDB's side alone: Flux's `aggregateWindow` against InfluxQL's
`GROUP BY time()` (ADR 0018, addendum: why the API's aggregates stay Flux).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import capacity  # noqa: E402
import influxdb_local as il  # noqa: E402
from api import BUCKET, ORG, settle, write_series  # noqa: E402
from app.influx_http import FluxHttp  # noqa: E402
from app.influxql_csv import Outcome, read_points  # noqa: E402
from app.points import CsvReader  # noqa: E402
from app.query import influxql  # noqa: E402
from app.store import INFLUXQL_MOST_ROWS  # noqa: E402
from procstat import cpu_seconds  # noqa: E402

DAY0 = datetime(2021, 5, 1, tzinfo=UTC)
SIZES = (100, 1_000, 2_880, 5_000, 10_000, 30_000)
OUT = ROOT / "bench" / "out" / "influxql.json"
# Windowed aggregates of the raw points, asked both ways: (what, seconds of range, window, fn)
AGGREGATES = (
    ("an hour at 1 m", 3_600, "1m", "min"),
    ("a day at 30 s", 86_400, "30s", "max"),
    ("a day at 30 s", 86_400, "30s", "mean"),
    ("a day at 15 m", 86_400, "15m", "count"),
    ("two days at 1 h", 2 * 86_400, "1h", "last"),
)
WINDOWED = """from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._measurement == p_series and r._field == "value")
    |> aggregateWindow(every: {every}, fn: {fn}, timeSrc: "_start", createEmpty: false)
    |> keep(columns: ["_time", "_value"])"""
FLUX = """from(bucket: p_bucket)
    |> range(start: p_start, stop: p_stop)
    |> filter(fn: (r) => r._measurement == p_series and r._field == "value")
    |> keep(columns: ["_time", "_value"])
    |> limit(n: p_limit)"""


async def read_flux(http: FluxHttp, read: influxql.PlainRead) -> int:
    reader = CsvReader()
    params: dict[str, object] = {"p_bucket": read.bucket, "p_series": read.measurement,
                                 "p_start": read.start, "p_stop": read.stop,
                                 "p_limit": read.limit}  # fmt: skip
    await http.query_into(FLUX, params, reader.feed)
    return len(reader.points())


async def read_influxql(http: FluxHttp, read: influxql.PlainRead) -> int:
    parts: list[bytes] = []
    await http.influxql_into(read.bucket, influxql.statement(read), parts.append)
    points = read_points(b"".join(parts))
    if isinstance(points, Outcome):
        raise SystemExit(f"InfluxQL did not answer {read}: {points.value}")
    return len(points)


# The columns both tables print after their first: p50 each way, the ratio, then CPU per call:
# InfluxDB's (db) and this process's (own), each way.
_HEADS = (f"  {'Flux':>8}  {'InfluxQL':>8}  {'ratio':>7}  {'db Flux':>7}  {'db IQL':>7}"
          f"  {'own Flux':>7}  {'own IQL':>7}")  # fmt: skip


def _cells(r: dict[str, Any]) -> str:
    db, own = r["influxd_cpu_ms"], r["client_cpu_ms"]
    return (f"  {r['flux_ms']:>8.2f}  {r['influxql_ms']:>8.2f}  {r['ratio']:>6.2f}x"
            f"  {db['flux']:>7.2f}  {db['influxql']:>7.2f}"
            f"  {own['flux']:>7.2f}  {own['influxql']:>7.2f}")  # fmt: skip


async def alternate(
    ways: dict[str, Callable[[], Awaitable[int]]], pid: int, repeats: int
) -> dict[str, Any]:
    """Each of ``ways`` ``repeats`` times, alternating (the order turned every round): the
    p50 of each in ms, its ratio to the first, and per call InfluxDB's CPU and this
    process's, in ms."""
    times: dict[str, list[float]] = {k: [] for k in ways}
    server: dict[str, float] = dict.fromkeys(ways, 0.0)
    client: dict[str, float] = dict.fromkeys(ways, 0.0)
    for i in range(repeats):
        for name in list(ways) if i % 2 == 0 else list(ways)[::-1]:
            cpu, own, t = cpu_seconds(pid), time.process_time(), time.perf_counter()
            await ways[name]()
            times[name].append(time.perf_counter() - t)
            server[name] += cpu_seconds(pid) - cpu
            client[name] += time.process_time() - own
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    first, second = ways
    return {
        "flux_ms": p50[first], "influxql_ms": p50[second], "ratio": p50[second] / p50[first],
        "influxd_cpu_ms": {k: v / repeats * 1000 for k, v in server.items()},
        "client_cpu_ms": {k: v / repeats * 1000 for k, v in client.items()},
    }  # fmt: skip


async def measure(url: str, token: str, pid: int, repeats: int) -> list[dict[str, Any]]:
    http = FluxHttp(url, token, ORG)
    rows = []
    try:
        for n in SIZES:
            read = influxql.PlainRead(BUCKET, "f1", "value", DAY0, DAY0 + timedelta(seconds=n),
                                      n + 1)  # fmt: skip
            ways = {
                "flux": functools.partial(read_flux, http, read),
                "influxql": functools.partial(read_influxql, http, read),
            }
            for way in ways.values():  # warm-up, and the answers compared
                assert await way() == n
            rows.append({"points": n, **await alternate(ways, pid, repeats)})
            r = rows[-1]
            print(f"  {n:>7,}" + _cells(r), flush=True)
    finally:
        await http.close()
    return rows


def _rows(parts: list[bytes]) -> int:
    """The rows of a CSV answer after its header (Flux ends it with a blank line)."""
    return sum(1 for line in b"".join(parts).splitlines() if line.strip()) - 1


async def measure_aggregates(url: str, token: str, pid: int, repeats: int) -> list[dict[str, Any]]:
    """``AGGREGATES`` in Flux and in InfluxQL, alternating: p50 and InfluxDB's CPU per query;
    each answer's windows counted to check that both give as many."""
    http = FluxHttp(url, token, ORG)
    rows = []
    try:
        for what, seconds, every, fn in AGGREGATES:
            stop = DAY0 + timedelta(seconds=seconds)
            flux = WINDOWED.format(every=every, fn=fn)
            params: dict[str, object] = {"p_bucket": BUCKET, "p_series": "f1",
                                         "p_start": DAY0, "p_stop": stop}  # fmt: skip
            ns = [int(t.timestamp()) * 10**9 for t in (DAY0, stop)]
            statement = (f'SELECT {fn}("value"::field) FROM "f1" WHERE time >= {ns[0]} '  # noqa: S608 (AGGREGATES' constants)
                         f"AND time < {ns[1]} GROUP BY time({every}) fill(none)")  # fmt: skip

            async def in_flux(q: str = flux, p: dict[str, object] = params) -> int:
                parts: list[bytes] = []
                await http.query_into(q, p, parts.append)
                return _rows(parts)

            async def in_influxql(q: str = statement) -> int:
                parts: list[bytes] = []
                await http.influxql_into(BUCKET, q, parts.append)
                return _rows(parts)

            ways = {"flux": in_flux, "influxql": in_influxql}
            counts = {k: await way() for k, way in ways.items()}
            if len(set(counts.values())) != 1:
                raise SystemExit(f"{what} {fn}: the two answers differ in windows: {counts}")
            rows.append({"what": what, "fn": fn, "points": seconds, "windows": counts["flux"],
                         **await alternate(ways, pid, repeats)})  # fmt: skip
            r = rows[-1]
            print(f"  {what + ', ' + fn:<24}" + _cells(r), flush=True)
    finally:
        await http.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=60, help="reads of each size, each way")
    ap.add_argument("--json", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = ap.parse_args()
    binary = il.ensure_binary()
    version = il.binary_version(binary)
    print(f"influxd: {version}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-influxql-") as tmp:
        work, port, token = Path(tmp), il.free_port(), secrets.token_urlsafe(24)
        url = f"http://127.0.0.1:{port}"
        proc = il.spawn(binary, work / "influxd", port, work / "influxd.log", capacity.COLD)
        try:
            il.wait_healthy(url, proc)
            il.onboard(url, token, ORG, BUCKET)
            write_series(url, token, "f1", "Hz", DAY0, 1, 2 * 86_400)
            settle(url, token, work)
            print(
                "the first N points of a 1 s series, p50 of reads alternating (ms); CPU per read"
                " (ms): InfluxDB's and this process's\n" + f"  {'N':>7}" + _HEADS,
                flush=True,
            )
            rows = asyncio.run(measure(url, token, proc.pid, args.repeats))
            print(
                "windowed aggregates of the raw points, p50 of queries alternating (ms);"
                " CPU per query (ms)\n" + f"  {'request':<24}" + _HEADS,
                flush=True,
            )
            aggregates = asyncio.run(measure_aggregates(url, token, proc.pid, args.repeats))
        finally:
            il.stop_process(proc.pid)
            proc.wait()
    crossing = next((r["points"] for r in rows if r["ratio"] >= 1), None)
    print(
        f"InfluxQL is slower from {crossing:,} points on; the API asks it up to "
        f"{INFLUXQL_MOST_ROWS:,} (app.store.INFLUXQL_MOST_ROWS)"
        if crossing
        else "InfluxQL was faster at every size",
        flush=True,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {"influxd": version, "repeats": args.repeats, "most_rows": INFLUXQL_MOST_ROWS,
              "sizes": rows, "aggregates": aggregates}  # fmt: skip
    args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
