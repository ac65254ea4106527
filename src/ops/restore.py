"""``python -m ops restore``: a backup onto an empty InfluxDB, or one bucket under a new name.

Every file the restore needs is checked first (size, SHA-256, read back completely): a damaged
backup is refused before anything is sent, so the target is left as it was.

* **Full** (``--full``): the KV store, the SQL store, then every shard. InfluxDB's KV restore
  replaces all metadata (organizations, buckets, users, tokens) and deletes the data of every
  shard it had, so the target must hold no data: a new release or a wiped volume, onboarded or
  not. The restored operator token is the backed-up one; the command goes on with it.
* **One bucket** (``--bucket NAME [--new-bucket NEW]``): creates the bucket on a running
  InfluxDB (the name must be free), with the backed-up retention and shard groups under new
  shard IDs, then sends its shards. If a step fails the new bucket is deleted again.
"""

from __future__ import annotations

import copy
import gzip
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.errors import CorruptBackup, InfluxError, OpsError, UsageError
from ops.influx import Influx, shard_ids
from ops.manifest import (
    MANIFEST,
    FileEntry,
    Manifest,
    ManifestError,
    chunks,
    finished_backups,
    read_manifest,
    verify,
)
from ops.tokens import operators

Say = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Restored:
    backup: str
    mode: str
    buckets: list[str] = field(default_factory=list)
    shards: int = 0
    bytes: int = 0
    operator_token_changed: bool = False


def choose(source: Path, full: bool, bucket: str | None, say: Say) -> tuple[Path, Manifest]:
    """The backup folder ``source``, or under a backup directory the newest finished backup that
    can serve the restore (a full one for --full; one holding the bucket otherwise)."""
    if (source / MANIFEST).exists():
        try:
            return source, read_manifest(source)
        except ManifestError as exc:
            raise CorruptBackup([str(exc)]) from exc
    if not source.is_dir():
        raise UsageError(f"{source}: no such backup or backup directory")
    candidates = [
        (folder, m)
        for folder, m in finished_backups(source)
        if (m.full if full else any(b.get("bucket") == bucket for b in m.buckets))
    ]
    if not candidates:
        what = "full backup" if full else f"backup of bucket {bucket!r}"
        raise UsageError(f"{source}: no finished {what} in this directory")
    folder, manifest = candidates[-1]
    say(f"restore: newest {'full backup' if full else 'backup with ' + str(bucket)}: {folder.name}")
    return folder, manifest


def check_or_refuse(
    folder: Path, manifest: Manifest, only: list[FileEntry] | None, say: Say
) -> None:
    check = verify(folder, manifest, only)
    if check.problems:
        raise CorruptBackup(check.problems)
    say(f"restore: {check.files} files ({check.bytes / 1e6:.1f} MB) verified, nothing written yet")


def token_after_restore(kv_path: Path, token: str, backup_token: str | None) -> str:
    """The token that will be valid once the backup's KV store replaced the target's: the one
    given, when the backup knows it as an operator token, else the backed-up instance's operator
    token given separately. Decided before anything is written."""
    with gzip.open(kv_path, "rb") as f:
        found = operators(f.read())
    if any(a.matches(token) for a in found):
        return token
    if backup_token and any(a.matches(backup_token) for a in found):
        return backup_token
    if backup_token:
        raise UsageError(
            "the token given as the backed-up instance's (INFLUX_BACKUP_TOKEN, "
            "--backup-token-file) is not one of the backup's operator tokens"
        )
    raise UsageError(
        "the token used here is not an operator token of the backup: a full restore replaces "
        "every token with the backed-up instance's, so the restore could not go on after the "
        "metadata. Give that instance's operator token (INFLUX_BACKUP_TOKEN or "
        "--backup-token-file; in the chart: keep, or copy, the backed-up release's admin Secret)"
    )


def data_held(influx: Influx) -> list[str]:
    """Buckets of the target that hold shards (a full restore would delete them)."""
    meta = influx.metadata()
    return [
        f"{b.get('organizationName')}/{b.get('bucketName')} ({len(shard_ids(b))} shards)"
        for b in meta.buckets
        if shard_ids(b)
    ]


def restore_full(
    influx: Influx,
    source: Path,
    force: bool = False,
    backup_token: str | None = None,
    say: Say = _stderr,
) -> Restored:
    folder, manifest = choose(source, True, None, say)
    if not manifest.full:
        raise UsageError(
            f"{manifest.name} is a backup of bucket {manifest.scope.get('bucket')!r}, not a full "
            "one: restore it with --bucket (into a running InfluxDB)"
        )
    kv, sql = manifest.file("kv"), manifest.file("sql")
    if kv is None:
        raise CorruptBackup([f"{manifest.name}: full backup without its KV store"])
    check_or_refuse(folder, manifest, None, say)
    influx.version()
    held = data_held(influx)
    if held and not force:
        raise UsageError(
            f"{influx.url} holds data ({', '.join(held[:5])}): a full restore replaces all "
            "metadata and deletes every shard. Restore onto an empty InfluxDB (a new release, a "
            "wiped volume), or one bucket with --bucket and --new-bucket; --force overwrites"
        )
    after = token_after_restore(folder / kv.path, influx.token, backup_token)
    result = Restored(manifest.name, "full", operator_token_changed=after != influx.token)
    say(f"restore {manifest.name}: KV store ({kv.bytes / 1e6:.1f} MB)")
    influx.restore_kv(chunks(folder / kv.path))
    # From here on the target is no longer what it was: a failure leaves it partly restored.
    try:
        if after != influx.token:
            influx.use_token(after)
            say("restore: continuing with the backed-up instance's operator token")
        if sql is not None:
            say(f"restore {manifest.name}: SQL store")
            influx.restore_sql(chunks(folder / sql.path))
        send_shards(influx, folder, manifest.name, manifest.shard_files(), result, say)
    except OpsError as exc:
        raise type(exc)(
            f"{exc} -- the restore stopped after replacing the metadata: {influx.url} now holds "
            "a partial restore; wipe its data and restore again"
        ) from exc
    result.buckets = [f"{b.get('org')}/{b.get('bucket')}" for b in manifest.buckets]
    return result


