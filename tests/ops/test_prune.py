"""Pruning by count and age, per scope, never the newest; the CLI's usage errors and help."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.cli import main
from ops.manifest import PARTIAL, Manifest, iso, stamp, write_manifest
from ops.prune import prune
from tests.ops.conftest import ops

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def fake_backup(root: Path, days_ago: float, scope: dict[str, str]) -> str:
    created = NOW - timedelta(days=days_ago)
    kind = "full" if scope["kind"] == "full" else f"bucket-{scope['bucket']}"
    name = f"{stamp(created)}-{kind}"
    folder = root / name
    folder.mkdir(parents=True)
    write_manifest(folder, Manifest(name, iso(created), iso(created), {}, scope, []))
    return name


@pytest.fixture
def backups(tmp_path: Path) -> dict[str, list[str]]:
    full = [fake_backup(tmp_path, d, {"kind": "full"}) for d in (40, 20, 10, 3, 2, 1)]
    grid = [
        fake_backup(tmp_path, d, {"kind": "bucket", "org": "grid", "bucket": "grid"})
        for d in (50, 45)
    ]
    return {"full": full, "grid": grid}


def test_keep_counts_per_scope(tmp_path: Path, backups: dict[str, list[str]]) -> None:
    result = prune(tmp_path, keep=3, max_age=None, moment=NOW)
    assert result.deleted == sorted(backups["full"][:3])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(backups["full"][3:] + backups["grid"])


def test_max_age_never_deletes_the_newest(tmp_path: Path, backups: dict[str, list[str]]) -> None:
    result = prune(tmp_path, keep=None, max_age=timedelta(days=15), moment=NOW)
    # Full: the 40- and 20-day-old ones go. Bucket: both are older, the newest stays.
    assert result.deleted == sorted([*backups["full"][:2], backups["grid"][0]])
    assert backups["grid"][1] in result.kept


def test_count_and_age_together_and_dry_run(tmp_path: Path, backups: dict[str, list[str]]) -> None:
    dry = prune(tmp_path, keep=5, max_age=timedelta(days=15), dry_run=True, moment=NOW)
    assert dry.deleted == sorted([*backups["full"][:2], backups["grid"][0]])
    assert len(list(tmp_path.iterdir())) == 8, "a dry run deletes nothing"


def test_stale_partial_folders_go_fresh_ones_and_strangers_stay(tmp_path: Path) -> None:
    fake_backup(tmp_path, 1, {"kind": "full"})
    stale = tmp_path / f"{PARTIAL}20261101T030000Z-full"
    stale.mkdir()
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    fresh = tmp_path / f"{PARTIAL}20261130T030000Z-full"
    fresh.mkdir()
    stranger = tmp_path / "notes"
    stranger.mkdir()
    result = prune(tmp_path, keep=1, max_age=None, moment=NOW)
    assert result.partial == [stale.name]
    assert fresh.exists()
    assert stranger.exists()


def test_prune_cli_summary(tmp_path: Path, backups: dict[str, list[str]]) -> None:
    done = ops(None, "prune", "--dir", str(tmp_path), "--keep", "1", "--dry-run")
    assert done.code == 0
    assert done.summary["dryRun"] is True
    assert len(done.summary["deleted"]) == 6


@pytest.mark.parametrize(
    "argv",
    [
        ["prune", "--dir", "x"],  # neither --keep nor --max-age
        ["restore", "x", "--full", "--new-bucket", "y"],
        ["restore", "x", "--bucket", "grid", "--force"],
        ["backup", "--dir", "x", "--org", "grid"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_bad_arguments_exit_2_and_help_documents_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["prune", "--dir", "x", "--max-age", "a month"])
    assert exc.value.code == 2
    for argv in (["--help"], ["restore", "--help"], ["backup", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        for code in ("0  done", "1  InfluxDB", "2  usage", "3  a damaged backup"):
            assert code in out, (argv, code)


def test_no_connection_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INFLUX_URL", raising=False)
    monkeypatch.delenv("INFLUX_TOKEN", raising=False)
    assert main(["backup", "--dir", str(tmp_path)]) == 2
    assert "INFLUX_URL and INFLUX_TOKEN" in capsys.readouterr().err


def test_readme_commands_parse_and_exit_codes_match_the_help() -> None:
    """The README's backup section: its `python -m ops` commands are valid, its exit codes are
    the CLI's."""
    import shlex

    from ops.cli import EXIT_STATUS, build_parser
    from tests.ops.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Back up and restore") :]
    section = section[: section.index("\n## ")]
    lines = [line for line in section.splitlines() if ".venv/bin/python -m ops " in line]
    assert len(lines) >= 5
    for line in lines:
        argv = shlex.split(line.split(".venv/bin/python -m ops ", 1)[1], comments=True)
        build_parser().parse_args(argv)
    for code in ("0 done", "1 InfluxDB unreachable", "2 usage", "3 a damaged backup"):
        assert code in " ".join(section.split()), code
    assert "3  a damaged backup" in EXIT_STATUS
    assert "kubectl -n gridts create job --from=cronjob/gridts-restore" in section


def test_an_unreachable_influxdb_is_retried_then_exit_1(tmp_path: Path) -> None:
    """A backup that starts while InfluxDB restarts, or before the node lets a new pod through
    its NetworkPolicy (refused for a moment in the e2e cluster: the backup Job failed three
    times in 0.1 s each), waits for it; after OPS_WAIT_SECONDS it gives up with exit 1."""
    from influxdb_local import free_port

    done = ops(None, "backup", "--dir", str(tmp_path), INFLUX_URL=f"http://127.0.0.1:{free_port()}",
               INFLUX_TOKEN="t", OPS_WAIT_SECONDS="3")  # fmt: skip
    assert done.code == 1
    assert done.stderr.count("not reachable yet") >= 2  # retried with backoff, then gave up
    assert "unreachable for 3s" in str(done.summary["error"])
