"""The backup folder, its manifest, and the check of every file against it.

A backup is one folder under the backup directory, named after the moment it started and its
scope (``20261130T030000Z-full``, ``20261130T030000Z-bucket-grid``)::

    manifest.json          what follows, with size, SHA-256 and counts of every file
    kv.bolt.gz             InfluxDB's KV store (BoltDB), full backups only: holds every token
    sql.sqlite.gz          InfluxDB's SQL store (SQLite), full backups only
    buckets.json           the bucket manifest: buckets, retention policies, shard groups, shards
    shards/<id>.tar.gz     one shard's TSM files as InfluxDB's shard backup API gives them

It is written as ``.partial-<name>`` and renamed when its manifest is on disk, so a folder with
that name and a ``manifest.json`` is a finished backup, and an interrupted one never looks like
one. ``verify`` re-reads every file: size and SHA-256 as recorded, gzip streams complete (their
CRC), tar archives complete, TSM files with their magic number and an index inside the file, the
BoltDB and SQLite headers; anything else is a problem, and a restore refuses to start.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ops.tokens import operators

FORMAT = "gridts-backup"
VERSION = 1
MANIFEST = "manifest.json"
PARTIAL = ".partial-"
NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-\d+)?-(full|bucket-.+)$")

BOLT_MAGIC = 0xED0CDAED
SQLITE_MAGIC = b"SQLite format 3\x00"
TSM_MAGIC = 0x16D116D1
CHUNK = 1 << 20


def now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def safe(name: str) -> str:
    """A bucket name as part of a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "_"


@dataclass
class FileEntry:
    path: str  # relative to the backup folder
    kind: str  # kv, sql, buckets, shard
    bytes: int
    sha256: str
    shard: int | None = None
    bucket_id: str | None = None
    tsm_files: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        if self.shard is not None:
            out |= {"shard": self.shard, "bucketID": self.bucket_id, "tsmFiles": self.tsm_files}
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FileEntry:
        return cls(
            path=str(raw["path"]),
            kind=str(raw["kind"]),
            bytes=int(raw["bytes"]),
            sha256=str(raw["sha256"]),
            shard=int(raw["shard"]) if raw.get("shard") is not None else None,
            bucket_id=str(raw["bucketID"]) if raw.get("bucketID") is not None else None,
            tsm_files=int(raw["tsmFiles"]) if raw.get("tsmFiles") is not None else None,
        )


