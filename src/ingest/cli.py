"""``python -m ingest``: load CSV exports into InfluxDB 2.x, generate test files, build tiers.

Exit status: 0 done; 1 InfluxDB unreachable or refusing writes (or, with ``--existing refuse``,
reads); 2 bad input (more rejected rows than ``--max-errors``, an empty, missing or unreadable
file, an unknown dialect, a stored value that ``--existing refuse`` would change) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gridts.cli import positive
from gridts.durations import parse_duration
from gridts.tiers import Tier, parse_tiers
from ingest.dialect import SERIES_NAME, DialectError
from ingest.existing import MODES, CheckError, Existing, Overlap
from ingest.pending import Pending, clear, iso, read_open
from ingest.pipeline import ERRORS_COLUMNS, Options, RejectLog, Shard, SourceResult, run_source
from ingest.rollup import Collector, Influx, RollupError, RollupStats, tier_buckets, widen
from ingest.settings import ConfigError, Settings, load_settings
from ingest.sources import Source, SourceError, open_source
from ingest.timeconv import DEFAULT_ZONE, LABELS
from ingest.writer import Target, WriteError, Writer, gzip_batch

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_OK, EXIT_DATABASE, EXIT_INPUT = 0, 1, 2

LOAD_EXAMPLES = """\
examples (the operator's exports label each value with the END of its interval: --label end,
or every point is stored one step late):
  python -m ingest load Sollfrequenz.csv --label end          # names and units from the header
  python -m ingest load enduse.tsv --series enduse --label end --step 15m
  python -m ingest load https://host/export.csv.gz --label end --max-errors 10 --errors-file bad.csv
  python -m ingest load big.csv --label end --dry-run --output big.lp   # line protocol, no database
  python -m ingest load fixed.csv --label end --existing refuse   # exit 2 if a stored value changes
  python -m ingest load wide.csv --label end --shard 0/2    # and --shard 1/2 in a second process

shards: --shard K/N loads the value columns j (0-based, time column not counted) with
j mod N == K, so N processes (an Indexed Job: ops submit --shards N passes
--shard '$(JOB_INDEX)/N') load one wide file between them, each series in exactly one. Every
shard reads and checks every row, so rows are accepted, rejected and converted (DST, --label
end, the inferred --step) exactly as by one load; a rejected row is rejected by every shard and
listed (stderr, --errors-file) by shard 0 only; every shard counts it for --max-errors and exits
alike. Each shard refreshes the rollup tiers of its own series. Long files cannot be sharded.

stored points: a point is its series, tags and instant; loading one that is stored replaces its
value. Every load reports how many of its points were stored already and how many of those it
changed (summary line, --report). To re-send corrected data on purpose, load the corrected file
as usual and read the count of changed values. To guard against accidents (a wrong file, a wrong
--label or --tz), add --existing refuse: the whole file is compared first, and if any stored
value would change the run exits 2 with nothing written, naming how many and the first one;
identical values pass, so re-running a failed load still completes.

connection: INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_TOKEN (flags override); the token
needs write access, and read access for --existing report/refuse
exit status: 0 ok; 1 database unreachable or refusing writes (or reads, with --existing refuse);
2 bad input or usage, or a stored value that --existing refuse would change
"""


class _Stderr:
    """One-line messages to stderr; the progress bar shares the stream."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    @staticmethod
    def error(msg: str) -> None:
        print(f"ingest: error: {msg}", file=sys.stderr, flush=True)


