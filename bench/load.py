"""Load test: several API replicas (processes) behind the gateways (HAProxy with the chart's own
configuration: one queue per gateway for all replicas, ADR 0020), called by 64 concurrent
clients that mix series, ranges, resolutions and aggregates for 60 s while an ingest writes.
Loopback only.

    .venv/bin/python bench/load.py [--replicas 3] [--clients 64] [--seconds 60] [--json PATH]
                                   [--think SECONDS] [--no-ingest] [--tiered-only]
                                   [--gateways N]

With ``--gateways 0`` the clients call the replicas round-robin themselves (each replica's own
queue: how the platform ran before the gateway).

Prints requests/s, p50/p99 latency and the status classes; exits 1 on any 5xx or transport error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gateway_local  # noqa: E402
import influxdb_local as il  # noqa: E402
from capacity import COLD_TIMERS  # noqa: E402
from procstat import cpu_seconds  # noqa: E402  (bench/procstat.py, beside this script)

PY = sys.executable
RESOLUTIONS = ["raw", "30s", "1m", "5m", "15m", "1h", "6h", "1d", "auto"]
AGGS = ["mean", "min", "max", "sum", "count", "first", "last", "median", "stddev"]


def run(cmd: list[str], env: dict[str, str]) -> None:
    subprocess.run(cmd, env={**os.environ, **env}, check=True, cwd=ROOT)


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"API at {url} not ready")


async def client(
    urls: list[str],
    series: list[dict[str, str]],
    stop_at: float,
    latencies: list[float],
    statuses: Counter[str],
    seed: int,
    by_kind: dict[str, list[float]],
    think: float = 0.0,
    began: list[float] | None = None,
) -> None:
    rng = random.Random(seed)
    # longer than the API's own query timeout (30 s) plus its slot wait: its answer, a 504
    # included, is what counts, not a client giving up first. aiohttp, not httpx: a client
    # costs the machine about a quarter of the CPU per request (0.25 against 1.0 to 1.3 ms
    # here), CPU the clients, which run elsewhere in production, take from the platform.
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        i = seed
        while time.monotonic() < stop_at:
            s = rng.choice(series)
            first = int(time.mktime(time.strptime(s["first"], "%Y-%m-%dT%H:%M:%SZ")))
            last = int(time.mktime(time.strptime(s["last"], "%Y-%m-%dT%H:%M:%SZ")))
            span = rng.choice([3600, 86400, 7 * 86400, 30 * 86400])
            start = rng.randint(first, max(first, last - span))
            params = {
                "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + span)),
                "resolution": rng.choice(RESOLUTIONS),
                "agg": rng.choice(AGGS),
            }
            if params["resolution"] == "1d" and rng.random() < 0.5:
                params["tz"] = "Europe/Zurich"
            url = urls[i % len(urls)]
            i += 1
            t0 = time.perf_counter()
            try:
                async with http.get(f"{url}/v1/series/{s['name']}/data", params=params) as resp:
                    body = await resp.read()  # the whole answer is the request's latency
                    status, source = resp.status, resp.headers.get("X-Data-Source")
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[f"transport error: {type(exc).__name__}"] += 1
                continue
            statuses[f"{status // 100}xx"] += 1
            if 400 <= status < 500:  # 422 too costly, 429 busy: told apart
                statuses[str(status)] += 1
            if status >= 500:
                statuses[f"5xx body: {body[:120].decode(errors='replace')}"] += 1
            latencies.append(time.perf_counter() - t0)
            if began is not None:  # when it was asked (monotonic): the latency over the run
                began.append(time.monotonic() - latencies[-1])
            kind = f"{params['resolution']}/{params['agg']}/{span // 86400}d"
            by_kind.setdefault(kind, []).append(latencies[-1])
            # which data answered (a 4xx has no source): raw, or a tier
            source = source or f"{status}"
            by_kind.setdefault(f"source:{source.split(':')[0]}", []).append(latencies[-1])
            if think:  # a person or a dashboard between requests: exponential, mean ``think``
                await asyncio.sleep(min(rng.expovariate(1 / think), stop_at - time.monotonic()))


async def load(
    urls: list[str], series: list[dict[str, str]], clients: int, seconds: float, think: float = 0.0
) -> dict[str, Any]:
    latencies: list[float] = []
    began: list[float] = []
    statuses: Counter[str] = Counter()
    by_kind: dict[str, list[float]] = {}
    stop_at = time.monotonic() + seconds
    t0 = time.monotonic()
    await asyncio.gather(
        *(
            client(urls, series, stop_at, latencies, statuses, seed, by_kind, think, began)
            for seed in range(clients)
        )
    )
    by_source = {k.split(":", 1)[1]: v for k, v in by_kind.items() if k.startswith("source:")}
    by_kind = {k: v for k, v in by_kind.items() if not k.startswith("source:")}
    slowest = sorted(by_kind.items(), key=lambda kv: -max(kv[1]))[:8]
    elapsed = time.monotonic() - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 1),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "statuses": dict(statuses),
        "slowest": {k: round(max(v) * 1000) for k, v in slowest},
        # the requests by when they were asked, in slices of SLICE_SECONDS from the start
        "over_time": over_time([b - t0 for b in began], latencies),
        # each request's start (from the start) and latency, for ``phase``: not kept
        "began": [b - t0 for b in began],
        "latencies": latencies,
        # latency by what answered: `raw`, `tier`, or the status of a refusal
        "by_source": {
            k: {
                "requests": len(v),
                "p50_ms": round(statistics.median(v) * 1000, 1),
                "p99_ms": round(sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] * 1000, 1),
            }
            for k, v in sorted(by_source.items())
        },
    }


SLICE_SECONDS = 10

# The chart's gateways (gateway.replicas).
GATEWAYS = int(
    yaml.safe_load((ROOT / "charts/gridts/values.yaml").read_text())["gateway"]["replicas"]
)


def summary(latencies: list[float]) -> dict[str, float]:
    """How many requests, and their p50 and p99 in ms."""
    ordered = sorted(latencies)
    if not ordered:
        return {"requests": 0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "requests": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
    }


def over_time(began: list[float], latencies: list[float]) -> list[dict[str, float]]:
    """The requests in slices of ``SLICE_SECONDS`` by when they were asked (seconds from the
    start): per slice its start, the requests per second asked in it, their p50 and p99."""
    slices: dict[int, list[float]] = {}
    for at, latency in zip(began, latencies, strict=True):
        slices.setdefault(int(at // SLICE_SECONDS), []).append(latency)
    return [
        {"from_s": k * SLICE_SECONDS, **summary(v), "per_second": len(v) / SLICE_SECONDS}
        for k, v in sorted(slices.items())
    ]


def little_bound(
    clients: int, think: float, sweep: list[dict[str, Any]]
) -> tuple[dict[str, Any], float] | None:
    """The closed-loop sweep's best step (the most the machine serves of this mix) and the
    least mean latency Little's law leaves ``clients`` that think ``think`` seconds between
    requests: N = X (R + Z), so R >= N / X - Z. None without a sweep."""
    if not sweep:
        return None
    peak = max(sweep, key=lambda r: r["requests_per_second"])
    return peak, clients / peak["requests_per_second"] - think


def cpu_shares(used: dict[str, float], seconds: float) -> dict[str, Any]:
    """What each part used of the machine's cores over ``seconds``, in CPU seconds and as a
    share of all its cores' time (the rest: idle, or other work on the machine)."""
    cores = os.cpu_count() or 1
    return {
        "cores": cores,
        "seconds": round(seconds, 1),
        "cpu_seconds": {k: round(v, 1) for k, v in used.items()},
        "share": {k: round(v / (cores * seconds), 3) for k, v in used.items()},
    }


