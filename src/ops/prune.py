"""``python -m ops prune``: old backups deleted by count and by age.

Backups are grouped by scope (full, or one bucket), so that an occasional bucket backup never
pushes a full one out. In each group the newest ``keep`` are kept and those older than
``max_age`` are deleted, but the newest backup of a group is never deleted: when backups fail
for longer than ``max_age`` the last good one is still there. Unfinished folders
(``.partial-*``, an interrupted run) older than a day are deleted too; folders that are not
backups are left alone.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ops.manifest import PARTIAL, finished_backups, now

STALE_PARTIAL = timedelta(days=1)


@dataclass
class Pruned:
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)


def scope_key(scope: dict[str, str]) -> str:
    if scope.get("kind") == "full":
        return "full"
    return f"bucket {scope.get('org')}/{scope.get('bucket')}"


def prune(
    root: Path,
    keep: int | None,
    max_age: timedelta | None,
    dry_run: bool = False,
    moment: datetime | None = None,
) -> Pruned:
    moment = moment or now()
    result = Pruned()
    groups: dict[str, list[tuple[Path, datetime]]] = {}
    for folder, manifest in finished_backups(root):
        created = datetime.fromisoformat(manifest.created.replace("Z", "+00:00"))
        groups.setdefault(scope_key(manifest.scope), []).append((folder, created))
    for members in groups.values():
        newest_first = sorted(members, key=lambda m: (m[1], m[0].name), reverse=True)
        for rank, (folder, created) in enumerate(newest_first):
            too_many = keep is not None and rank >= keep
            too_old = max_age is not None and moment - created > max_age
            if rank > 0 and (too_many or too_old):
                result.deleted.append(folder.name)
                if not dry_run:
                    shutil.rmtree(folder)
            else:
                result.kept.append(folder.name)
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(PARTIAL) and child.is_dir():
                age = time.time() - child.stat().st_mtime
                if age > STALE_PARTIAL.total_seconds():
                    result.partial.append(child.name)
                    if not dry_run:
                        shutil.rmtree(child, ignore_errors=True)
    result.kept.sort()
    result.deleted.sort()
    return result
