#!/usr/bin/env python3
"""Before and after: the same ingest and API workloads against two source trees, in one run.

Issue 12 reshaped the code and its acceptance asks for "the ingest and API benchmarks within
noise of today". This runs both trees side by side on one influxd, interleaved round by round
(each round the other tree goes first), so that whatever else the machine does hits both::

    git worktree add --detach ../wt-base bbb82f6           # the tree before the reshape
    .venv/bin/python bench/reshape.py --trees base=../wt-base/src,head=src
    .venv/bin/python bench/reshape.py --trees base=../wt-base/src,head=src --quick   # smoke run

Both trees run with this interpreter (the same virtualenv); a tree is chosen by putting its
``src`` first on ``PYTHONPATH`` of the child processes (``python -m ingest``, ``python -m app``).

Workloads, the same as ``bench/ingest.py`` and ``bench/api.py`` measure:

* **ingest**: ``python -m ingest load FILE --label end --step 1s --tiers 1m,15m,1h`` (the CLI's
  default batch size and concurrency) on the operator-dialect file ``bench/ingest.py`` generates
  (``--days`` days at 1 s from ``--start``, cached in ``bench/out/``), into a new bucket whose
  tier buckets ``python -m ingest tiers`` made first (untimed); timed whole, process start to
  exit, wall and CPU seconds. Every load is checked (raw count, first and last instant, each
  tier's counts summing to the rows) and its buckets deleted afterwards. Once per tree, untimed:
  the SHA-256 of its ``--dry-run`` line protocol and of every tier bucket's contents after the
  first round's load, which must be equal between the trees. Start-up alone:
  ``python -m ingest load --help``, ``--startups`` times per tree and round.
* **api**: data written once (a 30 s series of 3 days, a 1 s series of ``--api-days`` days,
  its tiers filled by ``python -m ingest rollup``); each round starts one ``python -m app`` per
  tree (tiers on, the default), then for each request alternates the trees request by request,
  ``--repeats`` times, after a warm-up. Latency is the client's wall time for the whole answer;
  API CPU is the API process's CPU time over the round's requests (/proc) over their number.
  The first round compares the answers byte for byte.

Reported per workload: the median of each tree over all rounds, their ratio (second tree over
first), and the spread of the per-round ratios (min, max): a ratio inside the spread of the
rounds is within the noise of this machine. The text goes to ``bench/out/reshape-results.txt``,
the numbers to ``bench/out/reshape-results.json``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import api as bench_api  # noqa: E402
import influxdb_local as il  # noqa: E402
from gridts.tiers import DEFAULT_TIERS, parse_tiers  # noqa: E402
from procstat import cpu_seconds  # noqa: E402


def _load_ingest_bench() -> Any:
    """bench/ingest.py as a module: its name would shadow the ``ingest`` package."""
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench_ingest = _load_ingest_bench()
OUT = ROOT / "bench" / "out"
PY = sys.executable
TIERS = parse_tiers(DEFAULT_TIERS)


def log(msg: str) -> None:
    print(f"[reshape] {msg}", file=sys.stderr, flush=True)


@dataclass
class Tree:
    name: str
    src: Path
    rev: str = ""

    def env(self, server: il.Server, bucket: str | None = None) -> dict[str, str]:
        return {
            **server.env(),
            "INFLUX_BUCKET": bucket or server.bucket,
            "PYTHONPATH": str(self.src),
        }


def describe(src: Path) -> str:
    """The commit of a tree's checkout, and whether its src differs from that commit."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(src), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    rev = git("log", "-1", "--format=%h %s")[:80] or "not a git checkout"
    dirty = git("status", "--porcelain", "--", ".")
    return rev + (" (src modified)" if dirty else "")


