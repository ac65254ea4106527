"""``python -m ingest``: load CSV exports into InfluxDB 2.x, generate test files, submit Jobs.

Exit status: 0 done; 1 InfluxDB unreachable or refusing writes; 2 bad input (more rejected rows
than ``--max-errors``, an empty, missing or unreadable file, an unknown dialect) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.dialect import SERIES_NAME, DialectError
from ingest.durations import parse_duration
from ingest.pipeline import Options, RejectLog, SourceResult, run_source
from ingest.sources import SourceError, open_source
from ingest.timeconv import LABELS
from ingest.writer import Target, WriteError, Writer

EXIT_OK, EXIT_DATABASE, EXIT_INPUT = 0, 1, 2

LOAD_EXAMPLES = """\
examples:
  python -m ingest load Sollfrequenz.csv                      # operator export, names from header
  python -m ingest load enduse.tsv --series enduse --label end --step 15m
  python -m ingest load https://host/export.csv.gz --max-errors 10 --errors-file bad.csv
  python -m ingest load big.csv --dry-run --output big.lp     # line protocol, no database

connection: INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_TOKEN (flags override)
exit status: 0 ok, 1 database unreachable or refusing writes, 2 bad input or usage
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Load grid time series from CSV exports into InfluxDB 2.x.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{load,generate,submit}")
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
        "--tz", type=_zone, default="Europe/Zurich", help="IANA zone of local timestamps"
    )
    load.add_argument(
        "--label",
        choices=LABELS,
        default="instant",
        help="what a timestamp marks: the instant itself, or its interval's start or end "
        "(end: the point is stored at the interval start)",
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
    load.add_argument("--errors-file", type=Path, help="CSV of rejected rows: source,line,reason")
    load.add_argument(
        "--max-errors",
        type=_nonnegative,
        default=0,
        help="rejected rows allowed before exiting 2 (default 0)",
    )
    load.add_argument("--report", type=Path, help="write a JSON summary here")
    load.add_argument("--batch-size", type=_positive, default=5000, help="lines per write")
    load.add_argument("--concurrency", type=_positive, default=4, help="writes in flight")
    load.add_argument(
        "--retries",
        type=_nonnegative,
        default=6,
        help="retries per batch on 429/5xx/connection errors",
    )
    load.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    load.add_argument("--url", help="InfluxDB URL (default $INFLUX_URL)")
    load.add_argument("--org", help="organisation (default $INFLUX_ORG)")
    load.add_argument("--bucket", help="bucket (default $INFLUX_BUCKET)")
    load.add_argument("--token", help="token with write access (default $INFLUX_TOKEN)")
    sub.add_parser(
        "generate", help="write files in the operator's frequency dialect", add_help=False
    )
    sub.add_parser("submit", help="start an ingest Job on Kubernetes and follow it", add_help=False)
    return parser


def _target(args: argparse.Namespace) -> Target:
    values = {
        "url": args.url or os.environ.get("INFLUX_URL"),
        "org": args.org or os.environ.get("INFLUX_ORG"),
        "bucket": args.bucket or os.environ.get("INFLUX_BUCKET"),
        "token": args.token or os.environ.get("INFLUX_TOKEN"),
    }
    missing = [f"INFLUX_{k.upper()}" for k, v in values.items() if not v]
    if missing:
        raise DialectError(f"no InfluxDB connection: set {', '.join(missing)} (or the flags)")
    return Target(**{k: str(v) for k, v in values.items()})


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _progress(total: int | None, quiet: bool) -> Any:
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


class _DryRunSink:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.points_written = 0

    def submit(self, body: bytes, lines: int) -> None:
        self.out.write(body)
        self.points_written += lines


def load(args: argparse.Namespace) -> int:
    ui = _Stderr(args.quiet)
    opts = Options(
        series=args.series,
        fmt=args.format,
        tz=args.tz,
        label=args.label,
        step=args.step,
        batch_size=args.batch_size,
        tags=dict(args.tag),
        max_errors=args.max_errors,
    )
    if args.series and len(args.sources) > 1:
        ui.error("--series names one series: give one SOURCE with it")
        return EXIT_INPUT
    if args.output and not args.dry_run:
        ui.error("--output goes with --dry-run")
        return EXIT_INPUT
    started = time.monotonic()
    results: list[SourceResult] = []
    writer: Writer | None = None
    sink: Writer | _DryRunSink
    status = EXIT_OK
    with ExitStack() as stack:
        errors_out = (
            stack.enter_context(open(args.errors_file, "w", newline="", encoding="utf-8"))
            if args.errors_file
            else None
        )
        rejects = RejectLog(errors_out)
        try:
            if args.dry_run:
                out = (
                    stack.enter_context(open(args.output, "wb"))
                    if args.output
                    else sys.stdout.buffer
                )
                sink = _DryRunSink(out)
            else:
                writer = Writer(
                    _target(args),
                    concurrency=args.concurrency,
                    retries=args.retries,
                    on_retry=_RetryLog(),
                )
                sink = writer
            for spec in args.sources:
                source = open_source(spec)
                with _progress(source.size, args.quiet) as bar:
                    bar.set_description(Path(source.name).name[:30])
                    seen = [0, 0]

                    def tick(
                        rows: int, src: Any = source, bar: Any = bar, seen: Any = seen
                    ) -> None:
                        seen[1] += rows
                        pos = src.progress()
                        bar.update(pos - seen[0])
                        seen[0] = pos
                        rate = seen[1] / max(time.monotonic() - started, 1e-9)
                        bar.set_postfix_str(f"{seen[1]:,} rows, {rate:,.0f} rows/s", refresh=False)

                    results.append(run_source(source, opts, sink, rejects, tick))
            if writer is not None:
                writer.close()
        except (SourceError, DialectError) as exc:
            ui.error(str(exc))
            status = EXIT_INPUT
        except WriteError as exc:
            ui.error(f"write failed: {exc}")
            status = EXIT_DATABASE
        finally:
            if writer is not None and status != EXIT_OK:
                with suppress(WriteError):
                    writer.close()
    elapsed = time.monotonic() - started
    written = sink.points_written if status != EXIT_INPUT or results else 0
    rows = sum(r.rows_read for r in results)
    if rejects.count:
        for src, r in rejects.kept:
            print(f"{src}:{r.line}: {r.reason}", file=sys.stderr)
        if rejects.count > len(rejects.kept):
            more = rejects.count - len(rejects.kept)
            where = f" (all in {args.errors_file})" if args.errors_file else ""
            print(f"... and {more} more rejected rows{where}", file=sys.stderr)
    if status == EXIT_OK and rejects.count > args.max_errors:
        ui.error(
            f"{rejects.count} rows rejected (more than --max-errors {args.max_errors}); "
            f"writing stopped after {written:,} points"
        )
        status = EXIT_INPUT
    summary: dict[str, Any] = {
        "rows_read": rows,
        "points_written": written,
        "rows_rejected": rejects.count,
        "series": [
            {
                "name": s.name,
                "unit": s.unit,
                "first": _iso(s.first),
                "last": _iso(s.last),
                "points": s.points,
            }
            for r in results
            for s in r.series
        ],
        "sources": [r.source for r in results],
        "seconds": round(elapsed, 3),
        "rows_per_second": round(rows / elapsed, 1) if elapsed > 0 else None,
        "write_retries": writer.retried if writer is not None else 0,
        "exit_status": status,
        "dry_run": bool(args.dry_run),
    }
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    verb = "parsed" if args.dry_run else "written"
    rate = rows / max(elapsed, 1e-9)
    retried = f", {summary['write_retries']:,} write retries" if summary["write_retries"] else ""
    ui.say(
        f"ingest: {rows:,} rows read, {written:,} points {verb}, {rejects.count:,} rejected, "
        f"{len(summary['series'])} series, {elapsed:.1f} s ({rate:,.0f} rows/s){retried}"
    )
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "generate":
        from ingest import generate

        return generate.main(argv[1:])
    if argv and argv[0] == "submit":
        from ingest import submit  # type: ignore[attr-defined,unused-ignore]

        return int(submit.main(argv[1:]))
    args = build_parser().parse_args(argv)
    return load(args)


if __name__ == "__main__":
    sys.exit(main())