def turns(args: argparse.Namespace) -> int:
    """The replicas' API_CONCURRENT_REQUESTS: the flag's, else the environment's they inherit,
    else the API's default."""
    if args.concurrent_requests is not None:
        return int(args.concurrent_requests)
    inherited = os.environ.get("API_CONCURRENT_REQUESTS")
    if inherited is not None:
        return int(inherited)
    return int(Settings.model_fields["api_concurrent_requests"].default)


def phase(
    name: str,
    args: argparse.Namespace,
    env: dict[str, str],
    during: Path,
    tiers: str,
    influxd_pid: int,
) -> dict:  # type: ignore[type-arg]
    """``args.replicas`` API processes with ``API_TIERS=tiers`` ("" = raw points only), the mix
    for ``args.seconds`` while an ingest (re)writes ``during``, then the concurrency sweep.
    Long: the CPU time each part used during the mix is recorded (``cpu``): the replicas,
    InfluxDB, the gateways, the ingest and this process's clients share the machine's cores."""
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    gateways: list[subprocess.Popen[bytes]] = []
    gateway_dir = tempfile.TemporaryDirectory(prefix="gridts-gateway-")  # their configurations
    try:
        for _ in range(args.replicas):
            api_port = il.free_port()
            procs.append(subprocess.Popen(
                [PY, "-m", "app"],
                env={**os.environ, **env, "API_HOST": "127.0.0.1", "API_PORT": str(api_port),
                     "LOG_LEVEL": "warning", "API_TIERS": tiers},
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            urls.append(f"http://127.0.0.1:{api_port}")
        for u in urls:
            wait_ready(u)
        targets = urls  # what the clients call: the replicas round-robin, or the gateways
        if args.gateways:
            backends = [int(u.rsplit(":", 1)[1]) for u in urls]
            # as the chart renders it for this many gateways and this many turns per replica
            values = {"gateway.replicas": args.gateways,
                      "api.settings.concurrentRequests": turns(args)}  # fmt: skip
            targets = []
            for k in range(args.gateways):
                front = il.free_port()
                gateways.append(gateway_local.spawn(
                    Path(gateway_dir.name) / str(k), front, backends, values=values,
                ))  # fmt: skip
                targets.append(f"http://127.0.0.1:{front}")
            for t in targets:
                wait_ready(t)
        series = httpx.get(f"{targets[0]}/v1/series", timeout=30).json()["series"]
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        children_before = reaped.ru_utime + reaped.ru_stime
        command = [PY, "-m", "ingest", "load", str(during), "--label", "end", "--quiet"]
        ingest = subprocess.Popen(
            ["true"] if args.no_ingest else command, env={**os.environ, **env}, cwd=ROOT
        )
        ended: list[float] = []  # when the ingest ended (monotonic)

        def watch() -> None:
            ingest.wait()
            ended.append(time.monotonic())

        threading.Thread(target=watch, daemon=True).start()
        print(f"{name}: {args.clients} clients, {args.replicas} replicas "
              f"{f'behind {args.gateways} gateways' if args.gateways else 'called round-robin'}, "
              f"{args.seconds:.0f} s, {len(series)} series, "
              f"{'no ingest' if args.no_ingest else 'ingest running'}", flush=True)  # fmt: skip
        before = {
            "api": sum(cpu_seconds(p.pid) for p in procs),
            "influxdb": cpu_seconds(influxd_pid),
            "gateways": sum(cpu_seconds(g.pid) for g in gateways),
        }
        clients_before, began = time.process_time(), time.monotonic()
        result = asyncio.run(load(targets, series, args.clients, args.seconds, args.think))
        used = {
            "api": sum(cpu_seconds(p.pid) for p in procs) - before["api"],
            "influxdb": cpu_seconds(influxd_pid) - before["influxdb"],
            "gateways": sum(cpu_seconds(g.pid) for g in gateways) - before["gateways"],
            "clients": time.process_time() - clients_before,
        }
        seconds = time.monotonic() - began
        result["ingest_exit"] = ingest.wait(timeout=600)
        result["ingest"] = not args.no_ingest
        started, latencies = result.pop("began"), result.pop("latencies")
        if ended and ended[0] - began < seconds:  # the requests asked once the ingest was done
            result["ingest_seconds"] = round(ended[0] - began, 1)
            after = [x for at, x in zip(started, latencies, strict=True) if at >= ended[0] - began]
            result["after_ingest"] = summary(after)
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the ingest's, all in the mix
        used["ingest"] = reaped.ru_utime + reaped.ru_stime - children_before
        result["cpu"] = cpu_shares(used, seconds)
        result.update(replicas=args.replicas, clients=args.clients, tiers=tiers, think=args.think,
                      concurrent_requests=turns(args), gateways=args.gateways)  # fmt: skip
        sources = Counter[str]()
        for u in urls:  # which data answered, from each replica's own counter
            for line in httpx.get(f"{u}/metrics", timeout=10).text.splitlines():
                if line.startswith("gridts_api_data_source_total{"):
                    label = line.split('source="', 1)[1].split('"', 1)[0]
                    sources[label] += int(float(line.rsplit(" ", 1)[1]))
        result["sources"] = dict(sources)
        print(f"  {result['requests_per_second']} req/s, p50 {result['p50_ms']} ms, p99 "
              f"{result['p99_ms']} ms, statuses {result['statuses']}", flush=True)  # fmt: skip
        shares = ", ".join(f"{k} {v:.0%}" for k, v in result["cpu"]["share"].items())
        print(f"  share of the {result['cpu']['cores']} cores' time: {shares}", flush=True)
        for piece in result["over_time"]:
            print(f"    from {piece['from_s']:3.0f} s: {piece['per_second']:6.1f} req/s, "
                  f"p50 {piece['p50_ms']:7.1f} ms, p99 {piece['p99_ms']:7.1f} ms")  # fmt: skip
        if "after_ingest" in result:
            done = result["after_ingest"]
            print(f"  the ingest ended after {result['ingest_seconds']} s; the requests asked "
                  f"after it: {done['requests']}, p50 {done['p50_ms']} ms, p99 {done['p99_ms']} "
                  "ms", flush=True)  # fmt: skip
        sweep = []
        for n in [int(x) for x in args.sweep.split(",") if x]:
            step = asyncio.run(load(targets, series, n, 10))
            for raw in ("began", "latencies", "over_time"):
                step.pop(raw)
            step["clients"] = n
            rps, p50, p99 = step["requests_per_second"], step["p50_ms"], step["p99_ms"]
            print(f"  {n:3d} clients: {rps:7.1f} req/s, p50 {p50:7.1f} ms, p99 {p99:7.1f} ms")
            sweep.append(step)
        result["sweep"] = sweep
        return result
    finally:
        for p in [*procs, *gateways]:
            p.terminate()
        for p in [*procs, *gateways]:
            p.wait(timeout=30)
        gateway_dir.cleanup()


def settled(engine: Path, timeout: float, quiet: int = 3) -> float:
    """Seconds until influxd's TSM files stayed the same and none was being written (no
    `.tmp`) ``quiet`` times 5 s apart, at least 15 s after it started (its full compactions
    begin 10 s after a shard's last write, ``COLD_TIMERS``). Not "the WAL is empty": a shard
    whose only writes since were deletions (the ingest's pending markers, ADR 0014) keeps its
    WAL segment until its next write."""
    began = time.monotonic()
    seen: set[tuple[str, int]] = set()
    still = 0
    while time.monotonic() - began < timeout:
        time.sleep(5)
        files = set()
        for p in engine.rglob("*.tsm*"):
            with contextlib.suppress(FileNotFoundError):  # compacted away meanwhile
                files.add((str(p), p.stat().st_size))
        busy = any(name.endswith(".tmp") for name, _ in files)
        still = still + 1 if files == seen and not busy else 0
        seen = files
        if still >= quiet and time.monotonic() - began >= 15:
            return time.monotonic() - began
    raise SystemExit(f"influxd still compacting after {timeout:.0f} s")


def at_rest(
    influxd: subprocess.Popen[bytes], binary: Path, work: Path, port: int
) -> subprocess.Popen[bytes]:
    """influxd restarted on the same data with short cold-shard timers until its compactions
    are done (``settled``), then started again as the chart runs it: a phase's queries meet the
    data at rest, as a long-running node holds it, and only its own ingest writes meanwhile
    (not the compactions of what was loaded just before it, whose timing moved a run's
    throughput by a third)."""
    url = f"http://127.0.0.1:{port}"
    il.stop_process(influxd.pid)
    influxd.wait()
    # cache snapshots and full compactions soon after a shard's last write: only while the data
    # written before a phase settles, never during one
    cold = il.spawn(binary, work / "influxd", port, work / "influxd.log", COLD_TIMERS)
    try:
        il.wait_healthy(url, cold)
        waited = settled(work / "influxd" / "engine", 600)
        print(f"data at rest after {waited:.0f} s", flush=True)
    finally:
        il.stop_process(cold.pid)
        cold.wait()
    again = il.spawn(binary, work / "influxd", port, work / "influxd.log")
    il.wait_healthy(url, again)
    return again


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--json", type=Path, default=ROOT / "bench/out/load.json")
    ap.add_argument(
        "--sweep",
        default="1,4,16,64",
        help="after each main run, 10 s at each of these client counts (latency vs concurrency)",
    )
    ap.add_argument("--tiers", default="1m,15m,1h", help="the rollup tiers of the second phase")
    ap.add_argument(
        "--no-ingest",
        action="store_true",
        help="the mix alone, no ingest writing meanwhile (to tell the ingest's share of the "
        "latency; the issue's load test has it)",
    )
    ap.add_argument(
        "--tiered-only",
        action="store_true",
        help="only the phase with the tiers (the platform as deployed), not the raw comparison",
    )
    ap.add_argument(
        "--concurrent-requests",
        type=int,
        default=None,
        help="API_CONCURRENT_REQUESTS of every replica (default: the API's own, 4; 0: no limit, "
        "every request at work at once, as before it existed)",
    )
    ap.add_argument(
        "--gateways",
        type=int,
        default=GATEWAYS,
        help="gateways (HAProxy with the chart's configuration) the clients call round-robin, "
        f"each holding one queue for every replica (default {GATEWAYS}, the chart's "
        "gateway.replicas); 0: the clients call the replicas round-robin, each replica its own "
        "queue",
    )
    ap.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds each client waits between its requests (exponential; default 0: a "
        "closed loop, each client asks again at once, the issue's load test)",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gridts-load-"))
    binary = il.ensure_binary()
    port = il.free_port()
    url = f"http://127.0.0.1:{port}"
    influxd = il.spawn(binary, work / "influxd", port, work / "influxd.log")
    try:
        il.wait_healthy(url, influxd)
        token = "load-test-token"
        il.onboard(url, token)
        env = {"INFLUX_URL": url, "INFLUX_ORG": il.ORG, "INFLUX_BUCKET": il.BUCKET,
               "INFLUX_TOKEN": token, "INGEST_TIERS": args.tiers}  # fmt: skip
        if args.concurrent_requests is not None:
            env["API_CONCURRENT_REQUESTS"] = str(args.concurrent_requests)
        # The tier buckets first: every load below fills them, as in the chart.
        run([PY, "-m", "ingest", "tiers", "--tiers", args.tiers], env)
        print("preparing data: 30 days at 1 s (2.6 M rows) and the Swissgrid losses", flush=True)
        sample = work / "f.csv"
        run([PY, "-m", "ingest", "generate", "--start", "2021-05-01", "--end", "2021-05-31",
             "--step", "1s", "--out", str(sample), "--quiet"], env)  # fmt: skip
        run([PY, "-m", "ingest", "load", str(sample), "--label", "end", "--quiet"], env)
        losses = ROOT.parent / "shared/data/swissgrid-active-losses-2019-2021-15min.csv"
        if losses.exists():
            run([PY, "-m", "ingest", "load", str(losses), "--series", "active_losses",
                 "--label", "end", "--step", "15m", "--quiet"], env)  # fmt: skip
        # the concurrent ingest: a second series at 1 s, loaded once before the phases (so both
        # query the same three series) and written again during each phase (the same write
        # load, tiers refreshed again)
        during = work / "g.csv"
        run([PY, "-m", "ingest", "generate", "--start", "2021-06-01", "--end", "2021-06-15",
             "--step", "1s", "--kind", "measured", "--out", str(during), "--quiet"],
            env)  # fmt: skip
        run([PY, "-m", "ingest", "load", str(during), "--label", "end", "--quiet"], env)
        off = None
        if not args.tiered_only:
            influxd = at_rest(influxd, binary, work, port)
            off = phase("tiers off (raw points only)", args, env, during, "", influxd.pid)
        influxd = at_rest(influxd, binary, work, port)
        on = phase(f"tiers on ({args.tiers})", args, env, during, args.tiers, influxd.pid)
    finally:
        il.stop_process(influxd.pid)
        influxd.wait()
        shutil.rmtree(work, ignore_errors=True)  # influxd's data and the CSVs: 200 MB a run
    # The tiered run is the platform as deployed; the raw run is the comparison.
    result = {**on, "raw": off, "influxd_cache_snapshot_size": il.CACHE_SNAPSHOT_SIZE}
    print(json.dumps(result, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    ran = [("tiers off", off), ("tiers on", on)] if off is not None else [("tiers on", on)]
    statuses = [r["statuses"] for _, r in ran]
    statuses += [s["statuses"] for _, r in ran for s in r["sweep"]]
    bad = {k: v for st in statuses for k, v in st.items() if k.startswith(("5", "transport"))}
    if bad or any(r["ingest_exit"] != 0 for _, r in ran):
        print(f"FAIL: {bad or 'ingest failed'}")
        return 1
    for label, r in ran:
        print(f"{label}: {r['requests_per_second']} req/s, p50 {r['p50_ms']} ms, "
              f"p99 {r['p99_ms']} ms, 429 {r['statuses'].get('429', 0)}, 422 "
              f"{r['statuses'].get('422', 0)}; sources {r['sources']}")  # fmt: skip
        for source, q in r["by_source"].items():
            print(f"  answered by {source}: {q['requests']} requests, p50 {q['p50_ms']} ms, "
                  f"p99 {q['p99_ms']} ms")  # fmt: skip
    little = little_bound(args.clients, args.think, on["sweep"])
    if little is not None:
        peak, bound = little
        slower = " (no bound: they ask slower than that)" if bound <= 0 else ""
        print(f"Little's law: {args.clients} clients thinking {args.think:g} s over the most "
              f"this mix got ({peak['requests_per_second']} req/s) wait at least {bound:.2f} s "
              f"per request on average{slower}")  # fmt: skip
    verdict = "met" if on["p99_ms"] <= 1000 else "MISSED"
    against = "" if off is None else f", {off['p99_ms'] / on['p99_ms']:.1f}x lower than tiers off"
    print(f"OK: zero 5xx; tiers on p99 {on['p99_ms']} ms (target <= 1000 ms: {verdict})"
          f"{against}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
