"""Two loads racing on a tier window they share, against the real influxd (issue 10, ADR 0014
addendum "concurrent writers of a tier window").

Two adjacent files meet inside a tier window W. The load that rolls up W from an older view of
raw is paused by the fault proxy (tests/ingest/proxy.py, a `pause` rule: held, then forwarded)
at its first tier write, after every read of its rollup; the other load runs whole in that
pause (raw writes, rollup, markers cleared), then the paused write goes on: the stale W lands
last. Variants: the stale writer holds the earlier file (its end edge) or the later one (its
start edge); the files meet mid-minute (1 m, 15 m and 1 h windows shared), on a minute (15 m and
1 h) or on a quarter hour (1 h only); the racer's raw writes are only partly in when the stale
writer reads (its count and its points see some of them); the stale writer is a re-run of a file
already loaded, or `ingest rollup`. And a guard: a first run and a re-run of the same file.

After both exit 0 and no marker is open, raw holds both files and every field of every tier
window equals the statistics of the raw points (pandas, tests/ingest/test_rollup_faults.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ingest import rollup
from ingest.generate import main as generate_main
from ingest.pending import read_open
from ingest.rollup import Influx
from tests.conftest import InfluxServer
from tests.ingest.proxy import Request, Rule, running
from tests.ingest.test_rollup import TIERS, write_raw
from tests.ingest.test_rollup_faults import (
    SERIES,
    _env,
    _flags,
    assert_exact,
    combine,
    load,
    load_argv,
    read_csv_points,
    rollup_command,
    tier_write,
    tiered,  # noqa: F401 (a fixture)
)

# Where the two files meet (UTC, the later file's first point); each file spans 25 minutes on
# its side, so both lie in the coarsest windows around the boundary.
BOUNDARIES = {
    "mid-minute": "2021-05-01T10:07:30Z",  # 1 m, 15 m and 1 h windows shared
    "minute": "2021-05-01T10:07:00Z",  # 15 m and 1 h
    "quarter": "2021-05-01T10:15:00Z",  # 1 h only
}
SPAN_MINUTES = 25


def _local(utc: str, minutes: int) -> str:
    """A UTC instant moved by ``minutes``, as the generator's local (+02:00) text."""
    from datetime import datetime, timedelta, timezone

    moved = datetime.fromisoformat(utc.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    return moved.astimezone(timezone(timedelta(hours=2))).isoformat()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Per boundary, the `early` file [M - 25 min, M) and the `late` one [M, M + 25 min) (1 s;
    labels at interval ends, so a file's points start at its --start)."""
    tmp = tmp_path_factory.mktemp("race")
    out: dict[str, dict[str, Path]] = {}
    for name, meet in BOUNDARIES.items():
        out[name] = {}
        for side, (a, b), seed in (
            ("early", (-SPAN_MINUTES, 0), 1),
            ("late", (0, SPAN_MINUTES), 2),
        ):
            path = out[name][side] = tmp / f"{name}-{side}.csv"
            argv = ["--start", _local(meet, a), "--end", _local(meet, b), "--step", "1s",
                    "--kind", "measured", "--seed", str(seed), "--series", SERIES,
                    "--out", str(path), "--quiet"]  # fmt: skip
            assert generate_main(argv) == 0
    return out


def raw_write(bucket: str) -> Callable[[Request], bool]:
    return lambda r: r.kind == "write" and r.bucket == bucket


@dataclass
class Paused:
    """A `python -m ingest` process whose request ``rule`` picks is held."""

    proc: subprocess.Popen[str]
    rule: Rule
    report: Path

    def wait_held(self) -> None:
        while not self.rule.held.wait(0.05):
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                pytest.fail(f"ended ({self.proc.returncode}) before the held request: {err}")

    def finish(self) -> dict[str, object]:
        """Release the held request; the exit status must be 0; the --report (or {})."""
        self.rule.release.set()
        _, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        if not self.report.exists():
            return {"stderr": err}
        found: dict[str, object] = json.loads(self.report.read_text())
        return {**found, "stderr": err}


def start(argv: list[str], rule: Rule, report: Path) -> Paused:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", *argv],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return Paused(proc, rule, report)


def no_open_markers(api: Influx) -> None:
    for tier in TIERS:
        assert read_open(api, tier.bucket(api.target.bucket)) == [], tier.text


def stale_writer_rule(bucket: str) -> Rule:
    """The first tier write (1 m bucket, not a marker): every read of the rollup is done."""
    return Rule(tier_write(bucket, "1m"), pause=True)


def stale_load_while(
    capsys: pytest.CaptureFixture[str],
    api: Influx,
    influx: InfluxServer,
    influx_env: dict[str, str],
    stale: Path,
    other: Path,
    report: Path,
) -> dict[str, Any]:
    """Load ``stale`` through a proxy that holds its first tier write (all its reads done), load
    ``other`` whole meanwhile, then let the held writes land: the stale load's report."""
    rule = stale_writer_rule(api.target.bucket)
    with running(influx.url, rule) as proxy:
        argv = [*load_argv(influx_env, stale, url=proxy.url), "--report", str(report)]
        paused = start(argv, rule, report)
        paused.wait_held()
        code, err = load(capsys, influx_env, other)  # whole, while the other waits
        assert code == 0, err
        return paused.finish()


def assert_both_exact(influx_env: dict[str, str], pair: dict[str, Path]) -> None:
    assert_exact(influx_env, combine(read_csv_points(pair["early"]), read_csv_points(pair["late"])))


# (boundary, which file the stale writer loads)
EDGES = [(b, side) for b in BOUNDARIES for side in ("early", "late")]


@pytest.mark.parametrize(("boundary", "stale"), EDGES)
def test_a_load_that_read_raw_before_its_neighbour_wrote_does_not_leave_a_stale_window(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,  # noqa: F811
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, dict[str, Path]],
    tmp_path: Path,
    boundary: str,
    stale: str,
) -> None:
    """`early` stale: its end edge; `late` stale: its start edge."""
    pair = files[boundary]
    other = "late" if stale == "early" else "early"
    summary = stale_load_while(
        capsys, tiered, influx, influx_env, pair[stale], pair[other], tmp_path / "stale.json"
    )
    no_open_markers(tiered)
    assert_both_exact(influx_env, pair)
    assert summary["tier_windows_rechecked"], summary  # the stale writer saw and repaired it


def test_the_neighbours_raw_writes_partly_in_when_the_stale_writer_counts_and_reads(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,  # noqa: F811
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, dict[str, Path]],
    tmp_path: Path,
) -> None:
    """The late file's first raw batch (its first 10 minutes) is in, its second held, while the
    early file's load counts and reads the shared windows; the late one then finishes whole, the
    early one writes last."""
    pair = files["mid-minute"]
    bucket = tiered.target.bucket
    late_rule = Rule(raw_write(bucket), pause=True, nth=2)
    early_rule = stale_writer_rule(bucket)
    with running(influx.url, late_rule) as late_proxy, running(influx.url, early_rule) as proxy:
        flags = ("--batch-size", "600", "--concurrency", "1")
        late = start(
            [*load_argv(influx_env, pair["late"], url=late_proxy.url), *flags],
            late_rule,
            tmp_path / "none.json",
        )
        late.wait_held()
        report = tmp_path / "early.json"
        argv = [*load_argv(influx_env, pair["early"], url=proxy.url), "--report", str(report)]
        early = start(argv, early_rule, report)
        early.wait_held()
        late.finish()
        summary = early.finish()
    no_open_markers(tiered)
    assert_both_exact(influx_env, pair)
    assert summary["tier_windows_rechecked"], summary


