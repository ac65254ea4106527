"""What the ingest's documentation says, checked against what it does (issue 11, item 10).

* The errors file's columns are the ones ``load --help`` and the README name.
* Every ``ingest load`` example of ``load --help`` and of the README's Ingest block runs, on a
  generated file of the kind it names, against the live influxd (or as a dry run), and the first
  point lands at the start of the file's first interval: an example that loads the operator's
  interval-end export without ``--label end`` stores every point one step late and fails here.
* Every ``submit`` example (``submit --help``, README) and every Helm command that sets
  ``ingest.sources`` passes ``--label end`` to the load.

A new example whose file is of an unknown kind fails until the table below learns it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main as ingest_main
from ingest.pipeline import ERRORS_COLUMNS
from ops.submit import main as submit_main
from tests.ingest.test_load import count, flux, ingest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def submit_help() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert submit_main(["--help"]) == 0
    return out.getvalue()


def help_of(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        ingest_main([*argv, "--help"])
    return out.getvalue()


def flat(text: str) -> str:
    return " ".join(text.split())


def section(text: str, title: str) -> str:
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def commands(text: str, prefix: str) -> list[str]:
    """The command lines of ``text`` that start with ``prefix``, continuation lines joined."""
    found: list[str] = []
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if current is None and not line.startswith(prefix):
            continue
        current = line.rstrip("\\").strip() if current is None else f"{current} {line}"
        if line.endswith("\\"):
            current = current.rstrip("\\").strip()
            continue
        found.append(current)
        current = None
    return found


LOAD_HELP = commands(help_of("load"), "python -m ingest load")
README_INGEST = section(README, "## Ingest")
README_LOADS = [  # loads, and the generator whose files they load (not tiers and rollup)
    c
    for c in commands(README_INGEST, ".venv/bin/python -m ingest")
    if shlex.split(c)[3] in ("load", "generate")
]
SUBMITS = commands(submit_help(), "python -m ops submit") + commands(README, "python -m ops submit")

ENDUSE = ("enduse.tsv", "../shared/data/swissgrid-enduse-2019-15min.tsv")
# the kind of file each documented source is: (series, rows, first stored instant)
OPERATOR = ("f_soll_aktiv", 2880, "2021-04-30T22:00:00Z")  # 30 s, 1 May 2021, labels at ends
ENDUSE_KIND = ("enduse", 192, "2018-12-31T23:00:00Z")  # 15 min, 1-2 Jan 2019, labels at ends


def operator_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    gen = ingest("generate", "--start", "2021-05-01", "--end", "2021-05-02", "--step", "30s",
                 "--out", path, "--quiet")  # fmt: skip
    assert gen.returncode == 0, gen.stderr


def enduse_file(path: Path) -> None:
    """The shape of Swissgrid's end-use export: ``Zeitstempel<TAB>kWh``, ``01.01.2019 00:15``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    first = datetime(2019, 1, 1, 0, 15)
    rows = [f"{first + timedelta(minutes=15 * i):%d.%m.%Y %H:%M}\t{1500000 + 97 * i}.5"
            for i in range(ENDUSE_KIND[1])]  # fmt: skip
    path.write_text("Zeitstempel\tkWh\n" + "\n".join(rows) + "\n")


class _QuietHandler(SimpleHTTPRequestHandler):
    """No request lines in the test output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory behind a local HTTP server: the examples' ``https://host/`` files."""
    root = tmp_path_factory.mktemp("served")
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def prepare(spec: str, cwd: Path, served: tuple[Path, str]) -> tuple[str, tuple[str, int, str]]:
    """Create the file an example names; the argument to pass and what it should store."""
    if spec.startswith("https://host/"):
        name = spec.removeprefix("https://host/")
        operator_file(served[0] / name)
        return served[1] + name, OPERATOR
    if spec in ENDUSE:
        enduse_file(cwd / spec)
        return spec, ENDUSE_KIND
    if re.fullmatch(r"[A-Za-z_]+\.csv(\.gz)?", spec):
        operator_file(cwd / spec)
        return spec, OPERATOR
    pytest.fail(f"documented example names {spec!r}: teach tests/ingest/test_examples.py its kind")