class _RetryLog:
    """Write retries as warnings on stderr, at most one line per ``every`` seconds (several
    batches are in flight and each retries on its own), shown even with --quiet: a run that
    waits for InfluxDB says so instead of looking slow for no reason."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last = -every
        self._since = 0

    def __call__(self, problem: str, delay: float, attempt: int) -> None:
        with self._lock:
            self._since += 1
            now = time.monotonic()
            if now - self._last < self.every:
                return
            count, self._since, self._last = self._since, 0, now
        print(
            f"ingest: warning: {problem}; retrying in {delay:.1f} s "
            f"(attempt {attempt}; {count} batch retries since the last warning)",
            file=sys.stderr,
            flush=True,
        )


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _series(text: str) -> str:
    if not SERIES_NAME.match(text):
        raise argparse.ArgumentTypeError(f"invalid series name {text!r}: use letters, digits, _.-")
    return text


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r} (IANA name)") from exc
    return text


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value or key in ("unit", "_measurement", "_field"):
        raise argparse.ArgumentTypeError(f"--tag wants KEY=VALUE (not unit), got {text!r}")
    return key, value


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _nonnegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; real defaults shown (not None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The ``load`` command's flags (the other commands parse their own); the defaults that
    come from the environment are read from ``settings``.

    Long: one declaration per flag, in --help order, read top to bottom like the help itself."""
    settings = settings if settings is not None else load_settings()
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Load grid time series from CSV exports into InfluxDB 2.x.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{load,generate,rollup,tiers}"
    )
    load = sub.add_parser(
        "load",
        help="ingest CSV files into InfluxDB",
        description="Ingest CSV exports (one measurement per series, field 'value', tag 'unit').",
        epilog=LOAD_EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    load.add_argument("sources", nargs="+", metavar="SOURCE", help="file, file.gz, - or URL")
    load.add_argument("--series", type=_series, help="series name; default: from the header")
    load.add_argument(
        "--format",
        choices=["auto", "swissgrid", "wide", "long"],
        default="auto",
        help="auto: detected; swissgrid: time and one value column, names and units in the "
        "header; wide: time and one column per series; long: series, time, value",
    )
    load.add_argument(
        "--tz", type=_zone, default=DEFAULT_ZONE, help="IANA zone of local timestamps"
    )
    load.add_argument(
        "--label",
        choices=LABELS,
        default="instant",
        help="what a timestamp marks: the instant itself, or its interval's start or end "
        "(end: the point is stored at the interval start; the operator's exports use end)",
    )
    load.add_argument(
        "--step",
        type=_duration,
        help="interval length, e.g. 15m (end labels; inferred from the first rows when omitted)",
    )
    load.add_argument(
        "--tag",
        type=_tag,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra tag on every point (low cardinality!)",
    )
    load.add_argument("--dry-run", action="store_true", help="print line protocol, no database")
    load.add_argument("--output", type=Path, help="with --dry-run: write line protocol here")
    load.add_argument(
        "--errors-file",
        type=Path,
        help=f"CSV of rejected rows, with a header: {','.join(ERRORS_COLUMNS)} "
        "(text: the row as read, at most 200 characters)",
    )
    load.add_argument(
        "--max-errors",
        type=_nonnegative,
        default=0,
        help="rejected rows allowed before exiting 2 (default 0)",
    )
    load.add_argument(
        "--existing",
        choices=MODES,
        default=settings.ingest_existing,
        help="points already stored at the same series, tags and instant: 'report' writes and "
        "counts them, and how many change value (summary, --report); 'refuse' compares the "
        "whole file first and exits 2 with nothing written if any stored value would change "
        "(identical values pass); 'unchecked' does not read the database (for a token without "
        "read access). The comparison reads only the series and time range the file covers "
        "(default $INGEST_EXISTING or report)",
    )
    load.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="load only the value columns j of each wide file with j mod N == K (0 <= K < N): "
        "N processes load one file between them, each series in exactly one (see shards "
        "below; default $INGEST_SHARD, else the whole file)",
    )
    load.add_argument("--report", type=Path, help="write a JSON summary here")
    load.add_argument("--batch-size", type=positive, default=5000, help="lines per write")
    load.add_argument("--concurrency", type=positive, default=4, help="writes in flight")
    load.add_argument(
        "--retries",
        type=_nonnegative,
        default=6,
        help="retries per batch on 429/5xx/connection errors",
    )
    load.add_argument(
        "--tiers",
        type=_tiers,
        default=settings.ingest_tiers,
        help="rollup tiers to refresh after the raw writes, e.g. 1m,15m,1h; empty: none "
        "(default $INGEST_TIERS or %(default)s; tiers whose buckets do not exist are skipped "
        "with a warning)",
    )
    load.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    load.add_argument("--url", help="InfluxDB URL (default $INFLUX_URL)")
    load.add_argument("--org", help="organisation (default $INFLUX_ORG)")
    load.add_argument("--bucket", help="bucket (default $INFLUX_BUCKET)")
    load.add_argument(
        "--token", help="token with write (and read, for --existing) access (default $INFLUX_TOKEN)"
    )
    sub.add_parser(
        "generate", help="write files in the operator's frequency dialect", add_help=False
    )
    sub.add_parser("rollup", help="(re)build rollup tiers from the raw points", add_help=False)
    sub.add_parser("tiers", help="create the tier buckets, set their retention", add_help=False)
    return parser


