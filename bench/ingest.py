#!/usr/bin/env python3
"""Ingest benchmark: the gridts CLI against the write ceiling of the same influxd, and its peers.

One command, one run, everything measured side by side on this machine (issue 3, item 10)::

    .venv/bin/python bench/ingest.py            # one year at 1 s: 31,536,000 rows
    .venv/bin/python bench/ingest.py --quick    # one day at 1 s (86,400 rows): a smoke test

What it does:

1. generates the operator-dialect frequency file with ``ingest.generate`` (cached in
   ``bench/out/``, deterministic by seed);
2. (b) times the parse-and-serialise stage alone: ``python -m ingest load FILE --label end --step
   1s --dry-run --output /dev/null`` in one process, wall and CPU seconds;
3. takes the CLI's exact line protocol (``--dry-run --output``) and derives from it, untimed, the
   inputs of the other methods, so every method writes exactly the same points;
4. (a) the ceiling: those lines in batches of ``--batch-size``, gzipped before the clock starts, and
   POSTed straight to ``/api/v2/write`` with ``--concurrency`` requests in flight (httpx);
   then the CLI itself, ``python -m ingest load FILE --label end --step 1s``;
5. (c) the peers on the same points: influxdb-client's DataFrame write path (its batching write API,
   batch size as above), the ``influx write`` CLI on equivalent annotated CSV, and PostgreSQL
   ``COPY`` (psql ``\\copy``) into a (timestamptz, double precision) table with a btree index on
   the time column, as a TimescaleDB hypertable would have;
6. checks, after each write, the stored point count and first/last instant (Flux ``count``,
   ``first``, ``last``; SQL for PostgreSQL): a method that lost rows is credited only with the
   points actually stored, and flagged.

Each InfluxDB method gets its own fresh ``influxd`` (loopback only), started with
``scripts/influxdb_local.py``; the peers' tools come from ``bench/setup-peers`` (run automatically
when one is missing). Every method runs as a child process with a time limit; peak RSS is the
child's ``ru_maxrss`` (the client's, PostgreSQL's server processes not included), and the server's
peak RSS is influxd's ``VmHWM``.

Timing: the CLI and the parse-only run are timed whole, start-up included, from the operator's
CSV in local time. The ceiling and the DataFrame path are timed from pre-built inputs in memory;
``influx write`` and ``COPY`` from their files in UTC. Every conversion a peer would still need
is left out of its time, which favours the peers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

import influxdb_local as il  # noqa: E402
from gridts import tiers as tier_stats  # noqa: E402
from gridts.tiers import DEFAULT_TIERS, Tier, parse_tiers  # noqa: E402
from ingest import generate  # noqa: E402

OUT = ROOT / "bench" / "out"
CACHE_BIN = il.cache_dir() / "bin"
SETUP_PEERS = ROOT / "bench" / "setup-peers"
PY = sys.executable
GIB = 1 << 30


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# machine


def machine() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cores = len(os.sched_getaffinity(0))
    disk = shutil.disk_usage(OUT)
    return [
        f"machine: {cpu}, {cores} cores usable (os.cpu_count {os.cpu_count()}), "
        f"{mem_kib / (1 << 20):.1f} GiB RAM, {disk.free / GIB:.0f} GiB free disk",
        f"system:  {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}",
        f"load:    {load_average()} (1, 5, 15 min) at the start: other work on the machine shares "
        "its cores with the bench",
    ]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def git_head() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()[:90]


# ----------------------------------------------------------------------------------------------
# child processes: wall time, CPU time and peak RSS from wait4


@dataclass
class Run:
    seconds: float
    returncode: int
    cpu_seconds: float
    maxrss_bytes: int
    timed_out: bool
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _vm_hwm(pid: int) -> int:
    """Peak RSS of a live process (its VmHWM), 0 when it is gone."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run_child(
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> Run:
    """Run ``argv`` to completion (or until ``timeout``), output to ``log_path``.

    Peak RSS is the child's VmHWM, polled every 20 ms: ``ru_maxrss`` from wait4 would report this
    (large) parent's RSS, which a forked child carries until it execs.
    """
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    with open(log_path, "wb") as out:
        began = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=ROOT,  # not bench/, where this file would shadow the ingest package
            start_new_session=True,
        )
        deadline = began + timeout
        timed_out = False
        peak = 0
        while True:
            peak = max(peak, _vm_hwm(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        seconds=seconds,
        returncode=proc.returncode,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        maxrss_bytes=peak,
        timed_out=timed_out,
        log_path=log_path,
    )


# ----------------------------------------------------------------------------------------------
# influxd, one fresh instance per measured write path


class Influx(il.Server):
    """A fresh influxd per measured write path (scripts/influxdb_local.Server), with the
    variable names the influx CLI reads too, and its peak memory."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "INFLUX_HOST": self.url, "INFLUX_BUCKET_NAME": self.bucket}

    def peak_rss(self) -> int:
        assert self.proc is not None
        return _vm_hwm(self.proc.pid)


@contextlib.contextmanager
def fresh_influxd(binary: Path, work: Path, name: str) -> Iterator[Influx]:
    data = work / f"influxd-{name}"
    shutil.rmtree(data, ignore_errors=True)
    server = Influx(binary, data, work / f"influxd-{name}.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def flux_scalar(server: Influx, flux: str) -> list[dict[str, str]]:
    resp = httpx.post(
        f"{server.url}/api/v2/query",
        params={"org": server.org},
        headers={
            "Authorization": f"Token {server.token}",
            "Content-Type": "application/vnd.flux",
            "Accept": "application/csv",
        },
        content=flux,
        timeout=600,
    )
    resp.raise_for_status()
    rows = [r for r in csv.reader(io.StringIO(resp.text)) if r and any(r)]
    if not rows:
        return []
    header, out = rows[0], []
    for r in rows[1:]:
        if r == header:
            continue
        out.append(dict(zip(header, r, strict=False)))
    return out


@dataclass
class Stored:
    points: int
    first: str
    last: str


def influx_stored(server: Influx, measurement: str) -> Stored:
    base = (
        f'from(bucket: "{server.bucket}") |> range(start: 1970-01-01T00:00:00Z, '
        f'stop: 2200-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "{measurement}" '
        'and r._field == "value")'
    )
    count = sum(int(r["_value"]) for r in flux_scalar(server, base + " |> count()"))
    first = [r["_time"] for r in flux_scalar(server, base + " |> first()")]
    last = [r["_time"] for r in flux_scalar(server, base + " |> last()")]
    return Stored(count, min(first) if first else "", max(last) if last else "")


# ----------------------------------------------------------------------------------------------
# the points: the CLI's line protocol, and the same points as the peers' inputs


@dataclass
class Points:
    lp: Path
    measurement: str
    tags: dict[str, str]
    count: int
    first_ts: int
    last_ts: int
    ts_npy: Path
    value_npy: Path
    annotated_csv: Path
    pg_csv: Path


def _lines(path: Path, block: int = 8 << 20) -> Iterator[tuple[bytes, NDArray[np.int64]]]:
    """Blocks of whole lines with the offsets of their newlines."""
    carry = b""
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(block)
            data = carry + raw
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if raw else len(data)
            if cut == 0:
                carry = data
                continue
            chunk, carry = data[:cut], data[cut:]
            if not chunk.endswith(b"\n"):
                chunk += b"\n"
            nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10).astype(np.int64)
            yield chunk, nl
            if not raw:
                return


def _gather(buf: NDArray[np.uint8], start: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    """``width`` bytes from each ``start`` (callers make sure they are inside ``buf``)."""
    out: NDArray[np.uint8] = buf[start[:, None] + np.arange(width, dtype=np.int64)[None, :]]
    return out


def _time_of_day() -> NDArray[np.uint8]:
    sod = np.arange(86400, dtype=np.int64)
    parts = [sod // 36000, sod // 3600 % 10, -1, sod // 600 % 6, sod // 60 % 10, -1]
    parts += [sod % 60 // 10, sod % 10]
    digits = np.stack([np.broadcast_to(np.asarray(p), sod.shape) for p in parts], axis=1)
    return np.where(digits < 0, ord(":"), digits + ord("0")).astype(np.uint8)


def _iso_days(first: int, last: int) -> NDArray[np.uint8]:
    epoch = date(1970, 1, 1).toordinal()
    text = "".join(
        date.fromordinal(epoch + d).isoformat() + " " for d in range(first, last + 1)
    ).encode()
    return np.frombuffer(text, dtype=np.uint8).reshape(-1, 11)


def _compress_rows(buf: NDArray[np.uint8]) -> bytes:
    flat = buf.reshape(-1)
    return bytes(flat[flat != 0].tobytes())


def derive_points(lp: Path, work: Path) -> Points:
    """Read the CLI's line protocol (one series, ``value`` field, 10-digit second timestamps)
    and write the same points as .npy arrays, annotated CSV and PostgreSQL CSV, vectorised."""
    with open(lp, "rb") as fh:
        first_line = fh.readline()
    if not first_line:
        raise SystemExit(f"{lp} is empty")
    key, _, rest = first_line.rstrip(b"\n").partition(b" ")
    if not rest.startswith(b"value="):
        raise SystemExit(f"unexpected line protocol (field 'value' expected): {first_line!r}")
    measurement, *tag_parts = key.decode().split(",")
    tags = dict(t.split("=", 1) for t in tag_parts)
    prefix = np.frombuffer(key + b" value=", dtype=np.uint8)
    k = len(prefix)
    vw = 16  # the widest value text accepted

    count = sum(len(nl) for _, nl in _lines(lp))
    ts_path, value_path = work / "points-ts.npy", work / "points-value.npy"
    ts_out = np.lib.format.open_memmap(ts_path, mode="w+", dtype=np.int64, shape=(count,))
    val_out = np.lib.format.open_memmap(value_path, mode="w+", dtype=np.float64, shape=(count,))
    annotated, pg = work / "points-annotated.csv", work / "points-pg.csv"
    tod = _time_of_day()
    tag_cols = ",".join(tags)
    tag_vals = ",".join(tags.values()).encode()
    a_prefix = np.frombuffer(measurement.encode() + b"," + tag_vals + b",", dtype=np.uint8)
    pos = 0
    with open(annotated, "wb") as fa, open(pg, "wb") as fp:
        types = ",".join(["measurement"] + ["tag"] * len(tags) + ["double", "dateTime:number"])
        fa.write(f"#datatype {types}\nm,{tag_cols},value,time\n".encode())
        for chunk, nl in _lines(lp):
            buf = np.frombuffer(chunk, dtype=np.uint8)
            starts = np.concatenate(([0], nl[:-1] + 1))
            n = len(nl)
            if not (_gather(buf, starts, k) == prefix).all():
                raise SystemExit(f"{lp}: not every line is of the series {key.decode()!r}")
            if not (buf[nl - 11] == ord(" ")).all():
                raise SystemExit(f"{lp}: timestamps are not 10-digit seconds")
            digits = _gather(buf, nl - 10, 10).astype(np.int64) - ord("0")
            ts = digits @ (10 ** np.arange(9, -1, -1, dtype=np.int64))
            vlen = nl - 11 - (starts + k)
            if vlen.min() < 1 or vlen.max() > vw:
                raise SystemExit(f"{lp}: value text wider than {vw} bytes")
            raw = _gather(np.concatenate((buf, np.zeros(vw, np.uint8))), starts + k, vw)
            vals = np.where(np.arange(vw)[None, :] < vlen[:, None], raw, 0).astype(np.uint8)
            ts_out[pos : pos + n] = ts
            val_out[pos : pos + n] = vals.view(f"S{vw}").reshape(-1).astype(np.float64)
            pos += n
            # annotated CSV: measurement,tags...,value,time
            width = len(a_prefix) + vw + 1 + 10 + 1
            rows = np.zeros((n, width), dtype=np.uint8)
            rows[:, : len(a_prefix)] = a_prefix
            c = len(a_prefix)
            rows[:, c : c + vw] = vals
            rows[:, c + vw] = ord(",")
            rows[:, c + vw + 1 : c + vw + 11] = digits + ord("0")
            rows[:, -1] = 10
            fa.write(_compress_rows(rows))
            # PostgreSQL CSV: YYYY-MM-DD HH:MM:SS+00,value
            day = ts // 86400
            d0 = int(day.min())
            rows = np.zeros((n, 11 + 8 + 3 + 1 + vw + 1), dtype=np.uint8)
            rows[:, 0:11] = _iso_days(d0, int(day.max()))[day - d0]
            rows[:, 11:19] = tod[ts - day * 86400]
            rows[:, 19:23] = np.frombuffer(b"+00,", dtype=np.uint8)
            rows[:, 23 : 23 + vw] = vals
            rows[:, -1] = 10
            fp.write(_compress_rows(rows))
    ts_out.flush()
    val_out.flush()
    first_ts, last_ts = int(ts_out[0]), int(ts_out[-1])
    del ts_out, val_out
    return Points(
        lp, measurement, tags, count, first_ts, last_ts, ts_path, value_path, annotated, pg
    )


# ----------------------------------------------------------------------------------------------
# child modes: the ceiling and the DataFrame path, timed from inputs already in memory


def lp_batches(path: Path, batch_size: int) -> Iterator[bytes]:
    pending: list[bytes] = []
    have = 0
    for chunk, nl in _lines(path):
        pos = 0
        idx = batch_size - have - 1
        while idx < len(nl):
            end = int(nl[idx]) + 1
            pending.append(chunk[pos:end])
            yield b"".join(pending)
            pending, have, pos = [], 0, end
            idx += batch_size
        if pos < len(chunk):
            pending.append(chunk[pos:])
            have += len(nl) - (idx - batch_size + 1)
    if pending:
        yield b"".join(pending)


def _gzip(body: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)  # the CLI's level
    return c.compress(body) + c.flush()


async def _post_all(
    env: dict[str, str], bodies: list[bytes], concurrency: int, precision: str
) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {
        "Authorization": f"Token {env['INFLUX_TOKEN']}",
        "Content-Encoding": "gzip",
        "Content-Type": "text/plain; charset=utf-8",
    }
    params = {"org": env["INFLUX_ORG"], "bucket": env["INFLUX_BUCKET"], "precision": precision}
    queue = iter(bodies)
    async with httpx.AsyncClient(
        base_url=env["INFLUX_URL"], limits=limits, headers=headers, timeout=300
    ) as client:

        async def worker() -> None:
            for body in queue:  # one shared iterator: each body is sent once
                resp = await client.post("/api/v2/write", params=params, content=body)
                if resp.status_code != 204:
                    raise RuntimeError(f"write refused: {resp.status_code} {resp.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def child_ceiling(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    bodies = [_gzip(b) for b in lp_batches(Path(args.lp), args.batch_size)]
    prepared = time.perf_counter() - began
    env = {k: os.environ[k] for k in ("INFLUX_URL", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN")}
    began = time.perf_counter()
    asyncio.run(_post_all(env, bodies, args.concurrency, "s"))
    seconds = time.perf_counter() - began
    Path(args.result).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "prepare_seconds": prepared,
                "batches": len(bodies),
                "gzip_bytes": sum(map(len, bodies)),
            }
        )
    )
    return 0


def child_dataframe(args: argparse.Namespace) -> int:
    import pandas as pd
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import PointSettings, WriteOptions
    from influxdb_client.domain.write_precision import WritePrecision

    started = time.perf_counter()
    ts = np.load(args.ts)
    values = np.load(args.values)
    index = pd.DatetimeIndex((ts * 1_000_000_000).astype("datetime64[ns]")).tz_localize("UTC")
    frame = pd.DataFrame({"value": values}, index=index)
    del ts, values
    tags = json.loads(args.tags)
    settings = PointSettings(**tags)
    options = WriteOptions(batch_size=args.batch_size, flush_interval=1_000)
    env = os.environ
    Path(args.result).write_text(json.dumps({"prepare_seconds": time.perf_counter() - started}))
    began = time.perf_counter()
    with (
        InfluxDBClient(
            url=env["INFLUX_URL"], token=env["INFLUX_TOKEN"], org=env["INFLUX_ORG"]
        ) as c,
        c.write_api(write_options=options, point_settings=settings) as write_api,
    ):
        write_api.write(
            bucket=env["INFLUX_BUCKET"],
            record=frame,
            data_frame_measurement_name=args.measurement,
            write_precision=WritePrecision.S,
        )
    seconds = time.perf_counter() - began
    prepared = began - started
    Path(args.result).write_text(json.dumps({"seconds": seconds, "prepare_seconds": prepared}))
    return 0


# ----------------------------------------------------------------------------------------------
# PostgreSQL: a private cluster on a loopback port


@contextlib.contextmanager
def private_postgres(work: Path) -> Iterator[tuple[int, str | None]]:
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (bench/setup-peers installs them)")
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="gridts-bench-pg-", dir=work))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if user is not None:
        shutil.chown(base, user)
        shutil.chown(sock, user)
    port = il.free_port()
    run_as = ["runuser", "-u", user, "--"] if user else []
    logfile = base / "postgres.log"
    try:
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock}"
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(logfile),
             "-w", "-t", "60", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield port, user
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def psql(port: int, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
         "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


# ----------------------------------------------------------------------------------------------
# the run


@dataclass
class Result:
    method: str
    rows: int  # points stored (checked), what the method is credited with
    expected: int
    seconds: float
    cpu_seconds: float
    client_rss: int
    server_rss: int = 0
    status: str = "ok"  # ok, partial (stopped at its time limit) or FAIL
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _iso(epoch: int | str) -> str:
    if epoch == "":
        return ""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_stored(stored: Stored, pts: Points, run: Run) -> tuple[str, str]:
    """``ok``, ``partial`` (stopped at its time limit; credited with what it stored) or ``FAIL``."""
    first, last = _iso(pts.first_ts), _iso(pts.last_ts)
    if run.timed_out:
        if stored.points <= pts.count and (not stored.points or stored.first == first):
            return "partial", f"time limit: stored {stored.points:,} of {pts.count:,}"
        return "FAIL", f"time limit; stored {stored.points:,}, from {stored.first}"
    problems = []
    if run.returncode != 0:
        problems.append(f"exit {run.returncode}")
    if stored.points != pts.count:
        problems.append(f"stored {stored.points:,} of {pts.count:,}")
    elif (stored.first, stored.last) != (first, last):
        problems.append(f"time range {stored.first}..{stored.last}, expected {first}..{last}")
    return ("FAIL", "; ".join(problems)) if problems else ("ok", "")


def influx_method(
    name: str,
    argv: list[str],
    *,
    binary: Path,
    pts: Points,
    work: Path,
    timeout: float,
    result_file: Path | None = None,
    env: dict[str, str] | None = None,
    prepare: Callable[[Influx], None] | None = None,
    check: Callable[[Influx], tuple[list[str], dict[str, Any]]] | None = None,
) -> Result:
    """One write path on a fresh influxd: ``prepare`` (untimed) before it, ``argv`` timed,
    then the stored points checked, and ``check``'s problems (and numbers) added."""
    log(f"{name}: fresh influxd, writing {pts.count:,} points ...")
    problems: list[str] = []
    checked: dict[str, Any] = {}
    with fresh_influxd(binary, work, name) as server:
        if prepare is not None:
            prepare(server)
        run = run_child(
            argv,
            log_path=work / f"{name}.log",
            timeout=timeout,
            env={**server.env(), **(env or {})},
        )
        stored = influx_stored(server, pts.measurement)
        if check is not None and not run.timed_out:
            problems, checked = check(server)
        server_rss = server.peak_rss()
    seconds = run.seconds
    extra: dict[str, Any] = {}
    if result_file is not None and result_file.exists():
        # the child's own clock, which leaves out its preparation; when it was stopped at its
        # time limit, the whole run less that preparation
        extra = json.loads(result_file.read_text())
        seconds = (
            run.seconds - float(extra["prepare_seconds"])
            if run.timed_out
            else float(extra["seconds"])
        )
    extra.update(checked)
    status, note = check_stored(stored, pts, run)
    if problems and status != "partial":
        status, note = "FAIL", "; ".join(([note] if note else []) + problems)
    if status != "ok":
        log(f"{name}: {status} {note}\n{run.tail()}")
    return Result(
        name, stored.points, pts.count, seconds, run.cpu_seconds, run.maxrss_bytes, server_rss,
        status, note, extra,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# rollup tiers (issue 10): the buckets made before the load, every tier window checked after it


def make_tier_buckets(server: Influx) -> None:
    """``python -m ingest tiers`` with the default tiers: the operator's set-up step, untimed."""
    done = subprocess.run(
        [PY, "-m", "ingest", "tiers", "--tiers", DEFAULT_TIERS],
        env={**os.environ, **server.env(), "PYTHONPATH": str(ROOT / "src")},
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"python -m ingest tiers failed ({done.returncode}): {done.stderr}")


def tier_field(server: Influx, bucket: str, measurement: str, name: str) -> pd.DataFrame:
    """Every point of one field of one tier bucket: ``start`` (seconds) and ``value`` (text)."""
    flux = (
        f'from(bucket: "{bucket}") |> range(start: 1970-01-01T00:00:00Z, '
        f'stop: 2200-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "{measurement}" '
        f'and r._field == "{name}") |> group() |> sort(columns: ["_time"]) '
        '|> keep(columns: ["_time", "_value"])'
    )
    resp = httpx.post(
        f"{server.url}/api/v2/query",
        params={"org": server.org},
        headers={"Authorization": f"Token {server.token}", "Accept": "application/csv"},
        json={"query": flux, "type": "flux", "dialect": {"annotations": [], "header": True}},
        timeout=600,
    )
    resp.raise_for_status()
    if not resp.text.strip():
        return pd.DataFrame({"start": np.empty(0, np.int64), "value": []})
    frame = pd.read_csv(io.StringIO(resp.text), dtype=str, keep_default_na=False)
    if "error" in frame.columns:
        raise RuntimeError(f"tier query failed: {frame['error'].iloc[0]}")
    start = pd.to_datetime(frame["_time"], utc=True).dt.as_unit("s").astype("int64")
    return pd.DataFrame({"start": start.to_numpy(), "value": frame["_value"].to_numpy()})


def check_tiers(
    server: Influx, pts: Points, tiers: tuple[Tier, ...]
) -> tuple[list[str], dict[str, Any]]:
    """Every window of every tier against the statistics of the points written (computed here
    from the CLI's own line protocol, window by window, straight from the points for each tier):
    the same windows, count/min/max/first/last equal, sum and m2 within 1e-9 relative."""
    times = np.load(pts.ts_npy)
    values = np.load(pts.value_npy)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    problems: list[str] = []
    numbers: dict[str, Any] = {}
    for tier in tiers:
        bucket = tier.bucket(server.bucket)
        want = tier_stats.from_points(times, values, tier.seconds)
        got = {f: tier_field(server, bucket, pts.measurement, f) for f in tier_stats.FIELDS}
        counts = got["count"]["value"].astype(np.int64).to_numpy()
        numbers.setdefault("tiers", []).append({
            "tier": tier.text, "windows": len(counts), "windows_expected": len(want),
            "count_sum": int(counts.sum()), "points": pts.count,
        })  # fmt: skip
        if int(counts.sum()) != pts.count:
            problems.append(f"{tier.text}: count fields sum to {int(counts.sum()):,}")
        bad = []
        for f in tier_stats.FIELDS:
            frame = got[f]
            if len(frame) != len(want) or not np.array_equal(frame["start"], want.start):
                bad.append(f"{f} ({len(frame):,} windows of {len(want):,} or other starts)")
                continue
            mine = getattr(want, f)
            theirs = frame["value"].astype(mine.dtype).to_numpy()
            exact = f not in ("sum", "m2")
            same = (
                np.array_equal(theirs, mine)
                if exact
                else np.allclose(theirs, mine, rtol=1e-9, atol=1e-12)
            )
            if not same:
                bad.append(f)
        if bad:
            problems.append(f"{tier.text}: wrong {', '.join(bad)}")
    return problems, numbers


ISO_SQL = '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\''


def postgres_method(pts: Points, work: Path, timeout: float) -> Result:
    name = "postgres-copy"
    log(f"{name}: private PostgreSQL cluster, COPY of {pts.count:,} rows ...")
    with private_postgres(work) as (port, _user):
        psql(
            port,
            "create table points (time timestamptz not null, value double precision not null);"
            " create index points_time_idx on points (time);",
        )
        run = run_child(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1",
             "-c", f"\\copy points (time, value) from '{pts.pg_csv}' with (format csv)"],
            log_path=work / f"{name}.log", timeout=timeout,
        )  # fmt: skip
        got = psql(
            port,
            "select count(*), extract(epoch from min(time))::bigint,"
            " extract(epoch from max(time))::bigint from points",
        ).split("|")
        version = psql(port, "show server_version")
    stored = Stored(int(got[0]), _iso(got[1]), _iso(got[2]))
    status, note = check_stored(stored, pts, run)
    if status != "ok":
        log(f"{name}: {status} {note}\n{run.tail()}")
    return Result(
        name, stored.points, pts.count, run.seconds, run.cpu_seconds, run.maxrss_bytes, 0, status,
        note, {"server_version": version},
    )  # fmt: skip


def ensure_data(args: argparse.Namespace) -> tuple[Path, int]:
    start_utc = generate.parse_instant(args.start)
    step = generate.parse_step(args.step)
    if args.rows:
        end_utc = start_utc + args.rows * step
    else:
        end_utc = generate.parse_instant(
            (date.fromisoformat(args.start) + timedelta(days=args.days)).isoformat()
        )
    rows = (end_utc - start_utc) // step
    path = OUT / f"freq-{args.step}-{args.start}-{rows}rows-seed{args.seed}.csv"
    if path.exists():
        log(f"data: {path.name} (cached)")
        return path, rows
    log(f"data: generating {rows:,} rows into {path.name} ...")
    began = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    end_iso = datetime.fromtimestamp(end_utc, UTC).isoformat()
    written = generate.write_frequency_file(
        tmp, args.start, end_iso, step, seed=args.seed, crlf=False, gzip=False
    )
    tmp.rename(path)
    took = time.perf_counter() - began
    log(f"data: {written:,} rows, {path.stat().st_size / 1e6:.0f} MB in {took:.1f}s")
    return path, rows


def ensure_peers(no_setup: bool) -> None:
    influx = CACHE_BIN / "influx"
    if (influx.exists() and pg_bindir() is not None) or no_setup:
        return
    log("peers missing: running bench/setup-peers ...")
    subprocess.run(["bash", str(SETUP_PEERS)], check=True)


def fmt_bytes(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n else "n/a"


def report(
    results: list[Result], parse: Result | None, header: list[str], args: argparse.Namespace
) -> str:
    lines = [*header, ""]
    ceiling = next((r for r in results if r.method == "ceiling" and r.status == "ok"), None)
    cols = [
        "method",
        "rows",
        "seconds",
        "rows/s",
        "x ceiling",
        "client CPU s",
        "client RSS",
        "influxd RSS",
        "check",
    ]
    table = []
    for r in results:
        ratio = f"{r.rate / ceiling.rate:.2f}" if ceiling is not None and r.rows else "n/a"
        table.append([
            DESCRIPTIONS.get(r.method, r.method), f"{r.rows:,}", f"{r.seconds:,.1f}",
            f"{r.rate:,.0f}", ratio, f"{r.cpu_seconds:,.1f}", fmt_bytes(r.client_rss),
            fmt_bytes(r.server_rss),
            r.status if r.status == "ok" else f"{r.status}: {r.note}",
        ])  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(cols)]
    sep = "  "
    lines.append(sep.join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    lines.append(sep.join("-" * w for w in widths))
    for row in table:
        lines.append(
            sep.join(
                v.ljust(w) if i in (0, len(cols) - 1) else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    lines.append("")
    if parse is not None:
        per_core = parse.rows / parse.cpu_seconds if parse.cpu_seconds else 0.0
        lines.append(
            f"(b) parse + serialise alone (--dry-run --output /dev/null, one process): "
            f"{parse.rows:,} rows in {parse.seconds:.1f}s wall, {parse.cpu_seconds:.1f}s CPU: "
            f"{parse.rate:,.0f} rows/s wall, {per_core:,.0f} rows per CPU-second; "
            f"peak RSS {fmt_bytes(parse.client_rss)}"
            + ("" if parse.status == "ok" else f" FAIL: {parse.note}")
        )
    cli = next((r for r in results if r.method == "cli"), None)
    if cli is not None and ceiling is not None and parse is not None:
        peers = [r for r in results if r.method not in ("cli", "ceiling")]
        per_core = parse.rows / parse.cpu_seconds if parse.cpu_seconds else 0.0
        targets = [
            ("CLI >= 0.8 x ceiling", cli.status == "ok" and cli.rate >= 0.8 * ceiling.rate,
             f"{cli.rate / ceiling.rate:.2f} x"),
            ("parse+serialise >= 1,000,000 rows/s on one core", per_core >= 1e6,
             f"{per_core:,.0f} rows per CPU-second"),
            ("CLI peak RSS < 1 GB", cli.client_rss < 1e9, fmt_bytes(cli.client_rss)),
            ("CLI faster than every peer", bool(peers) and all(cli.rate > p.rate for p in peers),
             ", ".join(f"{p.method} {cli.rate / p.rate:.1f} x" for p in peers if p.rate)),
        ]  # fmt: skip
        lines.append("targets (issue 3):")
        for what, passed, detail in targets:
            lines.append(f"  [{'met' if passed else 'MISSED'}] {what}: {detail}")
    tiered = next((r for r in results if r.method == "cli-tiers"), None)
    if cli is not None and tiered is not None:
        ok = cli.status == "ok" and tiered.status == "ok" and cli.seconds > 0
        slower = tiered.seconds / cli.seconds if cli.seconds > 0 else float("inf")
        lines.append("targets (issue 10):")
        lines.append(
            f"  [{'met' if ok and slower <= 1.25 else 'MISSED'}] rollups add <= 25 % to ingest "
            f"time: {tiered.seconds:,.1f} s with tiers {DEFAULT_TIERS} against {cli.seconds:,.1f} "
            f"s without, {slower:.2f} x ({(slower - 1) * 100:+.0f} %)"
            + ("" if ok else " (a run failed its check)")
        )
        for got in tiered.extra.get("tiers", []):
            lines.append(
                f"  tier {got['tier']}: {got['windows']:,} windows "
                f"(expected {got['windows_expected']:,}), count fields sum to "
                f"{got['count_sum']:,} of {got['points']:,} points"
            )
    lines.append("")
    lines.append(
        f"settings: batch size {args.batch_size} lines, concurrency {args.concurrency}; "
        "rows/s = points stored / seconds; x ceiling = rows/s over the ceiling's rows/s"
    )
    for note in NOTES:
        lines.append(f"  - {note}")
    return "\n".join(lines)


DESCRIPTIONS = {
    "ceiling": "ceiling: pre-gzipped LP, POST /api/v2/write",
    "cli": "gridts CLI: python -m ingest load",
    "cli-tiers": f"gridts CLI + rollup tiers {DEFAULT_TIERS}",
    "dataframe": "influxdb-client DataFrame write (batching)",
    "influx-write": "influx write (annotated CSV)",
    "postgres-copy": "PostgreSQL COPY (timestamptz, double)",
}
NOTES = [
    "the CLI and the parse-only run are timed whole (interpreter start-up, reading the operator's "
    "CSV in local time, DST, serialising, writing); the ceiling and DataFrame rows start from "
    "gzipped batches / a DataFrame already in memory, influx write and COPY from files already "
    "in UTC: the peers' own conversion work is not counted",
    "client CPU s: user + system seconds of the measured process (psql for COPY; for the ceiling "
    "and the DataFrame path including their untimed preparation, as is their RSS); "
    "client RSS: the measured process's peak (its VmHWM, polled); for COPY that is psql, the "
    "PostgreSQL server's processes are not included; influxd RSS: its VmHWM (a fresh influxd "
    "per method)",
    "partial: a peer stopped at its time limit (--peer-timeout) is credited with the points it "
    "had stored by then, over the time it ran",
    "PostgreSQL: default settings, a btree index on time (a TimescaleDB hypertable has one)",
    "cli-tiers: the same load on a fresh influxd whose tier buckets python -m ingest tiers made "
    "first (untimed), so the load also refreshes the tiers (parsed columns, edge windows from "
    "raw); checked afterwards window by window against the points written: count, min, max, "
    "first, last equal, sum and m2 within 1e-9 relative. The plain cli row has no tier buckets "
    "(its load skips the rollup)",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="Ingest benchmark: CLI vs ceiling vs peers, measured side by side (issue 3).",
    )
    p.add_argument("--days", type=int, default=365, help="days of 1 s data from --start (365)")
    p.add_argument("--rows", type=int, default=0, help="exact number of rows instead of --days")
    p.add_argument("--quick", action="store_true", help="smoke test: one day (86,400 rows)")
    p.add_argument("--start", default="2021-01-01", help="first local day (2021-01-01)")
    p.add_argument("--step", default="1s", help="resolution of the generated series (1s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=5000, help="lines per write (CLI default)")
    p.add_argument("--concurrency", type=int, default=4, help="writes in flight (CLI default)")
    p.add_argument(
        "--methods",
        default="parse,ceiling,cli,cli-tiers,dataframe,influx-write,postgres-copy",
        help="comma-separated subset to run",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="time limit of the gridts CLI runs and the ceiling, seconds (1800)",
    )
    p.add_argument(
        "--peer-timeout",
        type=float,
        default=300,
        help="time limit of each peer, seconds (300); a peer stopped there is credited with the "
        "points it stored by then",
    )
    p.add_argument("--no-setup", action="store_true", help="do not run bench/setup-peers")
    p.add_argument("--keep", action="store_true", help="keep the derived files in bench/out")
    args = p.parse_args(argv)
    if args.quick:
        args.days, args.rows = 1, 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - {"parse", *DESCRIPTIONS}
    if unknown:
        p.error(f"unknown methods: {sorted(unknown)}")

    OUT.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    header = machine()
    ensure_peers(args.no_setup or not ({"influx-write", "postgres-copy"} & set(methods)))
    binary = il.ensure_binary()  # waits on the build lock if another process is building
    pg_bin = pg_bindir() or Path("/nonexistent")
    header += [
        f"influxd: {il.binary_version(binary)}",
        f"influx CLI: {tool_version([str(CACHE_BIN / 'influx'), 'version'])}",
        f"postgres: {tool_version([str(pg_bin / 'postgres'), '--version'])}",
        f"gridts: {git_head()}",
    ]
    for line in header:
        print(line, flush=True)
    data, rows = ensure_data(args)
    header.append(f"data: {data.name}: {rows:,} rows, {data.stat().st_size / 1e6:,.0f} MB")
    print(header[-1], flush=True)

    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = [PY, "-m", "ingest", "load", str(data), "--label", "end", "--step", args.step]
    cli_env = {"PYTHONPATH": str(ROOT / "src")}
    results: list[Result] = []
    parse: Result | None = None
    try:
        if "parse" in methods:
            log("parse: --dry-run --output /dev/null ...")
            run = run_child(
                [*load, "--dry-run", "--output", "/dev/null", "--quiet"],
                log_path=work / "parse.log", timeout=args.timeout, env=cli_env,
            )  # fmt: skip
            ok = run.returncode == 0 and not run.timed_out
            parse = Result(
                "parse", rows if ok else 0, rows, run.seconds, run.cpu_seconds, run.maxrss_bytes,
                status="ok" if ok else "FAIL",
                note="" if ok else f"exit {run.returncode}: {run.tail(5)}",
            )  # fmt: skip
        log("line protocol: --dry-run --output (untimed) ...")
        lp = work / "points.lp"
        run = run_child(
            [*load, "--dry-run", "--output", str(lp), "--quiet"],
            log_path=work / "dry-run.log", timeout=args.timeout, env=cli_env,
        )  # fmt: skip
        if run.returncode != 0:
            raise SystemExit(f"the CLI's dry run failed ({run.returncode}):\n{run.tail()}")
        log("deriving the peers' inputs from the line protocol (untimed) ...")
        pts = derive_points(lp, work)
        if pts.count != rows:
            log(f"WARNING: the CLI's dry run produced {pts.count:,} points for {rows:,} rows")
        common: dict[str, Any] = {
            "binary": binary,
            "pts": pts,
            "work": work,
            "timeout": args.timeout,
        }
        peer = {**common, "timeout": args.peer_timeout}
        me = [PY, str(Path(__file__).resolve())]
        for method in methods:
            if method == "ceiling":
                result = work / "ceiling.json"
                results.append(influx_method(
                    "ceiling",
                    [*me, "_ceiling", "--lp", str(lp), "--batch-size", str(args.batch_size),
                     "--concurrency", str(args.concurrency), "--result", str(result)],
                    result_file=result, **common,
                ))  # fmt: skip
            elif method == "cli":
                results.append(influx_method(
                    "cli",
                    [*load, "--batch-size", str(args.batch_size), "--concurrency",
                     str(args.concurrency), "--quiet"],
                    **common,
                ))  # fmt: skip
            elif method == "cli-tiers":
                results.append(influx_method(
                    "cli-tiers",
                    [*load, "--batch-size", str(args.batch_size), "--concurrency",
                     str(args.concurrency), "--tiers", DEFAULT_TIERS, "--quiet"],
                    prepare=make_tier_buckets,
                    check=functools.partial(check_tiers, pts=pts, tiers=parse_tiers(DEFAULT_TIERS)),
                    **common,
                ))  # fmt: skip
            elif method == "dataframe":
                result = work / "dataframe.json"
                results.append(influx_method(
                    "dataframe",
                    [*me, "_dataframe", "--ts", str(pts.ts_npy), "--values", str(pts.value_npy),
                     "--measurement", pts.measurement, "--tags", json.dumps(pts.tags),
                     "--batch-size", str(args.batch_size), "--result", str(result)],
                    result_file=result, **peer,
                ))  # fmt: skip
            elif method == "influx-write":
                cfg = work / "influx-configs"
                results.append(influx_method(
                    "influx-write",
                    [str(CACHE_BIN / "influx"), "write", "--configs-path", str(cfg),
                     "--precision", "s", "--format", "csv", "--file", str(pts.annotated_csv)],
                    **peer,
                ))  # fmt: skip
            elif method == "postgres-copy":
                results.append(postgres_method(pts, work, args.peer_timeout))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = report(results, parse, header, args)
    print()
    print(text)
    print(
        f"\n(bench took {(time.perf_counter() - began) / 60:.1f} min; "
        f"load average at the end {load_average()})"
    )
    (OUT / "ingest-results.txt").write_text(text + "\n")
    (OUT / "ingest-results.json").write_text(
        json.dumps([asdict(r) for r in ([parse] if parse else []) + results], indent=2)
    )
    failed = [r for r in ([parse] if parse else []) + results if r.status == "FAIL"]
    return 1 if failed else 0


def child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/ingest.py (child)")
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("_ceiling")
    c.add_argument("--lp", required=True)
    c.add_argument("--batch-size", type=int, required=True)
    c.add_argument("--concurrency", type=int, required=True)
    c.add_argument("--result", required=True)
    d = sub.add_parser("_dataframe")
    d.add_argument("--ts", required=True)
    d.add_argument("--values", required=True)
    d.add_argument("--measurement", required=True)
    d.add_argument("--tags", required=True)
    d.add_argument("--batch-size", type=int, required=True)
    d.add_argument("--result", required=True)
    args = p.parse_args(argv)
    return child_ceiling(args) if args.mode == "_ceiling" else child_dataframe(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_ceiling", "_dataframe"):
        raise SystemExit(child_main(sys.argv[1:]))
    raise SystemExit(main())
