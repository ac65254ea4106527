#!/usr/bin/env python3
"""Hundreds of series (issue 10, item 6): one wide file loaded by one and by N processes, the
catalog with 200+ series, and one /v1/data request for 20 series over 30 days at 1 h.

    .venv/bin/python bench/wide.py            # 200 series x 1 day at 1 s (17.28 M points), ~10 min
    .venv/bin/python bench/wide.py --rounds 1 # each load once (~7 min)
    .venv/bin/python bench/wide.py --quick    # smoke run: 20 series x 1 hour, 20 x 2 days at 60 s

1. **Load.** A wide file in the operator's dialect (``ingest.generate``: ``Datum Zeit;A:f_ist_001
   [Hz];...``, local time, labels at interval ends, decimal commas), deterministic and cached in
   ``bench/out/``, is loaded (a) by one ``python -m ingest load`` and (b) by ``--processes`` N
   processes at once, each ``--shard k/N``, as the pods of an Indexed Job would, ``--rounds``
   times, each round in the other order (ratio of the medians). Each load gets
   a fresh influxd with the tier buckets (``python -m ingest tiers``), so the loads include the
   rollup tiers' refresh. Timed from the first process start to the last exit; checked after:
   every series holds exactly its rows in the raw bucket and in every tier (a wrong count is
   named in the check column, and the exit status is 1).
2. **Queries**, on the influxd of the last load, after a second wide file is loaded into it:
   ``--month-series`` series over ``--month-days`` days at ``--month-step`` (1 s would be
   52 M points, too many for this machine; the output says which spacing was used). Three API
   processes
   (``python -m app``): tiers on with the default catalog cache, tiers on with the catalog
   reloaded on every request (``API_CATALOG_TTL_SECONDS=0``), and tiers off. Each case is timed
   interleaved, request by request, against the equivalent direct Flux query (``POST
   /api/v2/query``, body read but not parsed), so drift affects both alike: ``GET /v1/series``
   against the catalog's own Flux (first and last point of every series; reloaded: plus the
   three tier coverage queries the API sends with each reload), and ``GET /v1/data`` for the
   month series at 1 h, mean, against one Flux query for all of them (on the 1 h tier: the sums
   and counts the mean is made of; tiers off: ``aggregateWindow(fn: mean)`` on the raw points)
   and, from the tier, also against one query per series sent at once, which is what the API
   sends.

The table goes to stdout and ``bench/out/wide-results.txt``, the numbers to
``bench/out/wide-results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import influxdb_local as il  # noqa: E402
from api import start_api  # noqa: E402
from app.query.flux import CATALOG_START, CATALOG_STOP  # noqa: E402
from ingest.generate import write_frequency_file  # noqa: E402
from procstat import cpu_seconds  # noqa: E402

ORG, BUCKET = "bench", "wide"
TIERS = ("1m", "15m", "1h")
DAY = datetime(2021, 5, 1)  # local (Europe/Zurich) midnight: no DST change in May
MONTH = datetime(2021, 6, 1)
PY = sys.executable


def say(msg: str) -> None:
    print(f"[wide] {msg}", file=sys.stderr, flush=True)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_of_local(t: datetime) -> datetime:
    """A local Europe/Zurich wall time (summer: UTC+2) as UTC."""
    return (t - timedelta(hours=2)).replace(tzinfo=UTC)


# ---- data -------------------------------------------------------------------------------------


def wide_file(names: list[str], start: datetime, end: datetime, step: int, tag: str) -> Path:
    """The generated wide file (``--kind measured``, seed 0), cached by its parameters."""
    path = OUT / f"wide-{tag}-{len(names)}x-{start:%Y%m%d}-{end:%Y%m%dT%H}-{step}s.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    t = time.perf_counter()
    rows = write_frequency_file(tmp, start, end, step, series=names, kind="measured", gzip=False)
    tmp.rename(path)
    say(f"generated {path.name}: {rows:,} rows x {len(names)} series in "
        f"{time.perf_counter() - t:.1f} s")  # fmt: skip
    return path


# ---- influxd ----------------------------------------------------------------------------------


class Influx:
    """A fresh influxd on a free loopback port, onboarded, with the tier buckets."""

    def __init__(self, binary: Path, work: Path, name: str) -> None:
        self.port = il.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(24)
        self.proc = il.spawn(binary, work / name, self.port, work / f"{name}.log")
        il.wait_healthy(self.url, self.proc)
        il.onboard(self.url, self.token, ORG, BUCKET)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("INFLUX_", "API_"))},
            "INFLUX_URL": self.url,
            "INFLUX_ORG": ORG,
            "INFLUX_BUCKET": BUCKET,
            "INFLUX_TOKEN": self.token,
            "INGEST_TIERS": ",".join(TIERS),
            "PYTHONPATH": str(ROOT / "src"),
        }
        subprocess.run([PY, "-m", "ingest", "tiers"], env=self.env, check=True,
                       capture_output=True)  # fmt: skip
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {self.token}", "Accept-Encoding": "identity"},
            timeout=600,
        )

    def query(self, flux: str) -> str:
        body = {"query": flux, "dialect": {"header": True, "annotations": [], "delimiter": ","}}
        r = self.http.post("/api/v2/query", params={"org": ORG}, json=body)
        r.raise_for_status()
        return r.text

    def per_series(self, flux: str) -> dict[str, int]:
        """``_measurement`` -> ``_value`` of a query's rows."""
        lines = [ln for ln in self.query(flux).splitlines() if ln.strip()]
        if not lines:
            return {}
        head = lines[0].split(",")
        m, v = head.index("_measurement"), head.index("_value")
        out: dict[str, int] = {}
        for line in lines[1:]:
            cells = line.split(",")
            if cells[m] != "_measurement":
                out[cells[m]] = out.get(cells[m], 0) + int(float(cells[v]))
        return out

    def stop(self) -> None:
        self.http.close()
        il.stop_process(self.proc.pid)
        self.proc.wait()