def _tiers(text: str) -> tuple[Tier, ...]:
    try:
        return parse_tiers(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _collector(
    target: Target, tiers: tuple[Tier, ...], ui: _Stderr, retries: int
) -> tuple[Collector | None, list[str]]:
    """What refreshes the tiers after the load, None when there are none to refresh (the API
    answers from raw where a tier bucket does not exist, so skipping one is safe); and every
    tier bucket that exists, configured here or not (each gets the load's pending-rollup
    markers: the API must not answer from a tier this load does not refresh)."""
    influx = Influx(target, retries=retries, on_retry=_RetryLog())
    try:
        existing = tier_buckets(influx)
    except RollupError as exc:
        raise WriteError(str(exc)) from exc
    finally:
        influx.close()
    if not tiers:
        return None, sorted(existing)
    missing = [t.bucket(target.bucket) for t in tiers if t.bucket(target.bucket) not in existing]
    present = tuple(t for t in tiers if t.bucket(target.bucket) not in missing)
    if missing and not present:
        # no tiers set up here: the API answers from raw, nothing is stale
        ui.say(f"ingest: no tier buckets ({', '.join(missing)}): tiers not refreshed "
               "(python -m ingest tiers creates them)")  # fmt: skip
    elif missing:
        print(
            f"ingest: warning: tier buckets {', '.join(missing)} do not exist: those tiers are "
            "not refreshed (python -m ingest tiers creates them)",
            file=sys.stderr,
            flush=True,
        )
    return (Collector(present) if present else None), sorted(existing)


def _rollup(
    collector: Collector, pending: Pending | None, target: Target, ui: _Stderr, retries: int
) -> RollupStats:
    """Refresh the tiers of what the load wrote; then clear its markers in those tier buckets,
    and other loads' markers of the same series that this rollup covered: those whose raw
    writes were over (`written`) before it read the raw points, inside the range it rewrote."""
    ui.say(f"ingest: refreshing tiers {','.join(t.text for t in collector.tiers)} "
           f"of {collector.series} series")  # fmt: skip
    influx = Influx(target, retries=retries, on_retry=_RetryLog())
    try:
        buckets = [t.bucket(target.bucket) for t in collector.tiers]
        spans = collector.spans()
        others = {}
        if pending is not None:
            for bucket in buckets:
                others[bucket] = [
                    m
                    for m in read_open(influx, bucket)
                    if m.load != pending.load and m.state == "written" and m.series in spans
                ]
        rolled = collector.finish(influx)
        if rolled.windows_rechecked:
            ui.say(f"ingest: {rolled.windows_rechecked} tier windows changed while rolled up "
                   "(a concurrent load wrote raw points there): rolled up again")  # fmt: skip
        unsettled = {s: (min(a for a, _ in r), max(b for _, b in r))
                     for s, r in rolled.unsettled.items()}  # fmt: skip
        if pending is not None:
            pending.keep_open(unsettled)  # before done: the API stays on raw there
            pending.done(buckets)
            for bucket, found in others.items():
                covered = [m for m in found if m.series not in unsettled
                           and m.within(*widen(*spans[m.series], collector.tiers))]  # fmt: skip
                if clear(influx, bucket, covered):
                    ui.say(f"ingest: cleared {len(covered)} pending-rollup markers of earlier "
                           f"loads in {bucket}")  # fmt: skip
        return rolled
    finally:
        influx.close()


def _warn_pending(pending: Pending | None) -> None:
    """The tier buckets that still do not hold what this load wrote, and how to fill them."""
    if pending is None:
        return
    ranges = pending.still_open()
    if not ranges:
        return
    lo = min(a for a, _ in ranges.values())
    hi = max(b for _, b in ranges.values())
    names = sorted(ranges)
    shown = " ".join(names[:5]) + (f" ... ({len(names)} series)" if len(names) > 5 else "")
    print(
        f"ingest: warning: tiers {', '.join(pending.open_buckets())} do not hold the points "
        f"written in [{iso(lo)}, {iso(hi)}) (series {shown}): the API answers that range from "
        f"raw until python -m ingest rollup --start {iso(lo)} --end {iso(hi)}"
        f"{' --series ' + ' '.join(names) if len(names) <= 5 else ''} (with --tiers naming "
        "every tier) refreshes them",
        file=sys.stderr,
        flush=True,
    )


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _progress(total: int | None, quiet: bool) -> tqdm[NoReturn]:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=quiet or not sys.stderr.isatty(),
        file=sys.stderr,
        dynamic_ncols=True,
    )