@dataclass
class Series:
    """Samples of one workload: per tree, per round."""

    label: str
    unit: str
    samples: dict[str, list[list[float]]] = field(default_factory=dict)

    def add(self, tree: str, round_no: int, value: float) -> None:
        rounds = self.samples.setdefault(tree, [])
        while len(rounds) <= round_no:
            rounds.append([])
        rounds[round_no].append(value)

    def summary(self, base: str, head: str) -> dict[str, Any]:
        a, b = self.samples[base], self.samples[head]
        per_round = [
            statistics.median(y) / statistics.median(x)
            for x, y in zip(a, b, strict=True)
            if x and y
        ]
        med_a = statistics.median(v for r in a for v in r)
        med_b = statistics.median(v for r in b for v in r)
        return {
            "label": self.label,
            "unit": self.unit,
            base: med_a,
            head: med_b,
            "ratio": med_b / med_a,
            "round_ratios": per_round,
            "median_round_ratio": statistics.median(per_round),
            "min_ratio": min(per_round),
            "max_ratio": max(per_round),
            "samples": {k: v for k, v in self.samples.items()},
        }


# ----------------------------------------------------------------------------------------------
# influxd: buckets made and deleted through the API


def http(server: il.Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Token {server.token}"}, timeout=600
    )


def create_bucket(server: il.Server, name: str) -> None:
    with http(server) as c:
        org = c.get("/api/v2/orgs", params={"org": server.org}).raise_for_status().json()
        body = {"orgID": org["orgs"][0]["id"], "name": name, "retentionRules": []}
        c.post("/api/v2/buckets", json=body).raise_for_status()


def delete_buckets(server: il.Server, names: list[str]) -> None:
    with http(server) as c:
        for name in names:
            found = c.get("/api/v2/buckets", params={"org": server.org, "name": name})
            for b in found.raise_for_status().json().get("buckets", []):
                c.delete(f"/api/v2/buckets/{b['id']}").raise_for_status()


def flux_text(server: il.Server, flux: str) -> str:
    with http(server) as c:
        r = c.post(
            "/api/v2/query",
            params={"org": server.org},
            json={"query": flux, "dialect": {"header": True, "annotations": []}},
        )
        return r.raise_for_status().text


def tier_check(server: il.Server, bucket: str, rows: int, digest: bool) -> tuple[list[str], dict]:
    """Each tier's count fields sum to ``rows``; with ``digest``, SHA-256 of every tier's
    contents (all fields, InfluxDB's own CSV text) to compare the trees."""
    problems: list[str] = []
    info: dict[str, Any] = {}
    for tier in TIERS:
        name = tier.bucket(bucket)
        base = (
            f'from(bucket: "{name}") |> range(start: 1970-01-01T00:00:00Z, '
            "stop: 2200-01-01T00:00:00Z)"
        )
        text = flux_text(
            server,
            base + ' |> filter(fn: (r) => r._field == "count") |> group() |> sum()'
            ' |> keep(columns: ["_value"])',
        )
        counted = sum(int(line.rsplit(",", 1)[1]) for line in text.splitlines()[1:] if line)
        info[f"{tier.text}_count_sum"] = counted
        if counted != rows:
            problems.append(f"tier {tier.text}: counts sum to {counted:,} of {rows:,}")
        if digest:
            whole = flux_text(
                server, base + ' |> keep(columns: ["_measurement", "_field", "_time", "_value"])'
            )
            info[f"{tier.text}_sha256"] = hashlib.sha256(whole.encode()).hexdigest()
            info[f"{tier.text}_lines"] = whole.count("\n")
    return problems, info


# ----------------------------------------------------------------------------------------------
# ingest


def dry_run_digest(tree: Tree, data: Path, work: Path, timeout: float) -> tuple[str, str, int]:
    """SHA-256 of the tree's line protocol for the file, its first measurement and line count."""
    lp = work / f"dry-run-{tree.name}.lp"
    run = bench_ingest.run_child(
        [PY, "-m", "ingest", "load", str(data), "--label", "end", "--step", "1s", "--dry-run",
         "--output", str(lp), "--quiet"],
        log_path=work / f"dry-run-{tree.name}.log", timeout=timeout,
        env={"PYTHONPATH": str(tree.src)},
    )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"{tree.name}: the dry run failed ({run.returncode}):\n{run.tail()}")
    sha, lines = hashlib.sha256(), 0
    with open(lp, "rb") as fh:
        first = fh.readline()
        measurement = first.split(b",", 1)[0].decode()
        sha.update(first)
        lines = 1
        for block in iter(lambda: fh.read(8 << 20), b""):
            sha.update(block)
            lines += block.count(b"\n")
    lp.unlink()
    return sha.hexdigest(), measurement, lines