def check(influx: Influx, names: list[str], rows: int, start: datetime, end: datetime) -> str:
    """'ok', or what is wrong: every series has ``rows`` points in raw and in every tier."""
    rng = f"range(start: {iso(start - timedelta(days=1))}, stop: {iso(end + timedelta(days=1))})"
    problems: list[str] = []
    for bucket, field, fn in [(BUCKET, "value", "count"),
                              *((f"{BUCKET}_{t}", "count", "sum") for t in TIERS)]:  # fmt: skip
        got = influx.per_series(
            f'from(bucket: "{bucket}") |> {rng} |> filter(fn: (r) => r._field == "{field}")'
            f' |> {fn}() |> group(columns: ["_measurement"]) |> sum()'
        )
        wrong = [n for n in names if got.get(n) != rows]
        extra = sorted(set(got) - set(names))
        if wrong or extra:
            first = wrong[0] if wrong else extra[0]
            problems.append(f"{bucket}: {len(wrong)} series off ({first}: {got.get(first)} of "
                            f"{rows}), {len(extra)} unexpected")  # fmt: skip
    return "; ".join(problems) or f"ok: {len(names)} x {rows:,} in raw and {len(TIERS)} tiers"


# ---- loads ------------------------------------------------------------------------------------


def run_loads(influx: Influx, path: Path, processes: int, work: Path, tag: str) -> dict[str, Any]:
    """``processes`` ingest loads of ``path`` at once (``--shard k/N`` when N > 1)."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    influxd0 = cpu_seconds(influx.proc.pid)
    began = time.monotonic()
    procs: list[subprocess.Popen[str]] = []
    marks: list[dict[str, float]] = []
    logs: list[list[str]] = []
    threads: list[threading.Thread] = []
    for k in range(processes):
        argv = [PY, "-m", "ingest", "load", str(path), "--label", "end", "--step", "1s",
                "--report", str(work / f"{tag}-{k}.json")]  # fmt: skip
        if processes > 1:
            argv += ["--shard", f"{k}/{processes}"]
        proc = subprocess.Popen(argv, env=influx.env, stderr=subprocess.PIPE, text=True)
        mark: dict[str, float] = {}
        lines: list[str] = []

        def read(p: subprocess.Popen[str] = proc, m: dict[str, float] = mark,
                 out: list[str] = lines) -> None:  # fmt: skip
            assert p.stderr is not None
            for line in p.stderr:
                out.append(line.rstrip())
                if "refreshing tiers" in line:
                    m["tiers"] = time.monotonic()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        procs.append(proc)
        marks.append(mark)
        logs.append(lines)
        threads.append(thread)
    codes = [p.wait() for p in procs]
    elapsed = time.monotonic() - began
    for thread in threads:
        thread.join()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        for k, lines in enumerate(logs):
            say(f"process {k} exited {codes[k]}: " + " | ".join(lines[-5:]))
        raise SystemExit(f"the load of {path.name} failed")
    reports = [json.loads((work / f"{tag}-{k}.json").read_text()) for k in range(processes)]
    tiers_from = min((m["tiers"] for m in marks if "tiers" in m), default=time.monotonic())
    for lines in logs:
        for line in lines:
            if line.startswith("ingest: ") and " rows read" in line:
                say(line)
    return {
        "processes": processes,
        "seconds": elapsed,
        "points": sum(r["points_written"] for r in reports),
        "rows": reports[0]["rows_read"],
        "series": sum(len(r["series"]) for r in reports),
        # from the first process's "refreshing tiers" line to the last exit
        "tier_seconds": max(0.0, began + elapsed - tiers_from),
        "client_cpu": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "influxd_cpu": cpu_seconds(influx.proc.pid) - influxd0,
        "tier_windows": sum(r["tier_windows_written"] for r in reports),
    }


# ---- queries ----------------------------------------------------------------------------------


def interleaved(
    api: Callable[[], httpx.Response], direct: Callable[[], str], repeats: int, api_pid: int
) -> dict[str, Any]:
    """Median of ``repeats`` API calls and direct queries, alternating which goes first."""
    for _ in range(2):  # warm-up: connections, caches
        api().raise_for_status()
        direct()
    api_t: list[float] = []
    flux_t: list[float] = []
    cpu = 0.0
    last: httpx.Response | None = None
    for i in range(repeats):
        for which in (0, 1) if i % 2 else (1, 0):
            t = time.perf_counter()
            if which == 0:
                c = cpu_seconds(api_pid)
                last = api()
                cpu += cpu_seconds(api_pid) - c
                last.raise_for_status()
                api_t.append(time.perf_counter() - t)
            else:
                direct()
                flux_t.append(time.perf_counter() - t)
    assert last is not None
    a, f = statistics.median(api_t), statistics.median(flux_t)
    return {
        "api_ms": a * 1000,
        "flux_ms": f * 1000,
        "ratio": a / f,
        "api_cpu_ms": cpu / repeats * 1000,
        "bytes": len(last.content),
        "source": last.headers.get("X-Data-Source", ""),
        "repeats": repeats,
        "body": last.json(),
    }


def catalog_flux(bucket: str, field: str) -> str:
    """The API's catalog query (app.query.flux.catalog_query) with its parameters as literals."""
    return f"""data = from(bucket: "{bucket}")
    |> range(start: {iso(CATALOG_START)}, stop: {iso(CATALOG_STOP)})
    |> filter(fn: (r) => r._field == "{field}")

data |> first() |> drop(columns: ["_start", "_stop", "_value"]) |> yield(name: "first")
data |> last() |> drop(columns: ["_start", "_stop", "_value"]) |> yield(name: "last")"""