def test_a_rerun_racing_with_the_neighbours_first_run(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,  # noqa: F811
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, dict[str, Path]],
    tmp_path: Path,
) -> None:
    """The early file is loaded; its re-run (idempotent) reads, the late file's first run goes
    through whole, then the re-run's tier writes land: they must not undo the late file's."""
    pair = files["mid-minute"]
    code, err = load(capsys, influx_env, pair["early"])
    assert code == 0, err
    summary = stale_load_while(
        capsys, tiered, influx, influx_env, pair["early"], pair["late"], tmp_path / "rerun.json"
    )
    no_open_markers(tiered)
    assert_both_exact(influx_env, pair)
    assert summary["tier_windows_rechecked"], summary


def test_a_first_run_and_a_rerun_of_the_same_file_at_once(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,  # noqa: F811
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, dict[str, Path]],
    tmp_path: Path,
) -> None:
    """A guard: both write the same points and each reads after its own raw writes, so each
    computes every window from all of them; whichever writes last is right."""
    pair = files["mid-minute"]
    summary = stale_load_while(
        capsys, tiered, influx, influx_env, pair["early"], pair["early"], tmp_path / "first.json"
    )
    no_open_markers(tiered)
    assert_exact(influx_env, read_csv_points(pair["early"]))
    assert not summary["tier_windows_rechecked"], summary  # nothing changed under it