def startup_once(tree: Tree, work: Path) -> tuple[float, float]:
    """``python -m ingest load --help``: the interpreter and the CLI's imports, wall and CPU."""
    run = bench_ingest.run_child(
        [PY, "-m", "ingest", "load", "--help"],
        log_path=work / f"help-{tree.name}.log",
        timeout=120,
        env={"PYTHONPATH": str(tree.src)},
    )
    if run.returncode != 0:
        raise SystemExit(f"{tree.name}: python -m ingest load --help failed:\n{run.tail()}")
    return run.seconds, run.cpu_seconds


def ingest_once(
    server: il.Server,
    tree: Tree,
    data: Path,
    rows: int,
    measurement: str,
    bucket: str,
    work: Path,
    timeout: float,
    digest: bool,
) -> dict[str, Any]:
    """One load into a new bucket with its tier buckets; checked; the buckets deleted."""
    create_bucket(server, bucket)
    env = tree.env(server, bucket)
    done = subprocess.run(
        [PY, "-m", "ingest", "tiers", "--tiers", DEFAULT_TIERS],
        env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{tree.name}: python -m ingest tiers failed: {done.stderr}")
    run = bench_ingest.run_child(
        [PY, "-m", "ingest", "load", str(data), "--label", "end", "--step", "1s", "--tiers",
         DEFAULT_TIERS, "--quiet"],
        log_path=work / f"{bucket}.log", timeout=timeout, env=env,
    )  # fmt: skip
    target = copy.copy(server)
    target.bucket = bucket
    stored = bench_ingest.influx_stored(target, measurement)
    problems = [] if run.returncode == 0 else [f"exit {run.returncode}: {run.tail(5)}"]
    if stored.points != rows:
        problems.append(f"stored {stored.points:,} of {rows:,}")
    tier_problems, info = tier_check(server, bucket, rows, digest)
    problems += tier_problems
    delete_buckets(server, [bucket, *(t.bucket(bucket) for t in TIERS)])
    return {
        "tree": tree.name,
        "bucket": bucket,
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "rss_bytes": run.maxrss_bytes,
        "stored": stored.points,
        "first": stored.first,
        "last": stored.last,
        "problems": problems,
        **info,
    }


def ingest_workload(
    server: il.Server, trees: list[Tree], args: argparse.Namespace, work: Path
) -> tuple[list[Series], dict[str, Any]]:
    data, rows = bench_ingest.ensure_data(
        argparse.Namespace(start=args.start, step="1s", rows=0, days=args.days, seed=args.seed)
    )
    log(f"ingest: {data.name}, {rows:,} rows, {data.stat().st_size / 1e6:.0f} MB")
    checks: dict[str, Any] = {"file": data.name, "rows": rows, "dry_run": {}}
    measurement = ""
    for tree in trees:
        sha, measurement, lines = dry_run_digest(tree, data, work, args.timeout)
        checks["dry_run"][tree.name] = {"sha256": sha, "lines": lines}
    wall = Series(f"ingest: load {rows:,} rows + tiers, wall", "s")
    cpu = Series("ingest: the same, client CPU", "s")
    start_wall = Series("ingest: start-up (load --help), wall", "s")
    start_cpu = Series("ingest: start-up (load --help), CPU", "s")
    loads: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for k in range(args.startups):
            for tree in trees if (r + k) % 2 == 0 else trees[::-1]:
                seconds, used = startup_once(tree, work)
                start_wall.add(tree.name, r, seconds)
                start_cpu.add(tree.name, r, used)
        for tree in trees if r % 2 == 0 else trees[::-1]:
            log(f"ingest round {r + 1}/{args.rounds}: {tree.name} ...")
            got = ingest_once(
                server, tree, data, rows, measurement, f"ingest-r{r}-{tree.name}", work,
                args.timeout, digest=r == 0,
            )  # fmt: skip
            got.update(round=r, load_average=bench_ingest.load_average())
            loads.append(got)
            log(
                f"  {got['seconds']:.1f} s wall, {got['cpu_seconds']:.1f} s CPU"
                + (f"; PROBLEMS: {got['problems']}" if got["problems"] else "")
            )
            wall.add(tree.name, r, got["seconds"])
            cpu.add(tree.name, r, got["cpu_seconds"])
    checks["loads"] = loads
    checks["dry_run_same"] = len({d["sha256"] for d in checks["dry_run"].values()}) == 1
    first = [x for x in loads if x["round"] == 0]
    checks["tiers_same"] = {t.text: len({x[f"{t.text}_sha256"] for x in first}) == 1 for t in TIERS}
    return [wall, cpu, start_wall, start_cpu], checks


# ----------------------------------------------------------------------------------------------
# API


def api_cases(days: int) -> list[tuple[str, str, dict[str, str]]]:
    day0 = bench_api.DAY0
    iso = bench_api.iso
    one_day = {"start": iso(day0), "end": iso(day0 + timedelta(days=1))}
    long = {"start": iso(day0), "end": iso(day0 + timedelta(days=days))}
    return [
        ("one day at 30 s", "f30", {**one_day, "resolution": "30s", "agg": "mean"}),
        ("one day at 1 s", "f1", {**one_day, "resolution": "1s", "agg": "mean"}),
        (f"{days} d at 15 m, tiers", "f1", {**long, "resolution": "15m", "agg": "mean"}),
        (
            f"{days} d at 1 d, Europe/Zurich, tiers",
            "f1",
            {**long, "resolution": "1d", "agg": "mean", "tz": "Europe/Zurich"},
        ),
    ]


def api_workload(
    server: il.Server, trees: list[Tree], args: argparse.Namespace, work: Path
) -> tuple[list[Series], dict[str, Any]]:
    day0 = bench_api.DAY0
    took = bench_api.write_series(server.url, server.token, "f30", "Hz", day0, 30, 3 * 2880)
    log(f"api: wrote f30, 8,640 points at 30 s, in {took:.1f} s")
    n1 = args.api_days * 86400
    took = bench_api.write_series(server.url, server.token, "f1", "Hz", day0, 1, n1)
    log(f"api: wrote f1, {n1:,} points at 1 s, in {took:.1f} s")
    took = bench_api.rollup(
        server.url, server.token, "f1", day0, day0 + timedelta(days=args.api_days)
    )
    log(f"api: tiers {DEFAULT_TIERS} of f1 filled in {took:.1f} s (python -m ingest rollup)")
    cases = api_cases(args.api_days)
    latency = {label: Series(f"api: {label}, latency", "ms") for label, _, _ in cases}
    cpu = {label: Series(f"api: {label}, API CPU per request", "ms") for label, _, _ in cases}
    checks: dict[str, Any] = {"points": {}, "same_answer": {}, "same_bytes": {}, "source": {}}
    for r in range(args.rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        procs: dict[str, subprocess.Popen[bytes]] = {}
        clients: dict[str, httpx.Client] = {}
        try:
            for tree in order:
                env = {**os.environ, **tree.env(server), "API_QUERY_TIMEOUT_SECONDS": "120"}
                proc, url = bench_api.start_api(work, f"api-r{r}-{tree.name}", env)
                procs[tree.name] = proc
                clients[tree.name] = httpx.Client(base_url=url, timeout=300)
            log(f"api round {r + 1}/{args.rounds}: {', '.join(t.name for t in order)} ...")
            for label, series, params in cases:
                path = f"/v1/series/{series}/data"
                bodies: dict[str, bytes] = {}
                for tree in order:  # warm-up: connections, the catalog, the first plans
                    for _ in range(2):
                        resp = clients[tree.name].get(path, params=params)
                        resp.raise_for_status()
                    bodies[tree.name] = resp.content
                    checks["source"].setdefault(label, {})[tree.name] = resp.headers.get(
                        "X-Data-Source", ""
                    )
                if r == 0:
                    first = bodies[trees[0].name]
                    # equal as JSON (50 == 50.0: a number's text may differ), and whether byte
                    # for byte too
                    checks["same_answer"][label] = all(
                        json.loads(b) == json.loads(first) for b in bodies.values()
                    )
                    checks["same_bytes"][label] = all(b == first for b in bodies.values())
                    checks["points"][label] = len(json.loads(first)["points"])
                repeats = args.repeats if series == "f30" or "tiers" in label else args.heavy
                # CPU over the round's requests of each process: /proc counts in clock ticks
                # (10 ms), too coarse for one request of a few milliseconds
                cpu0 = {t.name: cpu_seconds(procs[t.name].pid) for t in order}
                for i in range(repeats):
                    for tree in order if i % 2 == 0 else order[::-1]:
                        t0 = time.perf_counter()
                        resp = clients[tree.name].get(path, params=params)
                        spent = time.perf_counter() - t0
                        resp.raise_for_status()
                        latency[label].add(tree.name, r, spent * 1000)
                for tree in order:
                    used = cpu_seconds(procs[tree.name].pid) - cpu0[tree.name]
                    cpu[label].add(tree.name, r, used / repeats * 1000)
        finally:
            for c in clients.values():
                c.close()
            for proc in procs.values():
                il.stop_process(proc.pid)
                proc.wait()
    series = [s for label, _, _ in cases for s in (latency[label], cpu[label])]
    return series, checks


# ----------------------------------------------------------------------------------------------
# the run


def table(rows: list[dict[str, Any]], base: str, head: str) -> list[str]:
    cols = [
        "workload",
        f"{base} median",
        f"{head} median",
        f"{head}/{base}",
        "per round: median (min..max)",
    ]
    cells = []
    for s in rows:
        digits = 1 if s["unit"] == "s" or s[base] >= 10 else 2
        cells.append([
            s["label"], f"{s[base]:,.{digits}f} {s['unit']}", f"{s[head]:,.{digits}f} {s['unit']}",
            f"{s['ratio']:.3f}",
            f"{s['median_round_ratio']:.3f} ({s['min_ratio']:.3f}..{s['max_ratio']:.3f})",
        ])  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return lines


def parse_trees(text: str) -> list[Tree]:
    trees = []
    for part in text.split(","):
        name, sep, path = part.partition("=")
        src = Path(path).expanduser().resolve()
        if not sep or not name or not (src / "ingest").is_dir() or not (src / "app").is_dir():
            raise SystemExit(f"--trees: {part!r} is not NAME=PATH to a src with ingest/ and app/")
        trees.append(Tree(name, src, describe(src)))
    if len(trees) != 2 or trees[0].name == trees[1].name:
        raise SystemExit("--trees: two trees with different names, the baseline first")
    return trees


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench/reshape.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--trees", required=True, help="BASE=PATH/src,HEAD=PATH/src (baseline first)")
    p.add_argument("--rounds", type=int, default=6, help="rounds, each tree once per round (6)")
    p.add_argument("--workloads", default="ingest,api", help="ingest, api or both (both)")
    p.add_argument("--days", type=int, default=45, help="days of 1 s data to load (45)")
    p.add_argument("--start", default="2021-03-01", help="first local day (2021-03-01: with DST)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api-days", type=int, default=14, help="days of the API's 1 s series (14)")
    p.add_argument("--repeats", type=int, default=40, help="timed requests per light case (40)")
    p.add_argument("--heavy", type=int, default=10, help="timed requests, a day at 1 s (10)")
    p.add_argument("--startups", type=int, default=2, help="timed --help runs per round (2)")
    p.add_argument("--timeout", type=float, default=900, help="time limit per load, s (900)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 2 days, few requests")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.days, args.api_days, args.repeats, args.heavy = 2, 2, 2, 4, 2
    trees = parse_trees(args.trees)
    workloads = {w.strip() for w in args.workloads.split(",") if w.strip()}
    if not workloads or workloads - {"ingest", "api"}:
        p.error("--workloads: ingest, api or both")
    # the trees' settings read these; the run sets its own
    for key in [k for k in os.environ if k.startswith(("INFLUX_", "API_", "INGEST_"))]:
        del os.environ[key]
    os.chdir(ROOT)  # not bench/, where ingest.py would shadow the ingest package

    OUT.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    binary = il.ensure_binary()
    header = [
        *bench_ingest.machine(),
        f"influxd: {il.binary_version(binary)}",
        *(f"tree {t.name}: {t.src} at {t.rev}" for t in trees),
        f"python: {PY} for both trees; {args.rounds} rounds, each tree once per round, the order "
        "alternating",
    ]
    for line in header:
        print(line, flush=True)
    work = OUT / "reshape-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = il.Server(binary, work / "influxd", work / "influxd.log")
    server.org, server.bucket = bench_api.ORG, bench_api.BUCKET
    results: list[Series] = []
    checks: dict[str, Any] = {}
    problems: list[str] = []
    try:
        server.start()
        if "ingest" in workloads:
            got, checks["ingest"] = ingest_workload(server, trees, args, work)
            results += got
            ing = checks["ingest"]
            if not ing["dry_run_same"]:
                problems.append("ingest: the trees' --dry-run line protocol differs")
            problems += [
                f"ingest: tier {tier} contents differ between the trees"
                for tier, same in ing["tiers_same"].items()
                if not same
            ]
            problems += [
                f"ingest {x['tree']} round {x['round'] + 1}: {q}"
                for x in ing["loads"]
                for q in x["problems"]
            ]
        if "api" in workloads:
            got, checks["api"] = api_workload(server, trees, args, work)
            results += got
            problems += [
                f"api: {label}: the answers differ between the trees"
                for label, same in checks["api"]["same_answer"].items()
                if not same
            ]
            problems += [
                f"api: {label}: answered from {sources}"
                for label, sources in checks["api"]["source"].items()
                if len(set(sources.values())) != 1
            ]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    base, head = trees[0].name, trees[1].name
    summaries = [s.summary(base, head) for s in results]
    lines = [*header, ""]
    lines += table(summaries, base, head)
    lines.append("")
    lines.append(
        f"medians over every sample of all {args.rounds} rounds: one load and {args.startups} "
        f"start-ups per tree and round; {args.repeats} requests per tree and round ({args.heavy} "
        "for the day at 1 s) after 2 warm-up requests, API CPU one mean per round; per round: "
        f"that round's {head} median over its {base} median, their median, min and max"
    )
    if "ingest" in checks:
        ing = checks["ingest"]
        lines.append(
            f"checks: --dry-run line protocol {'identical' if ing['dry_run_same'] else 'DIFFERENT'}"
            f" ({next(iter(ing['dry_run'].values()))['lines']:,} lines); tier contents after "
            f"round 1 {'identical' if all(ing['tiers_same'].values()) else 'DIFFERENT'}; every "
            f"load to store {ing['rows']:,} points, each tier's counts summing to them: "
            + ("ok" if not any(x["problems"] for x in ing["loads"]) else "NOT ALL, see below")
        )
    if "api" in checks:
        api = checks["api"]
        same = all(api["same_answer"].values())
        texts = [k for k, v in api["same_bytes"].items() if not v and api["same_answer"][k]]
        verdict = (
            "DIFFERENT"
            if not same
            else "byte-identical"
            if not texts
            else f"equal (as JSON; number texts differ in: {', '.join(texts)})"
        )
        lines.append(
            f"checks: API answers {verdict} between the trees ("
            + ", ".join(
                f"{label}: {api['points'][label]:,} points from "
                f"{next(iter(api['source'][label].values())) or '?'}"
                for label in api["points"]
            )
            + ")"
        )
    for q in problems:
        lines.append(f"PROBLEM: {q}")
    minutes = (time.perf_counter() - began) / 60
    lines.append(f"(took {minutes:.1f} min; load average at the end {bench_ingest.load_average()})")
    text = "\n".join(lines)
    print()
    print(text)
    (OUT / "reshape-results.txt").write_text(text + "\n")
    (OUT / "reshape-results.json").write_text(
        json.dumps(
            {
                "header": header,
                "trees": {t.name: {"src": str(t.src), "rev": t.rev} for t in trees},
                "args": vars(args),
                "results": summaries,
                "checks": checks,
                "problems": problems,
                "minutes": minutes,
            },
            indent=2,
        )
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
