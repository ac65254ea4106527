#!/usr/bin/env python3
"""Capacity: bytes per point on disk, raw and per rollup tier, after InfluxDB compacted them.

    .venv/bin/python bench/capacity.py                 # 28 days x 2 series of 1 s (4.8 M points)
    .venv/bin/python bench/capacity.py --days 7 --series 1

What it does (issue 10, item 8; the numbers of docs/capacity.md):

1. writes a file of realistic 1 s grid frequency (``ingest.generate --kind measured``: 50 Hz with
   autocorrelated noise of about 14 mHz, 1 mHz resolution, the time-correction days included),
   one column per series, cached in ``bench/out/``;
2. starts its own influxd (``scripts/influxdb_local.py``'s binary, loopback, data in
   ``bench/out/capacity-work/``) with the cold-shard timers short, so that the cache is
   snapshotted to TSM and every shard fully compacted within seconds of the last write, as a
   production node does after ``--storage-compact-full-write-cold-duration`` (4 h by default);
3. ``python -m ingest tiers`` (the default tiers), then the timed load ``python -m ingest load
   FILE --label end --step 1s``, which writes the raw points and fills the tiers;
4. waits until the WAL is empty and every shard of every bucket is one TSM file (a full
   compaction; a shard of one snapshot is one file already), then measures each bucket's
   directories: TSM files (the data), the WAL, each shard's TSI index and the bucket's series
   file, and counts the points InfluxDB holds (raw points; windows of each tier).

Bytes per point are the TSM bytes over the points (raw) or the windows (a tier: one window is
eight fields, count, sum, min, max, first, last, m2, mean). The index and the series file are
reported apart: they grow with the number of series, not of points, and the series file is
preallocated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

import influxdb_local as il  # noqa: E402
from gridts.tiers import DEFAULT_TIERS, STORED_FIELDS, parse_tiers  # noqa: E402
from ingest import generate  # noqa: E402

OUT = ROOT / "bench" / "out"
PY = sys.executable
# Cold-shard timers: snapshot the cache and compact a shard fully soon after its last write; and
# a small cache (25 MiB by default), so that a shard is written as many snapshots that level and
# full compactions then merge, as a long-lived node's shards are, rather than as one snapshot.
COLD_TIMERS = ["--storage-cache-snapshot-write-cold-duration=5s",
               "--storage-compact-full-write-cold-duration=10s"]  # fmt: skip
COLD = [*COLD_TIMERS, "--storage-cache-snapshot-memory-size=1MiB"]


def log(msg: str) -> None:
    print(f"[capacity] {msg}", file=sys.stderr, flush=True)


class Server(il.Server):  # type: ignore[misc]
    """scripts/influxdb_local.Server with the cold-compaction flags added to its command."""

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary),
            f"--http-bind-address=127.0.0.1:{self.port}",
            f"--bolt-path={self.data_dir / 'influxd.bolt'}",
            f"--engine-path={self.data_dir / 'engine'}",
            f"--sqlite-path={self.data_dir / 'influxd.sqlite'}",
            "--reporting-disabled",
            "--log-level=info",
            *COLD,
        ]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        il.wait_healthy(self.url, self.proc)
        il.onboard(self.url, self.token, self.org, self.bucket)


@contextlib.contextmanager
def influxd(work: Path) -> Iterator[Server]:
    data = work / "influxd"
    shutil.rmtree(data, ignore_errors=True)
    server = Server(il.ensure_binary(), data, work / "influxd.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def ensure_file(days: int, series: int, start: str, seed: int) -> tuple[Path, list[str], int]:
    names = [f"f_ist_{i:03d}" for i in range(series)]
    path = OUT / f"capacity-measured-1s-{start}-{days}d-{series}series-seed{seed}.csv"
    end = (date.fromisoformat(start) + timedelta(days=days)).isoformat()
    rows = generate.parse_instant(end) - generate.parse_instant(start)  # a DST day is 23 or 25 h
    if not path.exists():
        log(f"generating {rows:,} rows x {series} series into {path.name} ...")
        tmp = path.with_suffix(".tmp")
        generate.write_frequency_file(
            tmp, start, end, "1s", series=names, kind="measured", seed=seed, gzip=False
        )
        tmp.rename(path)
    return path, names, rows


def flux_count(server: Server, bucket: str, field: str) -> int:
    flux = (
        f'from(bucket: "{bucket}") |> range(start: 1970-01-01T00:00:00Z, '
        f'stop: 2200-01-01T00:00:00Z) |> filter(fn: (r) => r._field == "{field}") '
        "|> count() |> group() |> sum()"
    )
    resp = httpx.post(
        f"{server.url}/api/v2/query",
        params={"org": server.org},
        headers={"Authorization": f"Token {server.token}"},
        json={"query": flux, "type": "flux", "dialect": {"annotations": [], "header": True}},
        timeout=600,
    )
    resp.raise_for_status()
    lines = [ln for ln in resp.text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return 0
    header = lines[0].split(",")
    return int(lines[1].split(",")[header.index("_value")])


def bucket_ids(url: str, org: str, token: str) -> dict[str, str]:
    """Every bucket's id by its name."""
    resp = httpx.get(
        f"{url}/api/v2/buckets",
        params={"org": org, "limit": 100},
        headers={"Authorization": f"Token {token}"},
    )
    resp.raise_for_status()
    return {b["name"]: b["id"] for b in resp.json()["buckets"]}