def test_ingest_rollup_that_read_raw_before_a_load_wrote_does_not_leave_a_stale_window(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,  # noqa: F811
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, dict[str, Path]],
    tmp_path: Path,
) -> None:
    """`ingest rollup` over the early file's range (a repair) reads, the late file's load goes
    through whole, then the rollup's tier writes land."""
    pair = files["mid-minute"]
    code, err = load(capsys, influx_env, pair["early"])
    assert code == 0, err
    rule = stale_writer_rule(tiered.target.bucket)
    with running(influx.url, rule) as proxy:
        argv = ["rollup", "--start", "2021-05-01T09:00:00Z", "--end", "2021-05-01T10:07:30Z",
                *_flags(influx_env, proxy.url)]  # fmt: skip
        repair = start(argv, rule, tmp_path / "none.json")
        repair.wait_held()
        code, err = load(capsys, influx_env, pair["late"])
        assert code == 0, err
        summary = repair.finish()
    no_open_markers(tiered)
    assert_both_exact(influx_env, pair)
    assert "changed while they were rolled up" in str(summary["stderr"]), summary


def test_windows_that_keep_changing_keep_a_marker_open_and_name_the_repair(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,  # noqa: F811
    influx_env: dict[str, str],
    files: dict[str, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer that lands a point in the shared hour before every check of the settle step
    (the count per coarsest window): the load gives up after SETTLE_ROUNDS, exits 0, keeps a
    marker over that hour open (the API stays on raw there) and names `ingest rollup`; the
    rollup, meddled with the same way, exits 1 and clears nothing; once the writes stop, it
    settles, and clears every marker."""
    pair = files["mid-minute"]
    real = rollup.raw_counts
    hour = 1_619_863_200  # 10:00Z: the hour both files share
    extra: list[int] = []

    def meddling(influx: Influx, series: str, start: int, stop: int, seconds: int) -> Any:
        if seconds == TIERS[-1].seconds:  # the settle step's count
            extra.append(hour + 1800 + len(extra))
            write_raw(tiered, SERIES, np.array(extra[-1:]), np.array([50.0]))
        return real(influx, series, start, stop, seconds)

    monkeypatch.setattr(rollup, "raw_counts", meddling)
    code, err = load(capsys, influx_env, pair["early"])
    assert code == 0, err
    assert len(extra) == rollup.SETTLE_ROUNDS + 1  # a check per round, and the last one
    assert "python -m ingest rollup --start" in err, err
    for tier in TIERS:
        found = read_open(tiered, tier.bucket(tiered.target.bucket))
        assert [(m.start, m.stop, m.state) for m in found] == [(hour, hour + 3600, "written")]
        assert found[0].load.endswith("-open")
    code, err = rollup_command(capsys, influx_env, "2021-05-01T09:00:00Z", "2021-05-01T11:00:00Z")
    assert code == 1, err
    assert "kept changing while they were rolled up" in err, err
    assert all(read_open(tiered, t.bucket(tiered.target.bucket)) for t in TIERS)
    monkeypatch.undo()
    code, err = rollup_command(capsys, influx_env, "2021-05-01T09:00:00Z", "2021-05-01T11:00:00Z")
    assert code == 0, err
    no_open_markers(tiered)
    added = pd.Series(50.0, index=np.array(extra, dtype=np.int64))
    assert_exact(influx_env, combine(read_csv_points(pair["early"]), added))
