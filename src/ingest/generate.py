"""Synthetic grid-frequency files in the operator's dialect (tests, quickstart, benchmarks).

The dialect is the one of the operator's ``Sollfrequenz.csv`` (see ``../shared/data/README.md``)::

    Datum Zeit;A:f_soll_aktiv [Hz]
    Sa. 01.05.21 00:00:30;50
    Sa. 01.05.21 00:01:00;49,99

* ``;``-separated, one header line, LF (or CRLF with ``--crlf``) line ends;
* timestamps ``<weekday>. dd.mm.yy HH:MM:SS`` with German weekday abbreviations, in local wall time
  (default Europe/Zurich) with the DST changes left in. A label marks the END of its interval
  (``--label start`` for the other convention). Across the autumn change the wall-clock labels of
  the repeated hour appear twice, first the summer-time pass, then the winter-time pass; across the
  spring change they jump (``01:59:30`` -> ``03:00:00`` at 30 s);
* values with a decimal comma, no thousands separator and at most three decimals (``50``,
  ``49,99``, ``49,987``).

Time span: the intervals cover ``[start, end)``; with ``--label end`` the first label is
``start + step`` and the last is ``end``, so a file holds ``(end - start) // step`` rows.

Values: the target frequency is 50 Hz, except on whole local days of time correction, when it is
49,99 or 50,01 Hz. A row belongs to the local day in which its interval starts (so the row
labelled ``00:00:00`` belongs to the day before). ``--kind measured`` adds autocorrelated noise of
about 14 mHz standard deviation around that target, rounded to 1 mHz.

Everything is a pure function of the seed, the series' index and the instant (counter-based
hashing, no sequential random state), so the output does not depend on the chunking, and a series
has the same values whether it is written alone or as a column of a wide file. The rows are built
chunk by chunk with numpy byte arithmetic: memory stays bounded (tens of MB) whatever the span.
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import re
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import BinaryIO, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gridts.durations import parse_duration
from gridts.names import check_series_name
from ingest.timeconv import DEFAULT_ZONE
from ingest.timelayout import WEEKDAYS_DE

Kind = Literal["target", "measured"]
Label = Literal["end", "start"]

DEFAULT_SERIES = {"target": "f_soll_aktiv", "measured": "f_ist"}
UNIT = "Hz"
MIN_STEP_S = 1
MAX_STEP_S = 15 * 60
# Share of local days with time correction, half of them slow (49,99), half fast (50,01).
CORRECTION_SHARE = 0.3
# Measured values are clipped to this band (mHz); three digits after the comma at most.
_LO_MHZ = 49_800
_HI_MHZ = 50_200
_VALUE_WIDTH = 6  # "49,987"
_TS_WIDTH = 21  # "Sa. 01.05.21 00:00:30"
_CHUNK_BYTES = 8 << 20

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_M64 = (1 << 64) - 1


# --------------------------------------------------------------------------------------------
# arguments


def parse_step(text: str | int | timedelta) -> int:
    """Whole seconds of a step such as ``1s``, ``30s``, ``1m``, ``15m`` (or an int / timedelta)."""
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
        if seconds != int(seconds):
            raise ValueError(f"step {text} is not a whole number of seconds")
        value = int(seconds)
    elif isinstance(text, int):
        value = text
    else:
        value = parse_duration(text)  # the same grammar as `ingest load --step`
    if not MIN_STEP_S <= value <= MAX_STEP_S:
        raise ValueError(f"step must be between 1s and 15m, got {value}s")
    return value


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def parse_instant(value: str | date | datetime, tz: str | tzinfo = DEFAULT_ZONE) -> int:
    """UTC epoch seconds of a bound: a local date (midnight), a local or an offset ISO instant.

    A local wall time that does not exist (spring gap) or exists twice (autumn) is refused: give
    an offset (``2021-10-31T02:30:00+01:00``) to say which one is meant.
    """
    zone = _zone(tz)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        try:
            dt = (
                datetime.strptime(text, "%Y-%m-%d")
                if _DATE_ONLY.match(text)
                else datetime.fromisoformat(text)
            )
        except ValueError as exc:
            raise ValueError(
                f"invalid date or instant {value!r}: expected YYYY-MM-DD or an ISO 8601 instant"
            ) from exc
    if dt.tzinfo is None:
        first = dt.replace(tzinfo=zone, fold=0)
        second = dt.replace(tzinfo=zone, fold=1)
        if first.utcoffset() != second.utcoffset():
            raise ValueError(
                f"local time {dt.isoformat()} is ambiguous or does not exist in {zone}; "
                "give an explicit UTC offset"
            )
        dt = first
    if dt.microsecond:
        raise ValueError(f"instant {dt.isoformat()} is not a whole second")
    return int(dt.astimezone(UTC).timestamp())


def series_names(
    count: int, kind: Kind = "target", names: Sequence[str] | None = None
) -> list[str]:
    """The given names, or ``f_soll_aktiv`` (``f_ist`` when measured), numbered when several."""
    if names:
        if count not in (1, len(names)):
            raise ValueError(f"{len(names)} series names given for --series-count {count}")
        for name in names:
            check_series_name(name)
        if len(set(names)) != len(names):
            raise ValueError("series names must be unique")
        return list(names)
    if count < 1:
        raise ValueError("--series-count must be at least 1")
    base = DEFAULT_SERIES[kind]
    if count == 1:
        return [base]
    width = len(str(count))
    return [f"{base}_{i:0{width}d}" for i in range(1, count + 1)]


# --------------------------------------------------------------------------------------------
# deterministic values: counter-based hashing (splitmix64)


def _mix_int(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser on each element (uint64 arithmetic wraps, as intended)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _hash(key: int, counter: NDArray[np.int64]) -> NDArray[np.uint64]:
    return _mix(counter.view(np.uint64) + np.uint64(key))


def _uniform(key: int, counter: NDArray[np.int64]) -> NDArray[np.float64]:
    return (_hash(key, counter) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _gaussish(key: int, counter: NDArray[np.int64]) -> NDArray[np.float64]:
    """Roughly standard normal: the sum of three 21-bit uniforms from one hash, rescaled."""
    z = _hash(key, counter)
    mask = np.uint64((1 << 21) - 1)
    total = (z & mask).astype(np.float64)
    total += ((z >> np.uint64(21)) & mask).astype(np.float64)
    total += ((z >> np.uint64(42)) & mask).astype(np.float64)
    return (total * (1.0 / (1 << 21)) - 1.5) * 2.0


def _smooth(key: int, t: NDArray[np.int64], period: int) -> NDArray[np.float64]:
    """Noise linearly interpolated between knots every ``period`` seconds (autocorrelated)."""
    k = t // period
    frac = (t - k * period).astype(np.float64) * (1.0 / period)
    a = _gaussish(key, k)
    b = _gaussish(key, k + 1)
    return a + (b - a) * frac


def _series_key(seed: int, index: int) -> int:
    return _mix_int(_mix_int(seed & _M64) ^ (index + 1))


def target_mhz(seed: int, index: int, local_day: NDArray[np.int64]) -> NDArray[np.int64]:
    """Target frequency in mHz per local day (days since 1970-01-01, local calendar)."""
    u = _uniform(_mix_int(_series_key(seed, index) ^ 0xD4E), local_day)
    out = np.full(local_day.shape, 50_000, dtype=np.int64)
    out[u < CORRECTION_SHARE / 2] = 49_990
    out[(u >= CORRECTION_SHARE / 2) & (u < CORRECTION_SHARE)] = 50_010
    return out


def _measured_mhz(
    seed: int, index: int, target: NDArray[np.int64], end_utc: NDArray[np.int64]
) -> NDArray[np.int64]:
    key = _series_key(seed, index)
    noise = 12.0 * _smooth(_mix_int(key ^ 0x900), end_utc, 900)
    noise += 6.0 * _smooth(_mix_int(key ^ 0x60), end_utc, 60)
    noise += 2.0 * _gaussish(_mix_int(key ^ 0x1), end_utc)
    mhz = target + np.rint(noise).astype(np.int64)
    return np.clip(mhz, _LO_MHZ, _HI_MHZ)


# --------------------------------------------------------------------------------------------
# byte tables


def _format_mhz(mhz: int) -> str:
    whole, frac = divmod(mhz, 1000)
    return str(whole) if frac == 0 else f"{whole},{frac:03d}".rstrip("0")


def _value_table() -> NDArray[np.uint8]:
    """Row ``m - _LO_MHZ``: the text of ``m`` mHz, zero-padded to the value width."""
    table = np.zeros((_HI_MHZ - _LO_MHZ + 1, _VALUE_WIDTH), dtype=np.uint8)
    for i in range(table.shape[0]):
        raw = _format_mhz(_LO_MHZ + i).encode()
        table[i, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return table


def _time_table() -> NDArray[np.uint8]:
    """Row ``s``: ``HH:MM:SS`` of second ``s`` of the day."""
    sod = np.arange(86400, dtype=np.int64)
    digits = np.stack(
        [
            sod // 36000,
            sod // 3600 % 10,
            np.full_like(sod, -1),
            sod // 600 % 6,
            sod // 60 % 10,
            np.full_like(sod, -1),
            sod % 60 // 10,
            sod % 10,
        ],
        axis=1,
    )
    return np.where(digits < 0, ord(":"), digits + ord("0")).astype(np.uint8)


def _day_table(first_day: int, last_day: int) -> NDArray[np.uint8]:
    """Row ``d - first_day``: ``Sa. 01.05.21 `` (weekday, date, space) of local day ``d``."""
    epoch = date(1970, 1, 1).toordinal()
    parts = []
    for day in range(first_day, last_day + 1):
        d = date.fromordinal(epoch + day)
        parts.append(f"{WEEKDAYS_DE[d.weekday()]}. {d.day:02d}.{d.month:02d}.{d.year % 100:02d} ")
    text = "".join(parts).encode()
    return np.frombuffer(text, dtype=np.uint8).reshape(-1, 13)


_VALUES: NDArray[np.uint8] | None = None
_TIMES: NDArray[np.uint8] | None = None


def _tables() -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    global _VALUES, _TIMES
    if _VALUES is None or _TIMES is None:
        _VALUES, _TIMES = _value_table(), _time_table()
    return _VALUES, _TIMES


# --------------------------------------------------------------------------------------------
# rows


def _local_seconds(utc: NDArray[np.int64], zone: tzinfo) -> NDArray[np.int64]:
    """Local wall-clock seconds (as if UTC) of UTC epoch seconds, vectorised."""
    if zone is UTC:
        return utc
    idx = pd.DatetimeIndex(utc.astype("datetime64[s]")).tz_localize("UTC").tz_convert(zone)
    wall = idx.tz_localize(None).to_numpy(dtype="datetime64[s]")
    return wall.astype(np.int64)


def iter_rows(
    start_utc: int,
    end_utc: int,
    step: int,
    *,
    series_count: int = 1,
    kind: Kind = "target",
    seed: int = 0,
    crlf: bool = False,
    tz: str | tzinfo = DEFAULT_ZONE,
    label: Label = "end",
    chunk_rows: int | None = None,
    series_offset: int = 0,
) -> Iterator[bytes]:
    """The data rows as encoded byte chunks (no header), ``series_count`` value columns each.

    Series ``j`` of this file uses the values of series index ``series_offset + j``.
    """
    zone = _zone(tz)
    values, times = _tables()
    eol = b"\r\n" if crlf else b"\n"
    width = _TS_WIDTH + series_count * (1 + _VALUE_WIDTH) + len(eol)
    if chunk_rows is None:
        chunk_rows = max(1024, _CHUNK_BYTES // width)
    total = max(0, (end_utc - start_utc) // step)
    eol_bytes = np.frombuffer(eol, dtype=np.uint8)
    for first in range(0, total, chunk_rows):
        n = min(chunk_rows, total - first)
        # Boundaries of the chunk's intervals: b[i] is the start of row i, b[i+1] its end.
        bounds = start_utc + step * np.arange(first, first + n + 1, dtype=np.int64)
        local = _local_seconds(bounds, zone)
        start_day = local[:-1] // 86400  # the day a row's value belongs to
        label_local = local[1:] if label == "end" else local[:-1]
        label_day = label_local // 86400
        first_day = int(min(label_day[0], start_day[0]))
        last_day = int(max(label_day[-1], start_day[-1]))
        days = _day_table(first_day, last_day)

        buf = np.zeros((n, width), dtype=np.uint8)
        buf[:, 0:13] = days[label_day - first_day]
        buf[:, 13:_TS_WIDTH] = times[label_local - label_day * 86400]
        for j in range(series_count):
            index = series_offset + j
            mhz = target_mhz(seed, index, start_day)
            if kind == "measured":
                mhz = _measured_mhz(seed, index, mhz, bounds[1:])
            col = _TS_WIDTH + j * (1 + _VALUE_WIDTH)
            buf[:, col] = ord(";")
            buf[:, col + 1 : col + 1 + _VALUE_WIDTH] = values[mhz - _LO_MHZ]
        buf[:, width - len(eol) :] = eol_bytes
        flat = buf.reshape(-1)
        yield flat[flat != 0].tobytes()


def header(names: Sequence[str], crlf: bool = False) -> bytes:
    cols = ";".join(f"A:{name} [{UNIT}]" for name in names)
    return f"Datum Zeit;{cols}{chr(13) if crlf else ''}\n".encode()


def _open(path: Path, compress: bool) -> gzip_module.GzipFile | BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        # Level 1: the rows are repetitive, so it still compresses ~10x, at several times the speed.
        return gzip_module.open(path, "wb", compresslevel=1)
    return open(path, "wb", buffering=1 << 20)


def write_frequency_file(
    path: str | Path,
    start: str | date | datetime,
    end: str | date | datetime,
    step: str | int | timedelta,
    *,
    series: Sequence[str] = (DEFAULT_SERIES["target"],),
    kind: Kind = "target",
    seed: int = 0,
    crlf: bool = False,
    gzip: bool | None = None,
    tz: str | tzinfo = DEFAULT_ZONE,
    label: Label = "end",
    series_offset: int = 0,
    chunk_rows: int | None = None,
) -> int:
    """Write one file with a value column per name in ``series``; return the data rows written.

    ``start``/``end``: local dates, ISO instants (local without an offset) or datetimes; the rows'
    intervals cover ``[start, end)``. ``gzip`` defaults to whether ``path`` ends in ``.gz``.
    The column ``j`` holds the values of series index ``series_offset + j`` for ``seed``.
    """
    if kind not in ("target", "measured"):
        raise ValueError(f"kind must be target or measured, got {kind!r}")
    if label not in ("end", "start"):
        raise ValueError(f"label must be end or start, got {label!r}")
    if not series:
        raise ValueError("at least one series is needed")
    step_s = parse_step(step)
    start_s, end_s = parse_instant(start, tz), parse_instant(end, tz)
    if end_s <= start_s:
        raise ValueError("end must be after start")
    out = Path(path)
    compress = out.suffix == ".gz" if gzip is None else gzip
    rows = 0
    with _open(out, compress) as fh:
        fh.write(header(series, crlf))
        for chunk in iter_rows(
            start_s,
            end_s,
            step_s,
            series_count=len(series),
            kind=kind,
            seed=seed,
            crlf=crlf,
            tz=tz,
            label=label,
            chunk_rows=chunk_rows,
            series_offset=series_offset,
        ):
            fh.write(chunk)
            rows += chunk.count(b"\n")
    return rows


# --------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    """The generate command's flags.

    Long: one declaration per flag, in --help order."""
    p = argparse.ArgumentParser(
        prog="python -m ingest generate",
        description=(
            "Write synthetic grid-frequency series in the operator's dialect "
            "(`Datum Zeit;A:f_soll_aktiv [Hz]`, `Sa. 01.05.21 00:00:30;50`, local time with the "
            "DST changes left in, labels at the end of each interval). Deterministic by --seed; "
            "streamed in chunks, so any span fits in bounded memory."
        ),
        epilog=(
            "examples:\n"
            "  python -m ingest generate --start 2021-05-01 --end 2021-07-01 --step 30s "
            "--out Sollfrequenz.csv\n"
            "  python -m ingest generate --start 2021-01-01 --end 2022-01-01 --step 1s "
            "--kind measured --gzip --out f_ist.csv.gz\n"
            "  python -m ingest generate --start 2021-03-01 --end 2021-11-01 --step 15m "
            "--series-count 20 --out series/   (one <series>.csv per series)\n"
            "  python -m ingest generate --start 2021-03-01 --end 2021-11-01 --step 15m "
            "--series-count 3 --wide --out wide.csv"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--start",
        required=True,
        help="local date (YYYY-MM-DD, midnight) or ISO instant; without an offset it is local time",
    )
    p.add_argument(
        "--end", required=True, help="like --start; exclusive: the last interval ends here"
    )
    p.add_argument("--step", required=True, help="resolution, 1s to 15m: e.g. 1s, 30s, 1m, 15m")
    p.add_argument("--series-count", type=int, default=1, metavar="N", help="number of series (1)")
    p.add_argument(
        "--series",
        default=None,
        metavar="NAME[,NAME...]",
        help="comma-separated series names (default f_soll_aktiv, or f_ist with --kind "
        "measured; numbered _1.._N, zero-padded, when several)",
    )
    p.add_argument(
        "--kind",
        choices=("target", "measured"),
        default="target",
        help="target: 50 Hz, whole days at 49,99/50,01 (default); measured: plus noise, 1 mHz",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--crlf", action="store_true", help="end lines with CRLF (default LF)")
    p.add_argument("--gzip", action="store_true", help="gzip the output (also when OUT ends .gz)")
    p.add_argument(
        "--wide",
        action="store_true",
        help="several series: one file with a value column per series, instead of one file each",
    )
    p.add_argument("--tz", default=DEFAULT_ZONE, help=f"local time zone ({DEFAULT_ZONE})")
    p.add_argument(
        "--label",
        choices=("end", "start"),
        default="end",
        help="a timestamp marks the end (default, the operator's convention) or start of its "
        "interval",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="output file; a directory for several series without --wide (files <series>.csv)",
    )
    p.add_argument("--quiet", action="store_true", help="no summary line on stderr")
    return p


def _file_name(name: str, compress: bool) -> str:
    return f"{name}.csv.gz" if compress else f"{name}.csv"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    try:
        names = series_names(
            args.series_count,
            args.kind,
            [n.strip() for n in args.series.split(",")] if args.series else None,
        )
        out = Path(args.out)
        # (file, its series, index of the first one): one wide file, or one file per series
        jobs: list[tuple[Path, list[str], int]]
        if len(names) == 1 or args.wide:
            path = out / _file_name(names[0], args.gzip) if out.is_dir() else out
            jobs = [(path, names, 0)]
        else:
            if out.exists() and not out.is_dir():
                raise ValueError(f"--out {out} must be a directory for several series")
            jobs = [(out / _file_name(n, args.gzip), [n], i) for i, n in enumerate(names)]
        written: list[tuple[Path, int]] = []
        for path, series, offset in jobs:
            rows = write_frequency_file(
                path,
                args.start,
                args.end,
                args.step,
                series=series,
                gzip=args.gzip or path.suffix == ".gz",
                series_offset=offset,
                kind=args.kind,
                seed=args.seed,
                crlf=args.crlf,
                tz=args.tz,
                label=args.label,
            )
            written.append((path, rows))
    except (ValueError, OSError) as exc:
        print(f"generate: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        seconds = time.perf_counter() - began
        rows = sum(r for _, r in written)
        where = written[0][0] if len(written) == 1 else f"{len(written)} files in {out}"
        print(
            f"generate: {rows:,} rows x {len(names) if args.wide else 1} series to {where} "
            f"in {seconds:.1f}s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