def _size(paths: Iterator[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def _allocated(paths: Iterator[Path]) -> int:
    return sum(p.stat().st_blocks * 512 for p in paths if p.is_file())


@dataclass
class Disk:
    shards: int
    tsm_files: int
    tsm_bytes: int
    tmp_files: int
    wal_bytes: int
    index_bytes: int  # the shards' TSI index directories
    series_file_bytes: int  # the bucket's _series directory, apparent size
    series_file_allocated: int  # ... and the blocks it occupies (it is preallocated)


def disk(engine: Path, bucket_id: str) -> Disk:
    data = engine / "data" / bucket_id
    shard_dirs = [d for d in (data / "autogen").glob("*") if d.is_dir()]
    tsm = [f for d in shard_dirs for f in d.glob("*.tsm")]
    return Disk(
        shards=len(shard_dirs),
        tsm_files=len(tsm),
        tsm_bytes=_size(iter(tsm)),
        tmp_files=sum(1 for d in shard_dirs for _ in d.glob("*.tmp")),
        wal_bytes=_size((engine / "wal" / bucket_id).rglob("*")),
        index_bytes=_size(p for d in shard_dirs for p in (d / "index").rglob("*")),
        series_file_bytes=_size((data / "_series").rglob("*")),
        series_file_allocated=_allocated((data / "_series").rglob("*")),
    )


def wait_compacted(engine: Path, ids: dict[str, str], timeout: float) -> tuple[bool, float]:
    """Until the WAL is empty and each shard is one TSM file, twice in a row 5 s apart."""
    began = time.monotonic()
    settled = 0
    while time.monotonic() - began < timeout:
        states = [disk(engine, i) for i in ids.values()]
        done = all(
            s.wal_bytes == 0 and s.tmp_files == 0 and s.tsm_files == s.shards for s in states
        )
        settled = settled + 1 if done else 0
        if settled >= 2:
            return True, time.monotonic() - began
        time.sleep(5)
    return False, time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/capacity.py", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=28, help="days of 1 s data (28)")
    p.add_argument("--series", type=int, default=2, help="series (columns of one file) (2)")
    p.add_argument("--start", default="2021-03-01", help="first local day (2021-03-01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900, help="wait for compaction, s (900)")
    args = p.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "capacity-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path, names, rows = ensure_file(args.days, args.series, args.start, args.seed)
    points = rows * len(names)
    tiers = parse_tiers(DEFAULT_TIERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    report: dict[str, Any] = {
        "file": path.name, "days": args.days, "series": len(names), "raw_points": points,
        "influxd": il.binary_version(il.ensure_binary()), "flags": COLD,
    }  # fmt: skip
    try:
        with influxd(work) as server:
            env.update(server.env())
            subprocess.run([PY, "-m", "ingest", "tiers", "--tiers", DEFAULT_TIERS], env=env,
                           cwd=ROOT, check=True, capture_output=True)  # fmt: skip
            log(f"loading {points:,} points ({len(names)} series x {rows:,} rows) with tiers ...")
            began = time.perf_counter()
            subprocess.run(
                [PY, "-m", "ingest", "load", str(path), "--label", "end", "--step", "1s",
                 "--tiers", DEFAULT_TIERS, "--quiet"],
                env=env, cwd=ROOT, check=True,
            )  # fmt: skip
            report["load_seconds"] = round(time.perf_counter() - began, 1)
            ids = bucket_ids(server.url, server.org, server.token)
            wanted = [server.bucket] + [t.bucket(server.bucket) for t in tiers]
            ids = {name: ids[name] for name in wanted}
            engine = server.data_dir / "engine"
            log("waiting for the cache snapshots and full compactions ...")
            ok, waited = wait_compacted(engine, ids, args.timeout)
            report["compacted"] = ok
            report["waited_seconds"] = round(waited, 1)
            buckets = []
            for name, bucket_id in ids.items():
                field = "value" if name == server.bucket else "count"
                count = flux_count(server, name, field)
                d = disk(engine, bucket_id)
                fields = 1 if name == server.bucket else len(STORED_FIELDS)
                buckets.append({
                    "bucket": name, "points": count, "field_values": count * fields,
                    "bytes_per_point": d.tsm_bytes / count if count else None,
                    "bytes_per_field_value": d.tsm_bytes / (count * fields) if count else None,
                    **asdict(d),
                })  # fmt: skip
            report["buckets"] = buckets
        logged = (work / "influxd.log").read_text(errors="replace").splitlines()
        report["cache_snapshots"] = sum('msg="Cache snapshot (end)"' in ln for ln in logged)
        ends = [ln for ln in logged if 'msg="TSM compaction (end)"' in ln]
        report["compactions"] = len(ends)
        report["full_compactions"] = sum("full" in ln for ln in ends)
    finally:
        shutil.rmtree(work / "influxd", ignore_errors=True)

    raw = report["buckets"][0]
    lines = [
        f"influxd: {report['influxd']}",
        f"data: {path.name}: {len(names)} series x {rows:,} s = {points:,} raw points "
        "(ingest.generate --kind measured: 50 Hz +- about 14 mHz, 1 mHz steps)",
        f"load with tiers {DEFAULT_TIERS}: {report['load_seconds']} s "
        f"({points / report['load_seconds']:,.0f} points/s on this shared machine)",
        f"compaction: {'done' if report['compacted'] else 'NOT finished'} after "
        f"{report['waited_seconds']} s (influxd {' '.join(COLD)}): WAL empty, "
        "one TSM file per shard; "
        f"{report['cache_snapshots']} cache snapshots, {report['compactions']} TSM compactions "
        f"({report['full_compactions']} full) in influxd's log",
        "",
        f"{'bucket':<10} {'points':>10} {'shards':>6} {'TSM bytes':>12} {'B/point':>8} "
        f"{'B/field':>8} {'x raw':>6} {'WAL':>5} {'TSI index':>10} {'series file':>22}",
    ]
    for b in report["buckets"]:
        share = b["tsm_bytes"] / raw["tsm_bytes"] if raw["tsm_bytes"] else 0.0
        lines.append(
            f"{b['bucket']:<10} {b['points']:>10,} {b['shards']:>6} {b['tsm_bytes']:>12,} "
            f"{b['bytes_per_point'] or 0:>8.2f} {b['bytes_per_field_value'] or 0:>8.2f} "
            f"{share:>6.3f} {b['wal_bytes']:>5,} {b['index_bytes']:>10,} "
            f"{b['series_file_bytes'] / 2**20:>7.1f} MiB ({b['series_file_allocated'] / 2**20:.1f} "
            "alloc.)"
        )
    tier_bytes = sum(b["tsm_bytes"] for b in report["buckets"][1:])
    lines += [
        "",
        f"raw: {raw['bytes_per_point']:.2f} bytes per point (TSM); all tiers together "
        f"{tier_bytes / raw['tsm_bytes']:.3f} x the raw bytes, "
        f"{tier_bytes / points:.3f} bytes per raw point",
        f"points = raw points, or a tier's windows ({len(STORED_FIELDS)} fields each: "
        f"{', '.join(STORED_FIELDS)}); B/point = TSM bytes / points; "
        "B/field = per field value; x raw = TSM bytes over the raw bucket's",
    ]
    text = "\n".join(lines)
    print(text)
    (OUT / "capacity-results.txt").write_text(text + "\n")
    (OUT / "capacity-results.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["compacted"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