class _Spool:
    """A refusing run's batches, gzipped (in threads) into a temporary file while every source
    is compared; replayed to the writer once nothing would change. Disk, not memory: about a
    tenth of the line protocol's size."""

    def __init__(self, concurrency: int) -> None:
        self.file = tempfile.TemporaryFile(prefix="ingest-spool-")  # noqa: SIM115
        self.points_written = 0  # spooled; the writer counts what is stored
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="spool-gzip")
        self._pending: deque[tuple[Future[bytes], int]] = deque()
        self._limit = 2 * concurrency

    def submit(self, body: bytes, lines: int) -> None:
        self._pending.append((self._pool.submit(gzip_batch, body), lines))
        while len(self._pending) > self._limit or (self._pending and self._pending[0][0].done()):
            self._write(*self._pending.popleft())

    def _write(self, fut: Future[bytes], lines: int) -> None:
        payload = fut.result()
        self.file.write(struct.pack("<QQ", len(payload), lines))
        self.file.write(payload)
        self.points_written += lines

    def flush(self) -> None:
        while self._pending:
            self._write(*self._pending.popleft())

    def replay(self) -> Iterator[tuple[bytes, int]]:
        self.flush()
        self.file.seek(0)
        while head := self.file.read(16):
            size, lines = struct.unpack("<QQ", head)
            yield self.file.read(size), lines

    def close(self) -> None:
        for fut, _ in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True)
        self.file.close()


class _DryRunSink:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.points_written = 0

    def submit(self, body: bytes, lines: int) -> None:
        self.out.write(body)
        self.points_written += lines


class _Tick:
    """Progress of one source: the bytes read on the bar, rows and rows/s beside it."""

    def __init__(self, source: Source, bar: tqdm[NoReturn], started: float) -> None:
        self.source, self.bar, self.started = source, bar, started
        self.position = 0  # bytes, as far as the bar shows
        self.rows = 0

    def __call__(self, rows: int) -> None:
        self.rows += rows
        position = self.source.progress()
        self.bar.update(position - self.position)
        self.position = position
        rate = self.rows / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.rows:,} rows, {rate:,.0f} rows/s", refresh=False)


@dataclass
class _Run:
    """One load's parts and outcome, for the exit status, the report and the summary line."""

    args: argparse.Namespace
    shard: Shard | None
    mode: str  # --existing, "unchecked" with --dry-run
    rejects: RejectLog
    started: float
    results: list[SourceResult] = field(default_factory=list)
    target: Target | None = None
    sink: Writer | _DryRunSink | _Spool | None = None
    writer: Writer | None = None
    spool: _Spool | None = None
    existing: Existing | None = None
    collector: Collector | None = None
    pending: Pending | None = None
    rolled: RollupStats | None = None
    refused: bool = False  # --existing refuse found a stored value that would change
    status: int = EXIT_OK

    @property
    def checked(self) -> bool:
        """The stored points were compared (and could be read)."""
        return self.existing is not None and self.existing.unreadable is None

    def new_writer(self, target: Target) -> Writer:
        return Writer(
            target,
            concurrency=self.args.concurrency,
            retries=self.args.retries,
            on_retry=_RetryLog(),
        )


