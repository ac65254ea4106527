#!/usr/bin/env python3
"""InfluxDB's cost of a small query while the points it reads are still in its write cache (right
after a load) and once they are in TSM files, side by side in one run.

    .venv/bin/python bench/cache.py [--days 7] [--repeats 30]

Starts its own influxd with `storage-cache-snapshot-write-cold-duration` at 10 s (InfluxDB's
default is 10 minutes), writes `--days` of a 1 s series, times three queries against InfluxDB's
HTTP API at once (hot: every point in the cache), waits until the shards are snapshotted to TSM
files, and times them again (cold). Prints each query's p50 both ways and the ratio.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
import influxdb_local as il  # noqa: E402
from api import BUCKET, ORG, iso, write_series  # noqa: E402

DAY0 = datetime(2021, 5, 1, tzinfo=UTC)
SOURCE = (
    'from(bucket: "{b}") |> range(start: {s}, stop: {e})'
    ' |> filter(fn: (r) => r._measurement == "f1" and r._field == "value")'
)


def queries(days: int) -> dict[str, str]:
    mid = DAY0 + timedelta(days=days // 2, hours=10, minutes=17, seconds=23)

    def src(start: datetime, end: datetime) -> str:
        return SOURCE.format(b=BUCKET, s=iso(start), e=iso(end))

    return {
        "13 minutes of raw points": src(mid, mid + timedelta(minutes=13))
        + ' |> keep(columns: ["_time", "_value"])',
        "count of 13 minutes": src(mid, mid + timedelta(minutes=13)) + " |> count()",
        "a day at 15 m (mean)": src(mid, mid + timedelta(days=1))
        + " |> aggregateWindow(every: 15m, fn: mean)"
        + ' |> keep(columns: ["_time", "_value"])',
    }


def p50s(influx: httpx.Client, texts: dict[str, str], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in texts}
    for _ in range(repeats):
        for name, text in texts.items():
            body = {"query": text, "dialect": {"header": True, "annotations": []}}
            t = time.perf_counter()
            influx.post("/api/v2/query", params={"org": ORG}, json=body).raise_for_status()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=7, help="days of the 1 s series written")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs of each query, each way")
    args = ap.parse_args()
    binary = il.ensure_binary()
    os.environ["INFLUXD_STORAGE_CACHE_SNAPSHOT_WRITE_COLD_DURATION"] = "10s"  # inherited
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        work = Path(tmp)
        port = il.free_port()
        url, token = f"http://127.0.0.1:{port}", secrets.token_urlsafe(24)
        influxd = il.spawn(binary, work / "influxd", port, work / "influxd.log")
        try:
            il.wait_healthy(url, influxd)
            il.onboard(url, token, ORG, BUCKET)
            took = write_series(url, token, "f1", "Hz", DAY0, 1, args.days * 86400)
            print(f"wrote {args.days * 86400:,} points at 1 s in {took:.1f} s", flush=True)
            texts = queries(args.days)
            headers = {"Authorization": f"Token {token}", "Accept-Encoding": "identity"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as influx:
                hot = p50s(influx, texts, args.repeats)
                deadline = time.monotonic() + 300
                while not list((work / "influxd" / "engine" / "data").rglob("*.tsm")):
                    if time.monotonic() > deadline:
                        print("FAIL: no TSM file after 5 minutes")
                        return 1
                    time.sleep(2)
                time.sleep(5)  # every shard's snapshot
                cold = p50s(influx, texts, args.repeats)
        finally:
            il.stop_process(influxd.pid)
    print(f"\n{'query':28} {'in cache ms':>12} {'in TSM ms':>10} {'ratio':>7}")
    for name in texts:
        print(f"{name:28} {hot[name]:>12.1f} {cold[name]:>10.1f} {hot[name] / cold[name]:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