def restore_bucket(
    influx: Influx,
    source: Path,
    bucket: str,
    new_bucket: str | None = None,
    org: str | None = None,
    say: Say = _stderr,
) -> Restored:
    """One bucket of a backup onto a running InfluxDB, under its name or ``new_bucket``; the new
    bucket is deleted again if a shard cannot be restored."""
    folder, manifest = choose(source, False, bucket, say)
    summary, buckets_file, shard_files = bucket_files(manifest, bucket)
    check_or_refuse(folder, manifest, [buckets_file, *shard_files], say)
    backed_up = backed_up_bucket(folder, manifest, buckets_file, str(summary.get("bucketID")))
    influx.version()
    target_org = org or str(summary.get("org"))
    name = new_bucket or bucket
    org_id = free_target(influx, target_org, name)
    request = bucket_request(backed_up, name, org_id, target_org, shard_files)
    say(f"restore {manifest.name}: bucket {bucket!r} as {target_org}/{name}")
    new_id, mapping = influx.restore_bucket(request)
    result = Restored(manifest.name, "bucket", [f"{target_org}/{name}"])
    try:
        send_shards(influx, folder, manifest.name, shard_files, result, say, mapping)
    except BaseException as exc:
        undone = delete_again(influx, new_id, name)
        if isinstance(exc, OpsError):
            raise type(exc)(f"{exc} ({undone})") from exc
        raise
    return result


def bucket_files(
    manifest: Manifest, bucket: str
) -> tuple[dict[str, Any], FileEntry, list[FileEntry]]:
    """What a backup holds of ``bucket``: its summary in the manifest, the bucket manifest file
    and the bucket's shard files."""
    entries = [b for b in manifest.buckets if b.get("bucket") == bucket]
    if not entries:
        raise UsageError(f"{manifest.name} holds no bucket {bucket!r}")
    summary = entries[0]
    buckets_file = manifest.file("buckets")
    if buckets_file is None:
        raise CorruptBackup([f"{manifest.name}: no bucket manifest"])
    return summary, buckets_file, manifest.shard_files(str(summary.get("bucketID")))


def backed_up_bucket(
    folder: Path, manifest: Manifest, buckets_file: FileEntry, bucket_id: str
) -> dict[str, Any]:
    """The bucket's entry in the backup's bucket manifest (retention, shard groups, shards)."""
    backed_up: list[dict[str, Any]] = [
        b for b in json.loads((folder / buckets_file.path).read_bytes())
        if str(b.get("bucketID")) == bucket_id
    ]  # fmt: skip
    if not backed_up:
        raise CorruptBackup([f"{manifest.name}/buckets.json: no bucket {bucket_id}"])
    return backed_up[0]


def free_target(influx: Influx, org: str, name: str) -> str:
    """The ID of the organization ``org`` of the target, after checking that it has no bucket
    ``name`` yet."""
    org_id = influx.org_id(org)
    if org_id is None:
        raise UsageError(f"no organization {org!r} in {influx.url} (give --org)")
    if influx.bucket_id(org_id, name) is not None:
        raise UsageError(
            f"bucket {name!r} exists in {org!r}: restore under a new name (--new-bucket), "
            "or delete it first"
        )
    return org_id


def send_shards(
    influx: Influx,
    folder: Path,
    backup: str,
    shards: list[FileEntry],
    result: Restored,
    say: Say,
    mapping: dict[int, int] | None = None,
) -> None:
    """Each shard file into InfluxDB, counted in ``result``: under its own ID (a full restore) or
    under the new ID ``mapping`` gives it (a bucket restored under new shard IDs)."""
    for i, entry in enumerate(shards, 1):
        assert entry.shard is not None
        target, renamed = entry.shard, ""
        if mapping is not None:
            if entry.shard not in mapping:
                raise InfluxError(f"InfluxDB gave no new ID for shard {entry.shard}")
            target, renamed = mapping[entry.shard], f" -> {mapping[entry.shard]}"
        influx.restore_shard(target, chunks(folder / entry.path))
        result.shards += 1
        result.bytes += entry.bytes
        say(
            f"restore {backup}: shard {i}/{len(shards)} id {entry.shard}{renamed}, "
            f"{entry.bytes / 1e6:.1f} MB"
        )


def delete_again(influx: Influx, bucket_id: str, name: str) -> str:
    """Deletes the half-restored bucket; what became of it, for the error message."""
    try:
        influx.delete_bucket(bucket_id)
        return f"bucket {name!r} deleted again"
    except OpsError as cleanup:
        return f"deleting the half-restored bucket {name!r} failed too: {cleanup}"


def bucket_request(
    backed_up: dict[str, Any], name: str, org_id: str, org: str, files: list[FileEntry]
) -> dict[str, Any]:
    """The backed-up bucket manifest under its new name and organization, with only the shards
    the backup holds (a shard gone during the backup is left out, as `influx restore` does)."""
    request = copy.deepcopy(backed_up)
    request["bucketName"] = name
    request["organizationID"] = org_id
    request["organizationName"] = org
    have = {f.shard for f in files}
    for policy in request.get("retentionPolicies") or []:
        for group in policy.get("shardGroups") or []:
            group["shards"] = [s for s in group.get("shards") or [] if int(s["id"]) in have]
    return request
