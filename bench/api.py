#!/usr/bin/env python3
"""Query API benchmark: the API against direct Flux HTTP queries for the same points, side by side.

    .venv/bin/python bench/api.py                  # the default run (about 3 minutes here)
    .venv/bin/python bench/api.py --days-1s 365    # the full year of a 1 s series (31.5 M points)

It starts its own influxd and two API processes (`python -m app`, tiers off and on), on
127.0.0.1 only, writes its series, then measures, in one run:

1. p50 latency of `GET /v1/series/{name}/data` for one day at 30 s (2,880 points) against a direct
   `POST /api/v2/query` of the same Flux for the same points (target: ratio <= 1.3); the two are
   interleaved, request by request, so drift affects both alike;
2. the same for a 1 s series at 15 m over `--days-1s` days (a year is 35,040 points; the default
   is shorter because writing 31.5 M points on a 2-core machine takes longer than this benchmark
   should) and, to keep the output size comparable with the year, the same days at 1 m; and the
   15 m case once more from a second API with its rollup tiers on (filled by `python -m ingest
   rollup`), against the direct Flux on the 15 m tier, and its speedup over the tiers-off API;
3. 32 concurrent clients for `--load-seconds`: errors, requests per second, p50 and p99;
4. serialising 100,000 points to JSON (`app.formats.series_json`, target <= 50 ms).

The direct query reads the body without parsing it, uncompressed as the API asks for it: the
ratio charges the API with all of its work (parsing Flux's CSV, building and serialising JSON,
one more HTTP hop). "API CPU" is the API process's CPU time per request, from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

import capacity  # noqa: E402
import influxdb_local as il  # noqa: E402
from app import formats  # noqa: E402
from app.points import Points  # noqa: E402
from app.query import influxql  # noqa: E402
from app.query.plan import DataParams, build_plan  # noqa: E402
from gridts.durations import parse_duration  # noqa: E402
from procstat import cpu_seconds  # noqa: E402

DAY0 = datetime(2021, 5, 1, tzinfo=UTC)
ORG, BUCKET = "bench", "bench"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_series(
    url: str, token: str, name: str, unit: str, start: datetime, step: int, count: int
) -> float:
    """`count` points every `step` seconds from `start`, in batches; returns seconds taken."""
    t0 = int(start.timestamp())
    began = time.perf_counter()
    batch = 100_000
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=300) as c:
        for lo in range(0, count, batch):
            hi = min(count, lo + batch)
            body = "\n".join(
                f"{name},unit={unit} value={50 + ((i * 7919) % 1000 - 500) / 10000} {t0 + i * step}"
                for i in range(lo, hi)
            )
            r = c.post(
                "/api/v2/write",
                params={"org": ORG, "bucket": BUCKET, "precision": "s"},
                content=body.encode(),
            )
            r.raise_for_status()
    return time.perf_counter() - began


def flux_text(
    name: str, start: datetime, end: datetime, every: str, tier: str | None = None
) -> str:
    """The query the API sends, with its parameters written in as literals; with ``tier``,
    the one it sends to that tier's bucket for a mean at the tier's own windows over a range
    on their boundaries: the stored means read as they are, one point per window
    (``app.query.flux.tier_query``)."""
    bucket, field = (BUCKET, "value") if tier is None else (f"{BUCKET}_{tier}", "mean")
    window = (
        f'    |> aggregateWindow(every: {every}, offset: 0s, fn: mean, timeSrc: "_start", '
        "createEmpty: false)\n"
        if tier is None
        else ""
    )
    return (
        f'from(bucket: "{bucket}")\n'
        f"    |> range(start: {iso(start)}, stop: {iso(end)})\n"
        f'    |> filter(fn: (r) => r._measurement == "{name}" and r._field == "{field}")\n'
        + window
        + '    |> keep(columns: ["_time", "_value"])'
    )


def settle(url: str, token: str, work: Path) -> dict[str, Any]:
    """Waits until every bucket is compacted (``capacity.wait_compacted``), as ``--at-rest``
    asks; what it waited for, for the report."""
    ids = capacity.bucket_ids(url, ORG, token)
    wanted = {n: i for n, i in ids.items() if n == BUCKET or n.startswith(BUCKET + "_")}
    done, waited = capacity.wait_compacted(work / "influxd" / "engine", wanted, 1800)
    print(f"at rest: compacted {done} after {waited:.0f} s ({' '.join(capacity.COLD)})", flush=True)
    if not done:
        raise SystemExit("influxd did not compact the buckets within 30 minutes")
    return {"waited_seconds": round(waited), "flags": capacity.COLD}


def rollup(url: str, token: str, name: str, start: datetime, end: datetime) -> float:
    """The tier buckets created and filled for one series, as an operator does
    (`python -m ingest tiers`, `python -m ingest rollup`); returns seconds taken."""
    env = {
        **os.environ,
        "INFLUX_URL": url,
        "INFLUX_ORG": ORG,
        "INFLUX_BUCKET": BUCKET,
        "INFLUX_TOKEN": token,
        "PYTHONPATH": str(ROOT / "src"),
    }
    began = time.perf_counter()
    for args in (
        ["tiers"],
        ["rollup", "--series", name, "--start", iso(start), "--end", iso(end), "--quiet"],
    ):
        subprocess.run([sys.executable, "-m", "ingest", *args], env=env, check=True)
    return time.perf_counter() - began


def start_api(
    work: Path, name: str, env: dict[str, str], command: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m app` (or ``command``) on a free port with ``env``, waited for on /readyz."""
    port = il.free_port()
    full = {**env, "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    with open(work / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(
            command or [sys.executable, "-m", "app"], env=full, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the API ({name}) did not become ready")
        time.sleep(0.2)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio_interval(
    num: list[float], den: list[float], *, paired: bool, resamples: int = 2000
) -> tuple[float, float]:
    """A 95 % bootstrap interval of median(``num``) / median(``den``): the timings resampled
    with replacement (``paired``: by round, both sides of a round together, as interleaved
    requests are; else each side on its own), the 2.5th and 97.5th percentiles of the ratios.
    On this noisy machine a ratio's p50 moves by a few hundredths from run to run; the interval
    says whether a target is met beyond that."""
    rng = random.Random(0)
    ratios = []
    for _ in range(resamples):
        if paired:
            rounds = [rng.randrange(len(num)) for _ in num]
            a, b = [num[i] for i in rounds], [den[i] for i in rounds]
        else:
            a, b = rng.choices(num, k=len(num)), rng.choices(den, k=len(den))
        ratios.append(statistics.median(a) / statistics.median(b))
    ratios.sort()
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


def side_by_side(
    api_pid: int,
    api: httpx.Client,
    influx: httpx.Client,
    name: str,
    start: datetime,
    end: datetime,
    every: str,
    repeats: int,
    tier: str | None = None,
    floor: httpx.Client | None = None,
    variants: dict[str, httpx.Client] | None = None,
    influxql_too: bool = False,
) -> dict[str, Any]:
    """Interleaved timings of the API and of the direct Flux query for the same windows (on
    ``tier``'s bucket when given), of ``floor`` (``bench/forwarder.py``), of other APIs
    (``variants``, by name) and of the same points read directly in InfluxQL
    (``influxql_too``) when given. Only the requests are timed; the API's CPU time is
    read before and after the whole run."""
    query = {"start": iso(start), "end": iso(end), "resolution": every, "agg": "mean"}
    body = {
        "query": flux_text(name, start, end, every, tier),
        "dialect": {"header": True, "annotations": [], "delimiter": ","},
    }
    times: dict[str, list[float]] = {"api": [], "flux": [], "floor": []}
    seen: dict[str, httpx.Response] = {}

    def call_api() -> httpx.Response:
        return api.get(f"/v1/series/{name}/data", params=query)

    def call_flux() -> httpx.Response:
        return influx.post("/api/v2/query", params={"org": ORG}, json=body)

    calls: dict[str, Callable[[], httpx.Response]] = {"api": call_api, "flux": call_flux}
    if floor is not None:
        calls["floor"] = lambda: floor.get(f"/v1/series/{name}/data", params=query)
    if influxql_too:  # the same points read directly in InfluxQL, as the API reads them
        statement = influxql.statement(
            influxql.PlainRead(
                BUCKET,
                name,
                "value",
                start,
                end,
                int((end - start).total_seconds()) // parse_duration(every) + 1,
            )
        )
        calls["influxql"] = lambda: influx.post(
            "/query", params={"db": BUCKET}, data={"q": statement},
            headers={"Accept": "application/csv"},
        )  # fmt: skip
        times["influxql"] = []
    for label, client in (variants or {}).items():
        calls[label] = lambda client=client: client.get(f"/v1/series/{name}/data", params=query)
        times[label] = []

    def timed(which: str) -> None:
        t = time.perf_counter()
        r = calls[which]()
        times[which].append(time.perf_counter() - t)
        seen[which] = r

    for _ in range(3):  # warm-up: caches, connections, the catalog
        for which in calls:
            timed(which)
        times = {k: [] for k in times}
    cpu = cpu_seconds(api_pid)
    order = list(calls)
    for i in range(repeats):
        for which in order[i % len(order) :] + order[: i % len(order)]:  # each goes first in turn
            timed(which)
    api_cpu = cpu_seconds(api_pid) - cpu
    for r in seen.values():
        r.raise_for_status()
    for label in variants or {}:
        if seen[label].content != seen["api"].content:
            raise SystemExit(f"{label} answered otherwise than the API")
    api_p50, flux_p50 = statistics.median(times["api"]), statistics.median(times["flux"])
    result: dict[str, Any] = {
        "points": len(seen["api"].json()["points"]),
        "flux_rows": seen["flux"].text.count("\n") - 1,
        "api_p50_ms": api_p50 * 1000,
        "flux_p50_ms": flux_p50 * 1000,
        "ratio": api_p50 / flux_p50,
        "ratio_interval": ratio_interval(times["api"], times["flux"], paired=True),
        "api_times_ms": [t * 1000 for t in times["api"]],
        "api_cpu_ms": api_cpu / repeats * 1000,
        "source": seen["api"].headers.get("X-Data-Source", ""),
    }
    if floor is not None:
        floor_p50 = statistics.median(times["floor"])
        result["floor_p50_ms"] = floor_p50 * 1000
        result["floor_ratio"] = floor_p50 / flux_p50
    if influxql_too:
        influxql_p50 = statistics.median(times["influxql"])
        result["influxql_p50_ms"] = influxql_p50 * 1000
        result["influxql_ratio"] = api_p50 / influxql_p50
    result["variants"] = {
        label: {
            "p50_ms": statistics.median(times[label]) * 1000,
            "ratio": statistics.median(times[label]) / flux_p50,
        }
        for label in variants or {}
    }
    return result


async def load(base: str, clients: int, seconds: float, name: str, days: int) -> dict[str, float]:
    """`clients` loops issuing data requests (random day, 15 m or 30 s) for `seconds`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            day = DAY0 + timedelta(days=i % days)
            params = {
                "start": iso(day),
                "end": iso(day + timedelta(days=1)),
                "resolution": "15m" if i % 2 else "30s",
            }
            t = time.perf_counter()
            try:
                r = await http.get(f"/v1/series/{name}/data", params=params)
                # A cheap check: parsing every body here would slow the clients, not the API.
                if r.status_code != 200 or b'"points":[{"time"' not in r.content:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t)
            i += clients

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": p(latencies, 0.50) * 1000,
        "p99_ms": p(latencies, 0.99) * 1000,
    }


def compare_answers(
    raw_url: str, tiered_url: str, name: str, start: datetime, end: datetime, every: str
) -> dict[str, object]:
    """The tiered API's answer against the tiers-off API's for the same request: equal labels,
    means within 1e-9 relative (the tier adds in another order)."""
    query = {"start": iso(start), "end": iso(end), "resolution": every, "agg": "mean"}
    raw = httpx.get(f"{raw_url}/v1/series/{name}/data", params=query, timeout=300)
    tiered = httpx.get(f"{tiered_url}/v1/series/{name}/data", params=query, timeout=300)
    raw.raise_for_status()
    tiered.raise_for_status()
    a, b = raw.json()["points"], tiered.json()["points"]
    labels = [p["time"] for p in a] == [p["time"] for p in b]
    pairs = zip(a, b, strict=False)  # unequal lengths fail below
    worst = max(
        (abs(x["value"] - y["value"]) / max(abs(x["value"]), 1e-300) for x, y in pairs),
        default=0.0,
    )
    ok = labels and len(a) == len(b) > 0 and worst <= 1e-9
    return {
        "windows": len(b),
        "labels_equal": labels,
        "max_rel_diff": worst,
        "ok": ok,
        "source": tiered.headers.get("X-Data-Source", ""),
    }


# What ``random_request`` draws from: resolutions the tiers compose (multiples of 1 m, up to two
# days and a week) and two they do not (`30s`, `90s`), every aggregate the tiers answer, and
# zones whose local windows are unions of UTC hours (Zurich), of quarter hours (Kathmandu,
# +05:45) or of half hours (St John's, Lord Howe, whose DST moves the clock by 30 minutes).
FUZZ_RESOLUTIONS = ("30s", "90s", "1m", "2m", "3m", "5m", "7m", "10m", "15m", "20m", "45m", "1h",
                    "90m", "2h", "3h", "4h", "6h", "12h", "1d", "2d", "1w")  # fmt: skip
FUZZ_AGGS = ("mean", "min", "max", "sum", "count", "first", "last", "stddev")
FUZZ_ZONES = ("Europe/Zurich", "Asia/Kathmandu", "America/St_Johns", "Australia/Lord_Howe")
EXACT_AGGS = {"min", "max", "count", "first", "last"}


def random_request(rng: random.Random, first: datetime, end: datetime) -> dict[str, str]:
    """A data request inside [first, end): a span of an hour to 40 days at an unaligned start
    (half of them cut to the minute), a resolution, an aggregate, a zone two times in five, a
    fill one time in five."""
    resolution = rng.choice(FUZZ_RESOLUTIONS)
    # (a 30 s stddev of 1 s data over 2 days is under the scan limit; 1 m: 43,200 windows)
    longest = {"30s": 2, "90s": 2, "1m": 30}.get(resolution, 40) * 86_400
    total = int((end - first).total_seconds())
    span = rng.randint(min(3_600, total), min(longest, total))
    start = first + timedelta(seconds=rng.randint(0, total - span))
    if rng.random() < 0.5:
        start -= timedelta(seconds=start.second)
    query = {"start": iso(start), "end": iso(start + timedelta(seconds=span)),
             "resolution": resolution, "agg": rng.choice(FUZZ_AGGS)}  # fmt: skip
    if rng.random() < 0.4:
        query["tz"] = rng.choice(FUZZ_ZONES)
    if rng.random() < 0.2:
        query["fill"] = rng.choice(("null", "previous", "linear"))
    return query


def compare_many(
    raw_url: str, tiered_url: str, name: str, first: datetime, end: datetime, n: int
) -> dict[str, Any]:
    """``n`` random requests (``random_request``, seeded) asked of the tiers-off and the tiered
    API: the same status, and for a 200 the same windows and `partial` flags, the values equal
    for count, min, max, first and last and within 1e-9 relative for sum, mean and stddev.
    A request the raw points refuse as too costly (422) that a tier answers is counted, not
    compared. Returns how many each data answered (the tiered API's source), the windows
    compared, and the first mismatches."""
    rng = random.Random(10)
    sources: dict[str, int] = {}
    windows, refused, bad = 0, 0, []
    with httpx.Client(timeout=300) as http:
        for _ in range(n):
            query = random_request(rng, first, end)
            raw = http.get(f"{raw_url}/v1/series/{name}/data", params=query)
            tiered = http.get(f"{tiered_url}/v1/series/{name}/data", params=query)
            source = tiered.headers.get("X-Data-Source", str(tiered.status_code))
            sources[source] = sources.get(source, 0) + 1
            if raw.status_code == 422 and tiered.status_code == 200:
                refused += 1  # too costly from the raw points, answered by a tier (issue 10)
                continue
            if tiered.status_code != raw.status_code:
                bad.append({"query": query, "status": [raw.status_code, tiered.status_code]})
                continue
            if raw.status_code != 200:
                continue
            a, b = raw.json()["points"], tiered.json()["points"]
            windows += len(a)
            if not _same_points(a, b, query["agg"]):
                bad.append({"query": query, "windows": [len(a), len(b)]})
    return {"requests": n, "windows": windows, "sources": sources, "mismatches": bad[:5],
            "mismatched": len(bad), "refused_raw_only": refused}  # fmt: skip


def _same_points(a: list[dict[str, Any]], b: list[dict[str, Any]], agg: str) -> bool:
    if [(p["time"], p["partial"]) for p in a] != [(p["time"], p["partial"]) for p in b]:
        return False
    for x, y in zip(a, b, strict=True):
        u, v = x["value"], y["value"]
        if u is None or v is None or agg in EXACT_AGGS:
            if u != v:
                return False
        elif abs(u - v) > 1e-9 * max(abs(u), abs(v)) and abs(u - v) > 1e-12:
            return False
    return True


def serialise(n: int = 100_000, repeats: int = 15) -> dict[str, float]:
    plan = build_plan(
        ["s"],
        DataParams(start="2021-01-01T00:00:00Z", end="2021-01-02T03:46:40Z", resolution="1s"),
        bucket="b",
        max_points_cap=n,
    )
    t0 = int(plan.start.timestamp())
    times = [iso(datetime.fromtimestamp(t0 + i, UTC)) for i in range(n)]
    points = Points(times, [50 + (i % 1000) / 1e4 for i in range(n)])
    meta = formats.SeriesMeta("s", "Hz")
    spent = []
    for _ in range(repeats):
        t = time.perf_counter()
        body = formats.series_json(plan, meta, points)
        spent.append(time.perf_counter() - t)
    return {"points": n, "bytes": len(body), "p50_ms": statistics.median(spent) * 1000}


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return f"{os.cpu_count()} x {cpu}, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days-1s", type=int, default=14, help="days of the 1 s series (365: a year)")
    ap.add_argument("--repeats", type=int, default=40, help="timed requests per comparison")
    ap.add_argument(
        "--fuzz",
        type=int,
        default=200,
        help="random requests (ranges, resolutions, aggregates, zones, fills) asked of the "
        "tiered API and the tiers-off API, whose answers must be equal (0: none)",
    )
    ap.add_argument("--load-seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument(
        "--at-rest",
        action="store_true",
        help="query the data at rest: influxd with short cold-shard timers, and every bucket "
        "compacted (WAL empty, one TSM file per shard) before the timings, as a node holds "
        "data loaded hours before; default: right after the writes, from influxd's write cache",
    )
    args = ap.parse_args()

    binary = il.ensure_binary()
    results: dict[str, object] = {"machine": machine(), "influxd": il.binary_version(binary)}
    print(f"machine: {results['machine']}\ninfluxd: {results['influxd']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        port = il.free_port()
        influx_url = f"http://127.0.0.1:{port}"
        token = secrets.token_urlsafe(24)
        influxd = il.spawn(
            binary,
            work / "influxd",
            port,
            work / "influxd.log",
            capacity.COLD if args.at_rest else (),
        )
        api_proc: subprocess.Popen[bytes] | None = None
        tiered_proc: subprocess.Popen[bytes] | None = None
        floor_proc: subprocess.Popen[bytes] | None = None
        flux_reads_proc: subprocess.Popen[bytes] | None = None
        try:
            il.wait_healthy(influx_url, influxd)
            il.onboard(influx_url, token, ORG, BUCKET)
            n30 = 3 * 2880
            took = write_series(influx_url, token, "f30", "Hz", DAY0, 30, n30)
            print(f"wrote f30: {n30:,} points at 30 s in {took:.1f} s", flush=True)
            n1 = args.days_1s * 86400
            took = write_series(influx_url, token, "f1", "Hz", DAY0, 1, n1)
            print(
                f"wrote f1: {n1:,} points at 1 s ({args.days_1s} days) in {took:.1f} s", flush=True
            )

            end1 = DAY0 + timedelta(days=args.days_1s)
            took = rollup(influx_url, token, "f1", DAY0, end1)
            print(f"rollup tiers of f1 ({args.days_1s} days): {took:.1f} s", flush=True)
            results["at_rest"] = settle(influx_url, token, work) if args.at_rest else None

            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("INFLUX_", "API_"))},
                "INFLUX_URL": influx_url,
                "INFLUX_ORG": ORG,
                "INFLUX_BUCKET": BUCKET,
                "INFLUX_TOKEN": token,
                "API_QUERY_TIMEOUT_SECONDS": "120",
                "PYTHONPATH": str(ROOT / "src"),
            }
            # The API as before tiers (every case but the tiered one reads raw points), and the
            # same API with the tiers on.
            api_proc, api_url = start_api(work, "api", {**env, "API_TIERS": ""})
            tiered_proc, tiered_url = start_api(work, "api-tiered", env)
            # the floor: a bare forwarder of the day's query (bench/forwarder.py)
            day_query = flux_text("f30", DAY0, DAY0 + timedelta(days=1), "30s")
            # the API as it was before plain reads in InfluxQL (ADR 0018)
            flux_reads_proc, flux_reads_url = start_api(
                work, "api-flux-reads", {**env, "API_TIERS": "", "API_INFLUXQL_READS": "false"}
            )
            floor_proc, floor_url = start_api(
                work,
                "forwarder",
                {**env, "INFLUX_ORG": ORG, "FORWARD_QUERY": day_query},
                [sys.executable, str(ROOT / "bench" / "forwarder.py")],
            )

            with (
                httpx.Client(base_url=api_url, timeout=300) as api,
                httpx.Client(base_url=tiered_url, timeout=300) as tiered,
                httpx.Client(base_url=floor_url, timeout=300) as floor,
                httpx.Client(base_url=flux_reads_url, timeout=300) as flux_reads,
                httpx.Client(
                    base_url=influx_url,
                    # Uncompressed, like the API's own queries: the fastest the direct path gets.
                    headers={"Authorization": f"Token {token}", "Accept-Encoding": "identity"},
                    timeout=300,
                ) as influx,
            ):
                cases = {
                    "one day at 30 s": side_by_side(
                        api_proc.pid,
                        api,
                        influx,
                        "f30",
                        DAY0,
                        DAY0 + timedelta(days=1),
                        "30s",
                        args.repeats,
                        floor=floor,
                        variants={"InfluxQL reads off": flux_reads},
                        influxql_too=True,
                    ),
                    f"1 s series, {args.days_1s} d at 15 m": side_by_side(
                        api_proc.pid,
                        api,
                        influx,
                        "f1",
                        DAY0,
                        end1,
                        "15m",
                        # as many as the tiered case below: the speedup's interval needs both
                        # sides' medians (a year from the raw points: about 0.3 s each)
                        args.repeats,
                    ),
                }
                # as many as the small case: a tiered year answers in tens of milliseconds, and
                # ten requests leave its median at the mercy of one busy moment
                cases[f"1 s series, {args.days_1s} d at 15 m, tiers"] = side_by_side(
                    tiered_proc.pid,
                    tiered,
                    influx,
                    "f1",
                    DAY0,
                    end1,
                    "15m",
                    args.repeats,
                    tier="15m",
                )
                if args.days_1s * 1440 <= 100_000:  # the 1 m case must fit the point cap
                    cases[f"1 s series, {args.days_1s} d at 1 m"] = side_by_side(
                        api_proc.pid, api, influx, "f1", DAY0, end1, "1m", max(5, args.repeats // 4)
                    )
            results["latency"] = cases
            # the acceptance: the year at 15 m, mean, from the tier equals the raw answer
            same = compare_answers(api_url, tiered_url, "f1", DAY0, end1, "15m")
            results["tier_equals_raw"] = same
            if args.fuzz:  # and random requests over the whole series, every aggregate
                many = compare_many(api_url, tiered_url, "f1", DAY0, end1, args.fuzz)
                results["tier_equals_raw_random"] = many
                print(
                    f"  {many['requests']} random requests, tiered API against tiers off: "
                    f"{many['mismatched']} differ, {many['windows']:,} windows compared, "
                    f"{many['refused_raw_only']} refused by the tiers-off API only, answered "
                    f"from {many['sources']}",
                    flush=True,
                )
            print(
                "\nGET /v1/series/{name}/data vs direct Flux HTTP, p50 (target ratio <= 1.3);"
                "\nAPI CPU: the API process's CPU time per request"
            )
            print(
                f"  {'case':40} {'points':>8} {'API ms':>9} {'Flux ms':>9} {'ratio':>7}"
                f" {'95 % interval':>13} {'API CPU ms':>11}  source"
            )
            for case, r in cases.items():
                print(
                    f"  {case:40} {r['points']:>8,.0f} {r['api_p50_ms']:>9.1f} "
                    f"{r['flux_p50_ms']:>9.1f} {r['ratio']:>6.2f}x "
                    f"{r['ratio_interval'][0]:>6.2f}-{r['ratio_interval'][1]:<6.2f} "
                    f"{r['api_cpu_ms']:>11.1f}"
                    f"  {r['source']}",
                    flush=True,
                )
            day = cases["one day at 30 s"]
            print(
                f"  the floor, one day at 30 s: a bare Python forwarder of the same query "
                f"(bench/forwarder.py: uvicorn, aiohttp, InfluxDB's CSV returned as is) "
                f"{day['floor_p50_ms']:.1f} ms, {day['floor_ratio']:.2f}x direct Flux; the API "
                f"{day['ratio']:.2f}x",
                flush=True,
            )
            print(
                f"  the same points read directly in InfluxQL (as the API reads them, ADR 0018): "
                f"{day['influxql_p50_ms']:.1f} ms; the API {day['influxql_ratio']:.2f}x that",
                flush=True,
            )
            for label, v in day["variants"].items():
                print(
                    f"  the same API with {label} (API_INFLUXQL_READS=false), one day at 30 s: "
                    f"{v['p50_ms']:.1f} ms, {v['ratio']:.2f}x direct Flux",
                    flush=True,
                )
            raw15 = cases[f"1 s series, {args.days_1s} d at 15 m"]["api_p50_ms"]
            tier15 = cases[f"1 s series, {args.days_1s} d at 15 m, tiers"]["api_p50_ms"]
            results["tier_speedup_15m"] = raw15 / tier15
            low, high = results["tier_speedup_15m_interval"] = ratio_interval(
                cases[f"1 s series, {args.days_1s} d at 15 m"]["api_times_ms"],
                cases[f"1 s series, {args.days_1s} d at 15 m, tiers"]["api_times_ms"],
                paired=False,
            )
            print(
                f"  tiers on vs off, {args.days_1s} d at 15 m: {raw15 / tier15:.1f}x faster "
                f"(95 % interval {low:.1f} to {high:.1f}; target >= 20x for a year); the tiered "
                "row's Flux is on the 15 m tier",
                flush=True,
            )
            print(
                f"  tiered answer vs raw answer, {args.days_1s} d at 15 m, mean: "
                f"{same['windows']:,} windows, labels equal: {same['labels_equal']}, largest "
                f"relative difference {same['max_rel_diff']:.1e} (<= 1e-9: "
                f"{'ok' if same['ok'] else 'FAIL'}), source {same['source']}",
                flush=True,
            )
            concurrent = asyncio.run(load(api_url, args.clients, args.load_seconds, "f30", 3))
            results["load"] = concurrent
            print(
                f"\n{concurrent['clients']} concurrent clients for {concurrent['seconds']:.0f} s: "
                f"{concurrent['requests']:,} requests, {concurrent['errors']} errors, "
                f"{concurrent['req_per_s']:.0f} req/s, p50 {concurrent['p50_ms']:.1f} ms, "
                f"p99 {concurrent['p99_ms']:.1f} ms",
                flush=True,
            )
        finally:
            for proc in (api_proc, tiered_proc, floor_proc, flux_reads_proc):
                if proc is not None:
                    il.stop_process(proc.pid)
                    proc.wait()
            il.stop_process(influxd.pid)
            influxd.wait()

    ser = serialise()
    results["serialise"] = ser
    verdict = "ok" if ser["p50_ms"] <= 50 else "OVER TARGET"
    print(
        f"\nserialising {ser['points']:,} points to JSON ({ser['bytes'] / 1e6:.1f} MB): "
        f"p50 {ser['p50_ms']:.1f} ms (target <= 50 ms: {verdict})"
    )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "api.json").write_text(json.dumps(results, indent=2))
    equal = results.get("tier_equals_raw")
    many = results.get("tier_equals_raw_random")
    differ = isinstance(many, dict) and many["mismatched"] > 0
    return 0 if isinstance(equal, dict) and equal["ok"] and not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
