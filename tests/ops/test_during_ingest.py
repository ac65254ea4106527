"""A backup taken while an ingest writes (issue 13): restored, it holds part of the file, every
point whole; re-running the same ingest completes it exactly (writes are idempotent, ADR 0010)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.conftest import (
    MakeServer,
    count_of,
    env_of,
    file_totals,
    generate_day,
    ingest,
    ops,
    stats,
)

pytestmark = pytest.mark.timeout(900)


def test_backup_during_an_ingest_then_restore_and_rerun(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server("during")
    server.start()
    day = generate_day(tmp_path / "day.csv", "2021-06-02", "f_during", 2)
    count, total = file_totals(day)
    assert count == 86_400
    # Small sequential batches make the ingest last a few seconds: long enough to back up in.
    writer = subprocess.Popen(
        [sys.executable, "-m", "ingest", "load", str(day), "--label", "end",
         "--batch-size", "100", "--concurrency", "1", "--quiet"],
        env=env_of(server, INFLUX_BUCKET="grid"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while count_of(server, "grid", "f_during") < 5_000:
            assert writer.poll() is None, "the ingest ended before a backup could start"
            assert time.monotonic() < deadline, "the ingest wrote nothing"
            time.sleep(0.05)
        done = ops(server, "backup", "--dir", str(tmp_path / "backups"))
        running_after_backup = writer.poll() is None
        _, err = writer.communicate(timeout=600)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, err.decode()[-2000:]
    assert done.code == 0, done.stderr
    assert running_after_backup, "the ingest ended before the backup did: the case did not happen"
    complete = stats(server)[("grid", "f_during")]
    assert complete[0] == count
    assert math.isclose(complete[1], total, rel_tol=1e-12)

    server.stop()
    shutil.rmtree(server.data_dir)
    server.start()
    restored = ops(server, "restore", str(tmp_path / "backups"), "--full")
    assert restored.code == 0, restored.stderr
    partial = stats(server)[("grid", "f_during")]
    print(f"the backup holds {partial[0]:,} of {count:,} points")
    assert 5_000 <= partial[0] < count
    assert partial[2] == complete[2], "the first point is there"
    ingest(server, "grid", str(day), "--label", "end")  # the re-run
    assert stats(server)[("grid", "f_during")] == complete
