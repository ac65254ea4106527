"""``python -m ops backup``: metadata and every shard (or one bucket's) into a new folder.

Order, as ``influx backup`` does it: the metadata first (KV store, SQL store and the bucket
manifest, taken together under InfluxDB's read lock), then each shard of the buckets wanted, one
after the other, each a snapshot of that shard at that moment. Points written while a backup runs
may or may not be in it (each shard is cut at its own moment, and shards created after the
metadata are not in it); every point is either whole in it or absent, so re-running the ingests
of that time after a restore completes the data exactly (writes are idempotent, ADR 0010).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ops.errors import UsageError
from ops.influx import Influx, Metadata, shard_ids
from ops.manifest import (
    PARTIAL,
    FileEntry,
    HashingWriter,
    Manifest,
    fsync_dir,
    iso,
    now,
    safe,
    stamp,
    tar_tsm_files,
    write_manifest,
)

Say = Callable[[str], None]


def write_file(folder: Path, relative: str, kind: str, data: bytes, compress: bool) -> FileEntry:
    path = folder / relative
    with open(path, "wb") as raw:
        out = HashingWriter(raw)
        if compress:
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(data)
        else:
            out.write(data)
        raw.flush()
        os.fsync(raw.fileno())
    return FileEntry(relative, kind, out.size, out.sha.hexdigest())


def backup_shard(influx: Influx, folder: Path, shard_id: int, bucket_id: str) -> FileEntry | None:
    """One shard's snapshot as shards/<id>.tar.gz, or None when InfluxDB no longer has it."""
    relative = f"shards/{shard_id}.tar.gz"
    path = folder / relative
    with influx.shard(shard_id) as answer:
        if answer is None:
            return None
        encoding, body = answer
        with open(path, "wb") as raw:
            out = HashingWriter(raw)
            if encoding == "gzip":
                for block in body:
                    out.write(block)
            elif encoding in ("", "identity"):
                with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz:
                    for block in body:
                        gz.write(block)
            else:
                raise UsageError(f"shard {shard_id}: unexpected Content-Encoding {encoding!r}")
            raw.flush()
            os.fsync(raw.fileno())
    tsm = tar_tsm_files(path)  # reads it back: a cut stream fails here, not at restore time
    return FileEntry(relative, "shard", out.size, out.sha.hexdigest(), shard_id, bucket_id, tsm)


def select(
    buckets: list[dict[str, Any]], bucket: str | None, org: str | None
) -> list[dict[str, Any]]:
    chosen = [
        b
        for b in buckets
        if (bucket is None or b.get("bucketName") == bucket)
        and (org is None or b.get("organizationName") == org)
    ]
    if bucket is not None and not chosen:
        names = sorted(f"{b.get('organizationName')}/{b.get('bucketName')}" for b in buckets)
        raise UsageError(f"no bucket {bucket!r}{f' in {org!r}' if org else ''}; there are {names}")
    if bucket is not None and len(chosen) > 1:
        raise UsageError(f"bucket {bucket!r} exists in several organizations: give --org")
    return chosen