def first_stored(env: dict[str, str], series: str) -> str:
    rows = flux(
        env,
        "from(bucket: bucket) |> range(start: 1970-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z)"
        " |> filter(fn: (r) => r._measurement == m) |> first()",
        m=series,
    )
    return rows[0]["_time"]


def utc(seconds: str) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("example", LOAD_HELP + README_LOADS, ids=lambda e: e[:70])
def test_documented_example_stores_points_at_their_interval_start(
    example: str, influx_env: dict[str, str], tmp_path: Path, served: tuple[Path, str]
) -> None:
    command, _, piped = example.partition(" | ")
    words = shlex.split(command, comments=True)
    words = words[words.index("ingest") + 1 :]
    cwd = tmp_path / "work"
    cwd.mkdir()
    if words[0] == "generate":
        proc = subprocess.run([sys.executable, "-m", "ingest", *words], cwd=cwd, env={
            **os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
            check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = cwd / words[words.index("--out") + 1]
        assert out.read_text().startswith("Datum Zeit;A:f_soll_aktiv [Hz]\n")
        return
    assert words[0] == "load"
    source, (series, rows, first) = prepare(words[1], cwd, served)
    words[1] = source
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", *words],
        cwd=cwd,
        env={**os.environ, **influx_env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{example}\n{proc.stderr}"
    if "--dry-run" in words:
        lp = (
            (cwd / words[words.index("--output") + 1]).read_text()
            if "--output" in words
            else proc.stdout
        )
        if piped:
            assert shlex.split(piped, comments=True) == ["head"], example
        line = lp.splitlines()[0]
        assert line.startswith(f"{series},")
        assert utc(line.rsplit(" ", 1)[1]) == first, example
        assert lp.count("\n") == rows
        return
    assert first_stored(influx_env, series) == first, example
    assert count(influx_env, series) == rows
    if "--report" in words:
        report = json.loads((cwd / words[words.index("--report") + 1]).read_text())
        assert report["points_written"] == rows
        assert report["series"][0]["first"] == first
    if "--errors-file" in words:
        errors = (cwd / words[words.index("--errors-file") + 1]).read_text()
        assert errors.splitlines() == [",".join(ERRORS_COLUMNS)]


def test_every_documented_load_was_found() -> None:
    """The parametrisation above is not empty by accident (a reworded help or README)."""
    assert len(LOAD_HELP) >= 4
    assert len([c for c in README_LOADS if " load " in c]) >= 4
    assert len(SUBMITS) >= 5


@pytest.mark.parametrize("example", SUBMITS, ids=lambda e: e[:70])
def test_submit_examples_pass_label_end_to_the_load(example: str) -> None:
    words = shlex.split(example, comments=True)
    assert "--" in words, example
    load_args = words[words.index("--") + 1 :]
    assert "--label" in load_args, example
    assert load_args[load_args.index("--label") + 1] == "end", example


def test_helm_commands_that_set_sources_pass_label_end() -> None:
    helm = [c for c in commands(README, "helm ") if "ingest.sources=" in c]
    assert helm
    for command in helm:
        assert "ingest.extraArgs={--label,end" in command, command


def test_errors_file_columns_are_what_help_and_readme_say(tmp_path: Path) -> None:
    said = re.search(r"CSV of rejected rows, with a header: ([a-z_,]+)", flat(help_of("load")))
    assert said, "load --help describes the errors file's columns"
    readme = re.search(r"Rejected rows go to `--errors-file` as `([a-z_,]+)`", flat(README))
    assert readme, "the README describes the errors file's columns"
    bad = tmp_path / "bad.csv"
    bad.write_text("Datum Zeit;A:f_soll_aktiv [Hz]\nSa. 01.05.21 00:00:30;50\nSa. 01.05.21 x;1\n")
    errors = tmp_path / "errors.csv"
    proc = ingest("load", bad, "--label", "end", "--step", "30s", "--dry-run", "--output",
                  tmp_path / "out.lp", "--errors-file", errors, "--max-errors", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(errors, newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == said.group(1).split(",") == readme.group(1).split(",")
    assert [dict(zip(header, r, strict=True))["text"] for r in rows] == ["Sa. 01.05.21 x;1"]
