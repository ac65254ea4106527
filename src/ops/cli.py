"""``python -m ops``: backup, verify, restore and prune InfluxDB backups; submit ingest Jobs.

Progress goes to stderr, one line per step; the summary is one JSON object on stdout (also
when the command fails: ``"ok": false`` with the error and the exit status).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from gridts.cli import positive
from gridts.durations import parse_influx_duration
from ops.backup import run_backup
from ops.errors import EXIT_OK, EXIT_USAGE, CorruptBackup, OpsError, UsageError
from ops.influx import Influx
from ops.manifest import (
    PARTIAL,
    ManifestError,
    finished_backups,
    has_manifest,
    read_manifest,
    verify,
)
from ops.prune import prune
from ops.restore import Restored, restore_bucket, restore_full

EXIT_STATUS = """\
exit status:
  0  done
  1  InfluxDB unreachable or failing (retrying may help)
  2  usage or configuration: bad arguments, no or a refused token (backup and restore need the
     operator token), no such backup or bucket, a target that holds data (full restore) or
     already has the bucket (bucket restore)
  3  a damaged backup: a file missing, truncated, or not matching its SHA-256 or its kind
     (verify; restore refuses such a backup before writing anything)

connection: INFLUX_URL (or --url) and INFLUX_TOKEN (or --token-file): InfluxDB's operator
token, the one made at onboarding (in the chart, the admin Secret's admin-token).
OPS_WAIT_SECONDS (default 60): how long to wait for InfluxDB to answer at all before exit 1.
"""

EXAMPLES = """\
examples:
  python -m ops backup --dir /backups --keep 7 --max-age 30d     # full: metadata + every shard
  python -m ops backup --dir /backups --bucket grid               # one bucket's shards
  python -m ops verify /backups                                  # every backup in the folder
  python -m ops restore /backups --full                          # newest full backup, empty target
  python -m ops restore /backups/20261130T030000Z-full --bucket grid --new-bucket grid_check
  python -m ops prune --dir /backups --keep 7 --max-age 30d --dry-run
"""


def duration(text: str) -> timedelta:
    try:
        return timedelta(seconds=parse_influx_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m ops`.

    Long: one declaration per option and subcommand, with its help text."""
    parser = argparse.ArgumentParser(
        prog="python -m ops",
        description="Back up, verify, restore and prune InfluxDB 2.x backups of gridts, "
        "through InfluxDB's own backup and restore API; start ingest Jobs on Kubernetes.",
        epilog=EXAMPLES + "\n" + EXIT_STATUS,
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help, description=help, epilog=EXIT_STATUS, formatter_class=_Formatter
        )

    def connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="InfluxDB URL (default $INFLUX_URL)")
        p.add_argument(
            "--token-file",
            type=Path,
            help="file holding the operator token (default $INFLUX_TOKEN)",
        )

    def retention(p: argparse.ArgumentParser) -> None:
        p.add_argument("--keep", type=positive, help="keep at most this many backups per scope")
        p.add_argument(
            "--max-age", type=duration, help="delete backups older than this, e.g. 30d (the "
            "newest of each scope is always kept)",
        )  # fmt: skip

    b = command("backup", "a new backup folder: full (metadata and every shard) or one bucket")
    b.add_argument("--dir", type=Path, required=True, help="backup directory (a new folder in it)")
    b.add_argument("--bucket", help="back up only this bucket's data (no metadata stores)")
    b.add_argument("--org", help="organization of --bucket, when the name is in several")
    retention(b)
    connection(b)
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")

    v = command("verify", "check backups against their manifests without restoring")
    v.add_argument("path", type=Path, help="a backup folder, or a directory of backups (all)")
    v.add_argument("--quiet", action="store_true", help="no progress on stderr")

    r = command("restore", "restore a backup: everything onto an empty InfluxDB, or one bucket")
    r.add_argument(
        "source", type=Path, help="a backup folder, or a directory of backups (the newest fitting)"
    )
    mode = r.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full", action="store_true", help="metadata, tokens and every shard")
    mode.add_argument("--bucket", help="only this bucket, created anew (the name must be free)")
    r.add_argument("--new-bucket", help="with --bucket: the name to restore it under")
    r.add_argument("--org", help="with --bucket: the target organization (default: the backup's)")
    r.add_argument(
        "--backup-token-file",
        type=Path,
        help="with --full: the backed-up instance's operator token, when the target's is another "
        "(default $INFLUX_BACKUP_TOKEN)",
    )
    r.add_argument(
        "--force", action="store_true", help="with --full: even onto an InfluxDB holding data, "
        "which the restore deletes",
    )  # fmt: skip
    connection(r)
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = command("prune", "delete old backups by count and age")
    p.add_argument("--dir", type=Path, required=True, help="backup directory")
    retention(p)
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    ls = command("list", "the finished backups in a directory, oldest first")
    ls.add_argument("dir", type=Path, help="backup directory")
    # Handled before this parser (main): listed here for the help only.
    sub.add_parser(
        "submit", help="start an ingest Job on Kubernetes and follow it (--help)", add_help=False
    )
    return parser


def connect(args: argparse.Namespace) -> Influx:
    url = args.url or os.environ.get("INFLUX_URL")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file: {exc}") from exc
    else:
        token = os.environ.get("INFLUX_TOKEN", "")
    missing = [n for n, v in (("INFLUX_URL", url), ("INFLUX_TOKEN", token)) if not v]
    if missing:
        raise UsageError(f"no InfluxDB connection: set {' and '.join(missing)}")
    return Influx(str(url), token)