def run_backup(
    influx: Influx,
    root: Path,
    bucket: str | None = None,
    org: str | None = None,
    say: Say | None = None,
) -> tuple[Path, Manifest]:
    """A new finished backup folder under ``root`` and its manifest."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    version = influx.version()
    started = now()
    root.mkdir(parents=True, exist_ok=True)
    name = free_name(root, started, bucket)
    partial = root / f"{PARTIAL}{name}"
    (partial / "shards").mkdir(parents=True)
    try:
        say(f"backup {name}: metadata of {influx.url} (InfluxDB {version})")
        meta = influx.metadata()
        chosen = select(meta.buckets, bucket, org)
        files = write_metadata(partial, meta, chosen, full=bucket is None)
        shards, skipped = backup_shards(influx, partial, name, chosen, say)
        manifest = Manifest(
            name=name,
            created=iso(started),
            finished=iso(now()),
            source={"url": influx.url, "influxdbVersion": version},
            scope=backup_scope(bucket, chosen),
            files=files + shards,
            buckets=bucket_summary(chosen),
            skipped_shards=skipped,
        )
        final = publish(root, partial, manifest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final, manifest


def free_name(root: Path, started: datetime, bucket: str | None) -> str:
    """The backup's folder name: its start and scope (``20261130T030000Z-full``), with a counter
    after the start when that name is taken under ``root``, finished or partial."""
    name = f"{stamp(started)}-" + ("full" if bucket is None else f"bucket-{safe(bucket)}")
    suffix = 1
    while (root / name).exists() or (root / f"{PARTIAL}{name}").exists():
        suffix += 1
        name = f"{stamp(started)}-{suffix}-" + name.split("-", 1)[1]
    return name


def backup_scope(bucket: str | None, chosen: list[dict[str, Any]]) -> dict[str, str]:
    """The manifest's scope: full, or the one bucket and the organization it was found in."""
    if bucket is None:
        return {"kind": "full"}
    return {"kind": "bucket", "bucket": bucket, "org": str(chosen[0].get("organizationName"))}


def bucket_summary(chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's summary of each bucket backed up: names, IDs and shard IDs."""
    return [
        {
            "org": b.get("organizationName"),
            "orgID": b.get("organizationID"),
            "bucket": b.get("bucketName"),
            "bucketID": b.get("bucketID"),
            "shards": shard_ids(b),
        }
        for b in chosen
    ]


def write_metadata(
    folder: Path, meta: Metadata, chosen: list[dict[str, Any]], full: bool
) -> list[FileEntry]:
    """The metadata files: the KV and SQL stores (full backups only) and the bucket manifest of
    the chosen buckets."""
    files: list[FileEntry] = []
    if full:
        # Only full backups keep the metadata stores: they hold every token in clear text.
        files.append(write_file(folder, "kv.bolt.gz", "kv", meta.kv, compress=True))
        if meta.sql is not None:
            files.append(write_file(folder, "sql.sqlite.gz", "sql", meta.sql, compress=True))
    buckets = json.dumps(chosen, indent=1).encode()
    files.append(write_file(folder, "buckets.json", "buckets", buckets, compress=False))
    return files


def backup_shards(
    influx: Influx, folder: Path, name: str, chosen: list[dict[str, Any]], say: Say
) -> tuple[list[FileEntry], list[int]]:
    """Every shard of the chosen buckets, one after the other: the files written, and the IDs of
    the shards InfluxDB no longer had (skipped)."""
    wanted = [(b, shard_id) for b in chosen for shard_id in shard_ids(b)]
    files: list[FileEntry] = []
    skipped: list[int] = []
    done_bytes = 0
    for i, (b, shard_id) in enumerate(wanted, 1):
        entry = backup_shard(influx, folder, shard_id, str(b.get("bucketID")))
        if entry is None:
            skipped.append(shard_id)
            say(f"backup {name}: shard {shard_id} is gone (retention or deletion), skipped")
            continue
        files.append(entry)
        done_bytes += entry.bytes
        say(
            f"backup {name}: shard {i}/{len(wanted)} id {shard_id} of "
            f"{b.get('organizationName')}/{b.get('bucketName')}: {entry.tsm_files} TSM "
            f"files, {entry.bytes / 1e6:.1f} MB ({done_bytes / 1e6:.1f} MB so far)"
        )
    return files, skipped


def publish(root: Path, partial: Path, manifest: Manifest) -> Path:
    """The manifest written last, then the partial folder renamed to the backup's name: from
    then on it is a finished backup. Its final path."""
    fsync_dir(partial / "shards")
    write_manifest(partial, manifest)
    final = root / manifest.name
    partial.rename(final)
    fsync_dir(root)
    return final


def timed(start: float) -> float:
    return round(time.monotonic() - start, 3)
