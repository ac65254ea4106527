"""The foundation: a live influxd answers writes and Flux aggregateWindow queries."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

import influxdb_local as il
from tests.conftest import InfluxServer


def test_server_is_a_live_2x(influx: InfluxServer) -> None:
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        assert client.ping()
        version = client.version()
    print(f"influxd version {version}")
    assert version.startswith("v2.")


def test_write_then_aggregate_window_reads_back_means(influx: InfluxServer, bucket: str) -> None:
    t0 = datetime(2021, 5, 1, tzinfo=UTC)
    # 6 points 10 s apart: two 30 s windows with means 2.0 and 5.0
    lines = [
        f"freq value={v} {int((t0 + timedelta(seconds=10 * i)).timestamp())}"
        for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    ]
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=bucket, record=lines, write_precision="s"
        )
        tables = client.query_api().query(
            # OSS 2.x has no `params.x`: the client sends params as extern option statements
            "from(bucket: bucket)"
            " |> range(start: start, stop: stop)"
            ' |> filter(fn: (r) => r._measurement == "freq" and r._field == "value")'
            ' |> aggregateWindow(every: 30s, fn: mean, timeSrc: "_start", createEmpty: false)',
            params={"bucket": bucket, "start": t0, "stop": t0 + timedelta(minutes=1)},
        )
    got = [(r.get_time(), r.get_value()) for t in tables for r in t.records]
    assert got == [(t0, 2.0), (t0 + timedelta(seconds=30), 5.0)]


def test_profiling_is_off_as_the_chart_runs_it(influx: InfluxServer) -> None:
    """The flag scripts/influxdb_local.py gives influxd, as the chart's INFLUXD_PPROF_DISABLED
    does, turns its Go profiling off: the profiles are refused."""
    for profile in ("heap", "allocs", "mutex", "block"):
        r = httpx.get(f"{influx.url}/debug/pprof/{profile}", timeout=10)
        assert r.status_code == 403, profile
        assert r.json()["message"] == "profiling disabled"


def test_write_cache_is_snapshotted_at_the_charts_size(influx: InfluxServer, bucket: str) -> None:
    """influxd runs with the chart's cache snapshot size (influxdb.cacheSnapshotSize, ADR 0019):
    its running configuration says so, and 200,000 points of one series (3.2 MB of cache, under
    InfluxDB's own 25 MB) reach a TSM file within seconds, not after its 10 cold minutes."""
    headers = {"Authorization": f"Token {influx.token}"}
    config = httpx.get(f"{influx.url}/api/v2/config", headers=headers, timeout=10).json()["config"]
    assert il.CACHE_SNAPSHOT_SIZE == "2MiB"
    assert config["storage-cache-snapshot-memory-size"] == 2 * 1024 * 1024
    found = httpx.get(f"{influx.url}/api/v2/buckets", params={"name": bucket}, headers=headers)
    shards = influx.data_dir / "engine" / "data" / found.json()["buckets"][0]["id"]
    t0 = int(datetime(2021, 5, 3, tzinfo=UTC).timestamp())  # a Monday: one weekly shard
    body = "".join(f"freq value={i % 997}.5 {t0 + i}\n" for i in range(200_000))
    r = httpx.post(
        f"{influx.url}/api/v2/write",
        params={"org": influx.org, "bucket": bucket, "precision": "s"},
        headers=headers,
        content=body.encode(),
        timeout=60,
    )
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 30
    while not list(shards.rglob("*.tsm")):
        assert time.monotonic() < deadline, "the cache was not written to a TSM file"
        time.sleep(0.2)