def load(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """``ingest load``: every SOURCE into InfluxDB (line protocol with --dry-run); the exit
    status."""
    settings = settings if settings is not None else load_settings()
    ui = _Stderr(args.quiet)
    try:
        shard = _shard_setting(args.shard, settings)
        _check_usage(args)
    except ConfigError as exc:
        ui.error(str(exc))
        return EXIT_INPUT
    started = time.monotonic()
    with ExitStack() as stack:
        errors_out = (
            stack.enter_context(open(args.errors_file, "w", newline="", encoding="utf-8"))
            if args.errors_file
            else None
        )
        rejects = RejectLog(errors_out, listed=shard is None or shard.lists_rejects)
        mode = "unchecked" if args.dry_run else args.existing
        run = _Run(args, shard, mode, rejects, started)
        try:
            _load_sources(run, stack, ui, settings)
        except (SourceError, DialectError, ConfigError, Overlap) as exc:
            ui.error(str(exc))
            run.status = EXIT_INPUT
        except (WriteError, CheckError, RollupError) as exc:
            ui.error(_database_failure(exc))
            run.status = EXIT_DATABASE
        finally:
            if run.writer is not None and run.status != EXIT_OK:
                with suppress(WriteError):
                    run.writer.close()
            if run.pending is not None and run.status != EXIT_OK:
                # no raw write of this load is in flight any more: its markers say exactly
                # what it covered, so that a re-run or a rollup of that range clears them
                with suppress(RollupError):
                    run.pending.written()
        _warn_pending(run.pending)
    return _finish(run, ui, time.monotonic() - started)


def _shard_setting(flag: Shard | None, settings: Settings) -> Shard | None:
    """--shard, else $INGEST_SHARD; ConfigError when that is not K/N."""
    if flag is not None or not settings.ingest_shard.strip():
        return flag
    try:
        return Shard.parse(settings.ingest_shard)
    except ValueError as exc:
        raise ConfigError(f"INGEST_SHARD={settings.ingest_shard!r}: {exc}") from exc


def _check_usage(args: argparse.Namespace) -> None:
    """ConfigError for flags that do not go together (and an $INGEST_EXISTING argparse did not
    check)."""
    if args.series and len(args.sources) > 1:
        raise ConfigError("--series names one series: give one SOURCE with it")
    if args.output and not args.dry_run:
        raise ConfigError("--output goes with --dry-run")
    if args.existing not in MODES:  # a default from $INGEST_EXISTING skips argparse's check
        raise ConfigError(f"INGEST_EXISTING={args.existing!r}: use one of {', '.join(MODES)}")
    if args.dry_run and args.existing == "refuse":
        raise ConfigError(
            "--existing refuse compares with the database, which --dry-run never reads"
        )


def _database_failure(exc: WriteError | CheckError | RollupError) -> str:
    """What to say when InfluxDB failed the load (exit 1)."""
    if isinstance(exc, WriteError):
        return f"write failed: {exc}"
    if isinstance(exc, CheckError):
        return f"cannot compare with the stored points: {exc}"
    return (
        f"raw points written, rollup tiers not refreshed: {exc}; run the same load again "
        "(idempotent) or python -m ingest rollup for its range"
    )


def _options(args: argparse.Namespace, shard: Shard | None) -> Options:
    return Options(
        series=args.series,
        fmt=args.format,
        tz=args.tz,
        label=args.label,
        step=args.step,
        batch_size=args.batch_size,
        tags=dict(args.tag),
        max_errors=args.max_errors,
        shard=shard,
    )


def _load_sources(run: _Run, stack: ExitStack, ui: _Stderr, settings: Settings) -> None:
    """Load every source into the sink, write what a refusing run spooled, refresh the tiers."""
    args = run.args
    run.sink = sink = _open_sink(run, stack, ui, settings)
    opts = _options(args, run.shard)
    for spec in args.sources:
        source = open_source(spec)
        with _progress(source.size, args.quiet) as bar:
            bar.set_description(Path(source.name).name[:30])
            tick = _Tick(source, bar, run.started)
            run.results.append(
                run_source(
                    source, opts, sink, run.rejects, tick, run.existing, run.collector, run.pending
                )
            )
        if run.shard is not None and not run.results[-1].series:
            ui.say(f"ingest: shard {run.shard.text} owns none of the "
                   f"{run.results[-1].columns} value columns of {source.name}")  # fmt: skip
    _write_spooled(run, ui)
    if run.writer is not None:
        run.writer.close()
    if run.pending is not None:
        run.pending.written()
        if run.refused:  # nothing written
            run.pending.done(run.pending.buckets)
    if run.collector is not None and run.writer is not None and not run.refused:
        assert run.target is not None
        run.rolled = _rollup(run.collector, run.pending, run.target, ui, args.retries)


def _open_sink(
    run: _Run, stack: ExitStack, ui: _Stderr, settings: Settings
) -> Writer | _DryRunSink | _Spool:
    """Where the points go: stdout or --output (--dry-run), a spool (--existing refuse: nothing
    is written before every source has been compared) or the writer; and with a database, the
    tiers to refresh and the comparison with the stored points."""
    args = run.args
    if args.dry_run:
        if not args.output:
            return _DryRunSink(sys.stdout.buffer)
        return _DryRunSink(stack.enter_context(open(args.output, "wb")))
    run.target = target = settings.target(args.url, args.org, args.bucket, args.token)
    sink: Writer | _Spool
    if run.mode == "refuse":
        sink = run.spool = _Spool(args.concurrency)
        stack.callback(run.spool.close)
    else:
        sink = run.writer = run.new_writer(target)
    run.collector, tier_bucket_names = _collector(target, args.tiers, ui, args.retries)
    if tier_bucket_names:
        markers = Influx(target, retries=args.retries, on_retry=_RetryLog())
        stack.callback(markers.close)
        run.pending = Pending(markers, tier_bucket_names, int(time.time()))
    if run.mode != "unchecked":
        run.existing = Existing(
            target,
            strict=run.mode == "refuse",
            drain=run.writer.drain if run.writer is not None else None,
            retries=args.retries,
            on_retry=_RetryLog(),
            on_unreadable=lambda why: print(
                f"ingest: warning: {why}; stored points are not compared "
                "(--existing unchecked silences this)",
                file=sys.stderr,
                flush=True,
            ),
        )
        stack.callback(run.existing.close)
    return sink


def _write_spooled(run: _Run, ui: _Stderr) -> None:
    """--existing refuse: refuse (exit 2) if a stored value would change, else write what was
    spooled, unless the rejects passed --max-errors."""
    spool, existing = run.spool, run.existing
    if spool is None or existing is None:
        return
    if existing.changed:
        run.refused = True
        run.status = EXIT_INPUT
    elif run.rejects.count <= run.args.max_errors:
        spool.flush()
        ui.say(
            f"ingest: {existing.existing:,} points already stored, none changes "
            f"value: writing {spool.points_written:,} points"
        )
        assert run.target is not None
        run.writer = run.new_writer(run.target)
        for payload, lines in spool.replay():
            run.writer.submit(payload, lines, compressed=True)


def _finish(run: _Run, ui: _Stderr, elapsed: float) -> int:
    """Print the rejects and the changed values, apply --max-errors, write the report and the
    summary line; the exit status."""
    args = run.args
    if args.dry_run:
        done = run.status != EXIT_INPUT or run.results
        written = run.sink.points_written if run.sink is not None and done else 0
    else:
        written = run.writer.points_written if run.writer is not None else 0
    _print_rejects(run.rejects, run.shard, args.errors_file)
    if run.status == EXIT_OK and run.rejects.count > args.max_errors:
        ui.error(
            f"{run.rejects.count} rows rejected (more than --max-errors {args.max_errors}); "
            f"writing stopped after {written:,} points"
        )
        run.status = EXIT_INPUT
    _print_changes(run, ui)
    summary = _summary(run, written, elapsed)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    ui.say(_summary_line(run, summary, elapsed))
    return run.status


def _print_rejects(rejects: RejectLog, shard: Shard | None, errors_file: Path | None) -> None:
    if rejects.count and not rejects.listed:
        assert shard is not None
        print(
            f"ingest: {rejects.count:,} rows rejected, listed by shard 0/{shard.count} "
            "(every shard reads every row)",
            file=sys.stderr,
        )
    elif rejects.count:
        for src, r in rejects.kept:
            print(f"{src}:{r.line}: {r.reason}", file=sys.stderr)
        if rejects.count > len(rejects.kept):
            more = rejects.count - len(rejects.kept)
            where = f" (all in {errors_file})" if errors_file else ""
            print(f"... and {more} more rejected rows{where}", file=sys.stderr)


def _print_changes(run: _Run, ui: _Stderr) -> None:
    """Stored values that were (or, refused, would have been) replaced by other values."""
    existing = run.existing
    if existing is None or not existing.changed:
        return
    first = existing.changes[0].describe()
    if run.refused:
        ui.error(
            f"--existing refuse: {existing.changed:,} of the {existing.existing:,} points "
            f"already stored would change value; nothing written. First: {first}. "
            "To replace them on purpose, run again without --existing refuse"
        )
    else:
        print(
            f"ingest: warning: {existing.changed:,} of the {existing.existing:,} points "
            f"already stored were replaced by other values. First: {first}",
            file=sys.stderr,
            flush=True,
        )


def _summary(run: _Run, written: int, elapsed: float) -> dict[str, Any]:
    """The --report document (one key per line: long for that reason)."""
    existing, writer, collector, rolled = run.existing, run.writer, run.collector, run.rolled
    checked = run.checked
    rows = sum(r.rows_read for r in run.results)
    return {
        "rows_read": rows,
        "points_written": written,
        "rows_rejected": run.rejects.count,
        # a shard's rows_read and rows_rejected are the whole file's (every shard reads every
        # row); its points and series are its own; shard 0 lists the rejected rows
        "shard": run.shard.text if run.shard is not None else None,
        "columns": sum(r.columns for r in run.results),
        "existing_check": run.mode if existing is None or checked else "unreadable",
        "points_existing": existing.existing if existing is not None and checked else None,
        "points_changed": existing.changed if existing is not None and checked else None,
        "changes": [c.as_json() for c in existing.changes] if existing is not None else [],
        "series": [
            {
                "name": s.name,
                "unit": s.unit,
                "first": _iso(s.first),
                "last": _iso(s.last),
                "points": s.points,
                "existing": existing.tally(s.key).existing if existing and checked else None,
                "changed": existing.tally(s.key).changed if existing and checked else None,
            }
            for r in run.results
            for s in r.series
        ],
        "sources": [r.source for r in run.results],
        "seconds": round(elapsed, 3),
        "rows_per_second": round(rows / elapsed, 1) if elapsed > 0 else None,
        "write_retries": writer.retried if writer is not None else 0,
        "check_queries": existing.queries if existing is not None else 0,
        "check_retries": existing.retried if existing is not None else 0,
        "check_seconds": round(existing.seconds, 3) if existing is not None else 0,
        "tiers": [t.text for t in collector.tiers] if collector is not None else [],
        "tier_windows_written": rolled.windows_written if rolled is not None else 0,
        "tier_windows_from_raw": rolled.windows_from_raw if rolled is not None else 0,
        # coarsest windows a concurrent load changed during the rollup, rolled up again
        "tier_windows_rechecked": rolled.windows_rechecked if rolled is not None else 0,
        "exit_status": run.status,
        "dry_run": bool(run.args.dry_run),
    }


def _summary_line(run: _Run, summary: dict[str, Any], elapsed: float) -> str:
    rows, written = summary["rows_read"], summary["points_written"]
    verb = "parsed" if run.args.dry_run else "written"
    rate = rows / max(elapsed, 1e-9)
    retries = summary["write_retries"] + summary["check_retries"]
    retried = f", {retries:,} retries" if retries else ""
    if run.args.dry_run:
        stored = ""
    elif run.existing is None:
        stored = "; stored points not compared (--existing unchecked)"
    elif not run.checked:
        stored = "; stored points not compared (cannot read the bucket)"
    else:
        stored = (
            f"; {run.existing.existing:,} were stored already, "
            f"{run.existing.changed:,} changed value"
        )
    tiered = (
        f"; tiers {','.join(summary['tiers'])}: {run.rolled.windows_written:,} windows"
        if run.rolled is not None
        else ""
    )
    series = f"{len(summary['series'])} series"
    if run.shard is not None:
        series = f"{len(summary['series'])} of {summary['columns']} series (shard {run.shard.text})"
    return (
        f"ingest: {rows:,} rows read, {written:,} points {verb}, {run.rejects.count:,} rejected, "
        f"{series}, {elapsed:.1f} s ({rate:,.0f} rows/s){retried}{stored}{tiered}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "generate":
        from ingest import generate

        return generate.main(argv[1:])
    if argv and argv[0] == "submit":
        print("ingest: submit moved to the operations package: python -m ops submit, with the "
              "same arguments", file=sys.stderr)  # fmt: skip
        return 2
    if argv and argv[0] in ("rollup", "tiers"):
        from ingest import rollup

        return rollup.main(argv)
    settings = load_settings()
    args = build_parser(settings).parse_args(argv)
    return load(args, settings)


if __name__ == "__main__":
    sys.exit(main())