def data_flux(names: list[str], start: datetime, end: datetime, tier: str | None) -> str:
    """One query for every series' 1 h windows: the tier's sums and counts, or raw means."""
    bucket, fields, fn = (
        (BUCKET, ["value"], "mean") if tier is None else (f"{BUCKET}_{tier}", ["sum", "count"],
                                                          "sum")
    )  # fmt: skip
    which = " or ".join(f'r._measurement == "{n}"' for n in names)
    field = " or ".join(f'r._field == "{f}"' for f in fields)
    return (
        f'from(bucket: "{bucket}")\n    |> range(start: {iso(start)}, stop: {iso(end)})\n'
        f"    |> filter(fn: (r) => ({which}) and ({field}))\n"
        f'    |> aggregateWindow(every: 1h, offset: 0s, fn: {fn}, timeSrc: "_start", '
        "createEmpty: false)\n"
        '    |> keep(columns: ["_measurement", "_field", "_time", "_value"])'
    )


def queries(
    influx: Influx, work: Path, month: list[str], start: datetime, end: datetime, args: Any
) -> dict[str, dict[str, Any]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cached, cached_url = start_api(work, "api", influx.env)
        procs.append(cached)
        reload_, reload_url = start_api(work, "api-reload",
                                        {**influx.env, "API_CATALOG_TTL_SECONDS": "0"})  # fmt: skip
        procs.append(reload_)
        raw, raw_url = start_api(work, "api-raw", {**influx.env, "API_TIERS": ""})
        procs.append(raw)
        data = {"series": month, "start": iso(start), "end": iso(end), "resolution": "1h",
                "agg": "mean"}  # fmt: skip
        cases: dict[str, dict[str, Any]] = {}
        with (
            httpx.Client(base_url=cached_url, timeout=600) as api,
            httpx.Client(base_url=reload_url, timeout=600) as api_reload,
            httpx.Client(base_url=raw_url, timeout=600) as api_raw,
        ):
            # the tier coverage is read with the catalog: wait until the 1 h tier answers
            deadline = time.monotonic() + 120
            while api.get("/v1/data", params=data).headers.get("X-Data-Source") != "tier:1h":
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not answer from the 1 h tier within 120 s")
                time.sleep(2)
            catalog = catalog_flux(BUCKET, "value")
            coverage = [catalog_flux(f"{BUCKET}_{t}", "count") for t in TIERS]
            cases["catalog, cached"] = interleaved(
                lambda: api.get("/v1/series"), lambda: influx.query(catalog), args.repeats,
                cached.pid)  # fmt: skip
            cases["catalog, reloaded"] = interleaved(
                lambda: api_reload.get("/v1/series"),
                lambda: "".join(influx.query(q) for q in [catalog, *coverage]),
                args.repeats,
                reload_.pid,
            )
            cases["data, tiers"] = interleaved(
                lambda: api.get("/v1/data", params=data),
                lambda: influx.query(data_flux(month, start, end, "1h")),
                args.repeats,
                cached.pid,
            )
            with ThreadPoolExecutor(len(month)) as pool:
                per_series = [data_flux([n], start, end, "1h") for n in month]
                cases["data, tiers, fan-out"] = interleaved(
                    lambda: api.get("/v1/data", params=data),
                    lambda: "".join(pool.map(influx.query, per_series)),
                    args.repeats,
                    cached.pid,
                )
            cases["data, raw"] = interleaved(
                lambda: api_raw.get("/v1/data", params=data),
                lambda: influx.query(data_flux(month, start, end, None)),
                max(3, args.repeats // 4),
                raw.pid,
            )
    finally:
        for proc in procs:
            il.stop_process(proc.pid)
            proc.wait()
    return cases


# ---- report -----------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (f"machine: {cpu}, {len(os.sched_getaffinity(0))} cores usable, Python "
            f"{platform.python_version()}; load average {load} at the start")  # fmt: skip


def revision() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()[:72] + (" (working tree modified)" if dirty.stdout.strip() else "")


def table(loads: list[dict[str, Any]], checks: list[str], cases: dict[str, dict[str, Any]],
          head: list[str], month_note: str) -> list[str]:  # fmt: skip
    out = [*head, ""]
    a = loads[0]
    out.append(
        f"load: {a['series']} series x {a['rows']:,} rows = {a['points']:,} points, one wide "
        f"file, tiers {','.join(TIERS)} refreshed by the load; a fresh influxd each"
    )
    out.append(f"  {'method':44} {'seconds':>8} {'points/s':>10} {'tiers s':>8} "
               f"{'client CPU s':>13} {'influxd CPU s':>14}  check")  # fmt: skip
    rounds = max(r["round"] for r in loads)
    for r, c in zip(loads, checks, strict=True):
        name = ("(a) one process" if r["processes"] == 1
                else f"(b) {r['processes']} processes, --shard k/{r['processes']}")  # fmt: skip
        if rounds > 1:
            name += f", round {r['round']}"
        out.append(f"  {name:44} {r['seconds']:>8.1f} {r['points'] / r['seconds']:>10,.0f} "
                   f"{r['tier_seconds']:>8.1f} {r['client_cpu']:>13.1f} {r['influxd_cpu']:>14.1f}"
                   f"  {c}")  # fmt: skip
    ratio = statistics.median(r["points"] / r["seconds"] for r in loads if r["processes"] > 1) / (
        statistics.median(r["points"] / r["seconds"] for r in loads if r["processes"] == 1)
    )
    median = f" (medians of {rounds} rounds, each round's order reversed)" if rounds > 1 else ""
    out.append(f"  ratio (b)/(a), points/s: {ratio:.2f}x{median}")
    out.append("  seconds: first process start to last exit (parse, write, tier refresh); tiers s:"
               " from the first 'refreshing tiers' line to the last exit")  # fmt: skip
    out.append("")
    out.append(month_note)
    out.append(f"  {'case':52} {'API ms':>8} {'Flux ms':>8} {'ratio':>6} {'API CPU ms':>10} "
               f"{'bytes':>9}  source")  # fmt: skip
    series = len(cases["catalog, cached"]["body"]["series"])
    month = cases["data, tiers"]["body"]
    n_month = len(month["series"])
    labels = {
        "catalog, cached": f"GET /v1/series ({series} series), cached",
        "catalog, reloaded": f"GET /v1/series ({series} series), reloaded each time",
        "data, tiers": f"GET /v1/data {n_month} series x {len(month['points'])} h, tiers",
        "data, tiers, fan-out": f"  the same, against {n_month} per-series queries at once",
        "data, raw": f"GET /v1/data {n_month} series x {len(month['points'])} h, tiers off",
    }
    for key, r in cases.items():
        out.append(f"  {labels[key]:52} {r['api_ms']:>8.1f} {r['flux_ms']:>8.1f} "
                   f"{r['ratio']:>5.2f}x {r['api_cpu_ms']:>10.1f} {r['bytes']:>9,}  "
                   f"{r['source'] or '-'}")  # fmt: skip
    speed = cases["data, raw"]["api_ms"] / cases["data, tiers"]["api_ms"]
    out.append(f"  /v1/data, API p50 tiers off over tiers on: {speed:.1f}x")
    out.append("  p50 of interleaved pairs (API, direct Flux); direct Flux: catalog = the API's "
               "catalog query (reloaded: plus its 3 tier coverage queries, in sequence); data = "
               "one query for all series (tier: the 1 h sums and counts; off: aggregateWindow "
               "mean on raw), or one per series sent at once (fan-out, as the API sends them); "
               "API CPU: the API process's CPU time per request, in 10 ms clock ticks")  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 series, one hour; "
                    "20 x 2 days at 60 s")  # fmt: skip
    ap.add_argument("--series", type=int, default=200, help="series of the wide file (200)")
    ap.add_argument("--hours", type=int, default=24, help="hours at 1 s (24: 86,400 rows)")
    ap.add_argument("--processes", type=int, default=2, help="processes of load (b) (2)")
    ap.add_argument("--month-series", type=int, default=20, help="series of /v1/data (20)")
    ap.add_argument("--month-days", type=int, default=30, help="days of /v1/data (30)")
    ap.add_argument("--month-step", type=int, default=10, help="their raw spacing, s (10)")
    ap.add_argument("--repeats", type=int, default=20, help="timed pairs per query case (20)")
    ap.add_argument("--rounds", type=int, default=2, help="load rounds, each in the other order "
                    "than the one before (2; each round takes ~3.5 min)")  # fmt: skip
    args = ap.parse_args()
    if args.processes < 2 or args.rounds < 1:
        ap.error("--processes must be 2 or more, --rounds 1 or more")
    if args.quick:
        args.series, args.hours, args.month_days, args.month_step = 20, 1, 2, 60
        args.repeats, args.rounds = 6, 1
    began = time.monotonic()
    head = [machine(), f"influxd: {il.binary_version(il.ensure_binary())}",
            f"gridts: {revision()}"]  # fmt: skip
    print("\n".join(head), flush=True)

    names = [f"f_ist_{i:03d}" for i in range(1, args.series + 1)]
    day_end = DAY + timedelta(hours=args.hours)
    path = wide_file(names, DAY, day_end, 1, "day")
    month = [f"f_month_{i:02d}" for i in range(1, args.month_series + 1)]
    month_end = MONTH + timedelta(days=args.month_days)
    month_path = wide_file(month, MONTH, month_end, args.month_step, "month")
    rows = args.hours * 3600
    span = (utc_of_local(DAY), utc_of_local(day_end))

    binary = il.ensure_binary()
    loads: list[dict[str, Any]] = []
    checks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-wide-", dir=OUT) as tmp:
        work = Path(tmp)
        influx: Influx | None = None
        try:
            for n, round_ in [
                (n, r + 1)
                for r in range(args.rounds)
                for n in ((1, args.processes) if r % 2 == 0 else (args.processes, 1))
            ]:
                if influx is not None:
                    influx.stop()
                influx = Influx(binary, work, f"influxd-{n}-{round_}")
                say(f"loading {path.name} with {n} process(es), round {round_}")
                loads.append(run_loads(influx, path, n, work, f"load-{n}-{round_}"))
                loads[-1]["round"] = round_
                checks.append(check(influx, names, rows, *span))
                say(f"{n} process(es): {loads[-1]['seconds']:.1f} s; {checks[-1]}")
            assert influx is not None
            say(f"loading {month_path.name} (the /v1/data series)")
            m_load = run_loads(influx, month_path, 1, work, "month")
            m_rows = args.month_days * 86400 // args.month_step
            m_check = check(influx, month, m_rows, utc_of_local(MONTH), utc_of_local(month_end))
            say(
                f"month series: {m_load['points']:,} points in {m_load['seconds']:.1f} s; {m_check}"
            )
            say("measuring the API against direct Flux")
            cases = queries(influx, work, month, utc_of_local(MONTH), utc_of_local(month_end),
                            args)  # fmt: skip
        finally:
            if influx is not None:
                influx.stop()
    note = (f"queries: {len(names) + len(month)} series stored; /v1/data asks for "
            f"{len(month)} series x {args.month_days} days at 1 h, mean, of series stored at "
            f"{args.month_step} s (not 1 s: {len(month)} x {args.month_days} days at 1 s would be "
            f"{len(month) * args.month_days * 86400 / 1e6:.1f} M points, too many to write here; "
            f"stored: {m_load['points']:,} points, {m_check})")  # fmt: skip
    lines = table(loads, checks, cases, head, note)
    lines.append(f"\n(bench took {(time.monotonic() - began) / 60:.1f} min)")
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "wide-results.txt").write_text(text + "\n")
    for r in cases.values():
        r.pop("body", None)
    (OUT / "wide-results.json").write_text(json.dumps(
        {"loads": loads, "checks": checks, "month_load": m_load, "month_check": m_check,
         "queries": cases, "args": vars(args)}, indent=2))  # fmt: skip
    ok = all(c.startswith("ok") for c in [*checks, m_check])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