@dataclass
class Manifest:
    name: str
    created: str
    finished: str
    source: dict[str, str]
    scope: dict[str, str]  # {"kind": "full"} or {"kind": "bucket", "org": .., "bucket": ..}
    files: list[FileEntry]
    buckets: list[dict[str, Any]] = field(default_factory=list)  # summary per bucket
    skipped_shards: list[int] = field(default_factory=list)

    @property
    def full(self) -> bool:
        return self.scope.get("kind") == "full"

    def counts(self) -> dict[str, int]:
        shards = [f for f in self.files if f.kind == "shard"]
        return {
            "buckets": len(self.buckets),
            "shards": len(shards),
            "tsmFiles": sum(f.tsm_files or 0 for f in shards),
            "files": len(self.files),
            "bytes": sum(f.bytes for f in self.files),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "created": self.created,
            "finished": self.finished,
            "source": self.source,
            "scope": self.scope,
            "counts": self.counts(),
            "buckets": self.buckets,
            "skippedShards": self.skipped_shards,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        return cls(
            name=str(raw["name"]),
            created=str(raw["created"]),
            finished=str(raw["finished"]),
            source={str(k): str(v) for k, v in raw["source"].items()},
            scope={str(k): str(v) for k, v in raw["scope"].items()},
            files=[FileEntry.from_json(f) for f in raw["files"]],
            buckets=list(raw.get("buckets") or []),
            skipped_shards=[int(s) for s in raw.get("skippedShards") or []],
        )

    def file(self, kind: str) -> FileEntry | None:
        found = [f for f in self.files if f.kind == kind]
        return found[0] if found else None

    def shard_files(self, bucket_id: str | None = None) -> list[FileEntry]:
        return [
            f
            for f in self.files
            if f.kind == "shard" and (bucket_id is None or f.bucket_id == bucket_id)
        ]


class ManifestError(Exception):
    """No readable manifest: not a backup, or a damaged one."""


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{folder}: no {MANIFEST} (not a finished backup)") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ManifestError(f"{path}: not a gridts backup manifest")
    if raw.get("version") != VERSION:
        raise ManifestError(f"{path}: manifest version {raw.get('version')}, this reads {VERSION}")
    try:
        return Manifest.from_json(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(f"{path}: incomplete manifest ({exc!r})") from exc


def write_manifest(folder: Path, manifest: Manifest) -> None:
    path = folder / MANIFEST
    tmp = folder / (MANIFEST + ".tmp")
    with open(tmp, "w") as out:
        json.dump(manifest.to_json(), out, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    tmp.rename(path)
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingWriter:
    """A binary file that counts and hashes what is written to it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def finished_backups(root: Path) -> list[tuple[Path, Manifest]]:
    """Every finished backup directly under ``root``, oldest first (by start time)."""
    found = []
    if not root.is_dir():
        return []
    for child in root.iterdir():
        if child.name.startswith(PARTIAL) or not has_manifest(child):
            continue
        try:
            found.append((child, read_manifest(child)))
        except ManifestError:
            continue
    return sorted(found, key=lambda item: (item[1].created, item[0].name))


def has_manifest(folder: Path) -> bool:
    """Whether ``folder`` is a directory with a manifest; False for what cannot be looked into
    (a volume's lost+found, owned by root)."""
    try:
        return folder.is_dir() and (folder / MANIFEST).exists()
    except OSError:
        return False


def chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            yield block


# ---- verification -------------------------------------------------------------------------


@dataclass
class Check:
    """What verifying a backup found: problems (empty: sound) and what was read."""

    folder: Path
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def verify(folder: Path, manifest: Manifest, only: list[FileEntry] | None = None) -> Check:
    """Every file of the manifest (or only those given) against its size and SHA-256, and
    read back completely: gzip streams, tar archives, TSM, BoltDB and SQLite headers."""
    check = Check(folder)
    entries = manifest.files if only is None else only
    for entry in entries:
        where = f"{manifest.name}/{entry.path}"
        path = folder / entry.path
        if not path.resolve().is_relative_to(folder.resolve()):
            check.problems.append(f"{where}: outside the backup folder")
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            check.problems.append(f"{where}: missing")
            continue
        if size != entry.bytes:
            what = "truncated" if size < entry.bytes else "longer than recorded"
            check.problems.append(f"{where}: {what} ({size:,} bytes, recorded {entry.bytes:,})")
            continue
        sha = hashlib.sha256()
        for block in chunks(path):
            sha.update(block)
        if sha.hexdigest() != entry.sha256:
            check.problems.append(f"{where}: SHA-256 differs from the manifest (corrupted)")
            continue
        problem = readable(path, entry)
        if problem:
            check.problems.append(f"{where}: {problem}")
            continue
        check.files += 1
        check.bytes += size
    if only is None:
        listed = {f.path for f in manifest.files} | {MANIFEST}
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if path.is_file() and relative not in listed:
                check.problems.append(f"{manifest.name}/{relative}: not in the manifest")
    return check


def readable(path: Path, entry: FileEntry) -> str | None:
    """Why a file cannot be read back as its kind, or None."""
    try:
        if entry.kind == "buckets":
            buckets = json.loads(path.read_bytes())
            return None if isinstance(buckets, list) else "not a list of buckets"
        if entry.kind == "kv":
            with gzip.open(path, "rb") as f:
                kv = f.read()
            if len(kv) < 20 or struct.unpack_from("<I", kv, 16)[0] != BOLT_MAGIC:
                return "not a BoltDB file"
            if not operators(kv):
                return "no active operator token in it (InfluxDB cannot restore it)"
            return None
        if entry.kind == "sql":
            return None if gunzip_head(path, 16) == SQLITE_MAGIC else "not an SQLite file"
        if entry.kind == "shard":
            tsm = tar_tsm_files(path)
            if entry.tsm_files is not None and tsm != entry.tsm_files:
                return f"{tsm} TSM files, recorded {entry.tsm_files}"
            return None
    except (OSError, EOFError, zlib.error, tarfile.TarError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    return f"unknown kind {entry.kind!r}"


def gunzip_head(path: Path, size: int) -> bytes:
    """The first bytes of a gzip file, after reading it all (so that its CRC is checked)."""
    head = b""
    with gzip.open(path, "rb") as f:
        while block := f.read(CHUNK):
            if len(head) < size:
                head += block[: size - len(head)]
    return head


def tar_tsm_files(path: Path) -> int:
    """Reads a gzip'd shard tar to its end; the number of sound TSM files in it."""
    count = 0
    with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as archive:
        for member in archive:
            if not member.isfile():
                continue
            data = archive.extractfile(member)
            if data is None:
                raise ValueError(f"{member.name}: no content")
            head, tail, size = b"", b"", 0
            while block := data.read(CHUNK):
                if len(head) < 5:
                    head += block[: 5 - len(head)]
                tail = (tail + block)[-8:]
                size += len(block)
            if size != member.size:
                raise ValueError(f"{member.name}: {size} of {member.size} bytes")
            if member.name.endswith(".tsm"):
                if len(head) < 5 or struct.unpack(">IB", head) != (TSM_MAGIC, 1):
                    raise ValueError(f"{member.name}: not a TSM file (magic number)")
                index = struct.unpack(">Q", tail)[0] if len(tail) == 8 else size
                if not 5 <= index <= size - 8:
                    raise ValueError(f"{member.name}: TSM index offset {index} outside the file")
                count += 1
    return count
