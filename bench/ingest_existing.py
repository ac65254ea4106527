#!/usr/bin/env python3
"""What comparing with the stored points costs the ingest (issue 11, item 8): side by side.

    .venv/bin/python bench/ingest_existing.py              # 7 days at 1 s: 604,800 rows, 4 rounds
    .venv/bin/python bench/ingest_existing.py --days 30 --rounds 8

One fresh ``influxd``; every round, in alternating order (ABBA) so that other work on the machine
hits every mode alike, and each run only once influxd has been idle for a second, the same
generated operator file (``ingest.generate``, 1 s, local time, ``--label end``):

* **first load** into an empty bucket: ``--existing unchecked`` (no query: the write path as it
  was before the check existed) against ``--existing report`` (the default: one query per series
  and chunk, answering "nothing stored");
* **reload** of the same file into a bucket that holds it: ``unchecked`` against ``report``
  (every point read back and compared) and ``refuse`` (compare everything, spool, then write).

Each run is the whole CLI process (start-up included), timed on the wall clock, with its CPU
seconds and influxd's during the run; the table shows medians over the rounds and the ratio of
wall times to ``unchecked`` in the same situation. Every run's ``--report`` is checked (points
written, points already stored).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import influxdb_local as il  # noqa: E402
from procstat import cpu_seconds  # noqa: E402  (bench/procstat.py, beside this script)

OUT = ROOT / "bench" / "out"
PY = sys.executable


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def generate(days: int, start: str) -> tuple[Path, int]:
    end = (date.fromisoformat(start) + timedelta(days=days)).isoformat()
    path = OUT / f"existing-{start}-{days}d-1s.csv"
    if not path.exists():
        log(f"generating {path.name} ...")
        subprocess.run(
            [PY, "-m", "ingest", "generate", "--start", start, "--end", end, "--step", "1s",
             "--kind", "measured", "--out", str(path), "--quiet"],
            check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
    rows = path.read_bytes().count(b"\n") - 1
    return path, rows


def new_bucket(server: il.Server) -> str:
    headers = {"Authorization": f"Token {server.token}"}
    org = httpx.get(
        f"{server.url}/api/v2/orgs", params={"org": server.org}, headers=headers
    ).json()["orgs"][0]["id"]
    name = f"bench_{secrets.token_hex(4)}"
    resp = httpx.post(
        f"{server.url}/api/v2/buckets",
        json={"orgID": org, "name": name, "retentionRules": []},
        headers=headers,
    )
    resp.raise_for_status()
    return name


def server_cpu(server: il.Server) -> float:
    """influxd's CPU seconds so far (utime + stime)."""
    assert server.proc is not None
    return cpu_seconds(server.proc.pid)


def settle(server: il.Server, quiet: float = 1.0, limit: float = 60.0) -> None:
    """Wait until influxd has used no CPU for ``quiet`` seconds (its cache snapshots and
    compactions after a write would otherwise land on the next run)."""

    def cpu() -> float:
        return server_cpu(server)

    deadline = time.monotonic() + limit
    last, since = cpu(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def load(
    server: il.Server, bucket: str, path: Path, mode: str, report: Path
) -> tuple[float, float, float, dict[str, object]]:
    argv = [PY, "-m", "ingest", "load", str(path), "--label", "end", "--existing", mode,
            "--quiet", "--report", str(report)]  # fmt: skip
    env = {**os.environ, **server.env(), "INFLUX_BUCKET": bucket, "PYTHONPATH": str(ROOT / "src")}
    settle(server)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0 = server_cpu(server)
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    server1 = server_cpu(server)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{mode}: exit {proc.returncode}\n{proc.stderr}")
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return seconds, cpu, server1 - server0, json.loads(report.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/ingest_existing.py", description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=7, help="days of 1 s data (7: 604,800 rows)")
    p.add_argument("--start", default="2021-05-01", help="first local day")
    p.add_argument("--rounds", type=int, default=4, help="rounds; medians are shown (4)")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    path, rows = generate(args.days, args.start)
    work = OUT / "work-existing"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = il.Server(il.ensure_binary(), work / "data", work / "influxd.log")
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    load_avg = Path("/proc/loadavg").read_text().split()[:3]
    try:
        server.start()
        for r in range(args.rounds):
            # ABBA: each mode runs first as often as second
            order = ["unchecked", "report"] if r % 4 in (0, 3) else ["report", "unchecked"]
            buckets = {}
            for mode in order:
                buckets[mode] = new_bucket(server)
                log(f"round {r + 1}: first load, --existing {mode} ...")
                s, cpu, scpu, rep = load(server, buckets[mode], path, mode, work / "r.json")
                assert rep["points_written"] == rows, rep
                assert rep["points_existing"] == (0 if mode == "report" else None), rep
                times.setdefault(("first load", mode), []).append((s, cpu, scpu))
            for mode in [*order, "refuse"] if r % 2 == 0 else ["refuse", *order]:
                bucket = buckets["unchecked" if mode == "refuse" else mode]
                log(f"round {r + 1}: reload, --existing {mode} ...")
                s, cpu, scpu, rep = load(server, bucket, path, mode, work / "r.json")
                assert rep["points_written"] == rows, rep
                want = None if mode == "unchecked" else rows
                assert rep["points_existing"] == want, rep
                assert rep["points_changed"] in (0, None), rep
                times.setdefault(("reload", mode), []).append((s, cpu, scpu))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"bench/ingest_existing.py: {path.name}, {rows:,} rows, {args.rounds} rounds, "
        f"influxd {il.binary_version(il.ensure_binary())}, {os.cpu_count()} cores, "
        f"load average {' '.join(load_avg)} at the start",
        f"{'situation':<11} {'--existing':<10} {'median s':>9} {'CLI CPU s':>10} "
        f"{'influxd CPU s':>14} {'rows/s':>10} {'vs unchecked':>13}",
    ]
    for (situation, mode), runs in times.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        scpu = statistics.median(r[2] for r in runs)
        base = statistics.median(r[0] for r in times[(situation, "unchecked")])
        lines.append(
            f"{situation:<11} {mode:<10} {wall:>9.2f} {cpu:>10.2f} {scpu:>14.2f} "
            f"{rows / wall:>10,.0f} {wall / base:>12.2f}x"
        )
    text = "\n".join(lines)
    print(text)
    (OUT / "ingest-existing-results.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