def backup_token(args: argparse.Namespace) -> str | None:
    if args.backup_token_file is None:
        return os.environ.get("INFLUX_BACKUP_TOKEN") or None
    try:
        return str(args.backup_token_file.read_text().strip()) or None
    except OSError as exc:
        raise UsageError(f"--backup-token-file: {exc}") from exc


def _backup(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    if args.org and not args.bucket:
        raise UsageError("--org goes with --bucket")
    with connect(args) as influx:
        folder, manifest = run_backup(influx, args.dir, args.bucket, args.org, say)
    out: dict[str, Any] = {
        "backup": str(folder),
        "name": manifest.name,
        "scope": manifest.scope,
        "counts": manifest.counts(),
        "skippedShards": manifest.skipped_shards,
    }
    say(
        f"backup {manifest.name}: done, {manifest.counts()['shards']} shards, "
        f"{manifest.counts()['bytes'] / 1e6:.1f} MB"
    )
    if args.keep is not None or args.max_age is not None:
        pruned = prune(args.dir, args.keep, args.max_age)
        out["pruned"] = pruned.deleted + pruned.partial
        for name in out["pruned"]:
            say(f"prune: deleted {name}")
    return out


def _verify(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    path: Path = args.path
    if (path / "manifest.json").exists():
        try:
            targets = [(path, read_manifest(path))]
        except ManifestError as exc:
            raise CorruptBackup([str(exc)]) from exc
    elif path.is_dir():
        targets = finished_backups(path)
        broken = [
            c.name
            for c in path.iterdir()
            if not c.name.startswith(PARTIAL) and has_manifest(c)
            and c.name not in {t[0].name for t in targets}
        ]  # fmt: skip
        if broken:
            raise CorruptBackup([f"{name}: unreadable manifest" for name in broken])
        if not targets:
            raise UsageError(f"{path}: no finished backups")
    else:
        raise UsageError(f"{path}: no such backup or backup directory")
    results, problems = [], []
    for folder, manifest in targets:
        check = verify(folder, manifest)
        state = "sound" if not check.problems else f"{len(check.problems)} problems"
        say(f"verify {manifest.name}: {check.files} files, {check.bytes / 1e6:.1f} MB, {state}")
        for problem in check.problems:
            say(f"verify {problem}")
        problems += check.problems
        results.append(
            {
                "name": manifest.name,
                "scope": manifest.scope,
                "counts": manifest.counts(),
                "ok": not check.problems,
                "problems": check.problems,
            }
        )
    if problems:
        raise CorruptBackup(problems)
    return {"backups": results}


def _restore(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    if args.new_bucket and not args.bucket:
        raise UsageError("--new-bucket goes with --bucket")
    if args.org and not args.bucket:
        raise UsageError("--org goes with --bucket")
    if args.backup_token_file and not args.full:
        raise UsageError("--backup-token-file goes with --full")
    if args.force and not args.full:
        raise UsageError("--force goes with --full")
    with connect(args) as influx:
        result: Restored
        if args.full:
            result = restore_full(influx, args.source, args.force, backup_token(args), say)
        else:
            result = restore_bucket(
                influx, args.source, args.bucket, args.new_bucket, args.org, say
            )
    say(f"restore {result.backup}: done, {result.shards} shards into {', '.join(result.buckets)}")
    return {
        "backup": result.backup,
        "mode": result.mode,
        "buckets": result.buckets,
        "shards": result.shards,
        "bytes": result.bytes,
        "operatorTokenChanged": result.operator_token_changed,
    }


def _prune(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    if args.keep is None and args.max_age is None:
        raise UsageError("prune needs --keep or --max-age")
    result = prune(args.dir, args.keep, args.max_age, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for name in result.deleted + result.partial:
        say(f"prune: {verb} {name}")
    return {"deleted": result.deleted, "partial": result.partial, "kept": result.kept,
            "dryRun": args.dry_run}  # fmt: skip


def _list(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    return {
        "backups": [
            {"name": m.name, "created": m.created, "scope": m.scope, "counts": m.counts()}
            for _, m in finished_backups(args.dir)
        ]
    }


COMMANDS = {
    "backup": _backup,
    "verify": _verify,
    "restore": _restore,
    "prune": _prune,
    "list": _list,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "submit":  # streams a Job's logs: no JSON summary
        from ops import submit

        return submit.main(argv[1:])
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)

    def say(msg: str) -> None:
        if not quiet:
            print(f"[ops] {msg}", file=sys.stderr, flush=True)

    start = time.monotonic()
    summary: dict[str, Any] = {"command": args.command}
    try:
        summary |= COMMANDS[args.command](args, say)
        code = EXIT_OK
    except OpsError as exc:
        code = exc.exit_code
        print(f"ops {args.command}: error: {exc}", file=sys.stderr, flush=True)
        summary |= {"error": str(exc)}
        if isinstance(exc, CorruptBackup):
            summary["problems"] = exc.problems
    except OSError as exc:  # the backup volume: full, read-only, gone
        code = EXIT_USAGE if isinstance(exc, PermissionError) else 1
        print(f"ops {args.command}: error: {exc}", file=sys.stderr, flush=True)
        summary |= {"error": f"{type(exc).__name__}: {exc}"}
    summary |= {
        "ok": code == EXIT_OK,
        "exitCode": code,
        "seconds": round(time.monotonic() - start, 3),
    }
    print(json.dumps(summary), flush=True)
    return code
