"""The end-to-end test's cluster: a real one-node Kubernetes built and started by scripts/cluster,
with the repo's images imported. Run by `make e2e` (GRIDTS_E2E=1), not by `make test`.

Each test is one step of a user's story and depends on the ones before it (pytest runs a module's
tests in file order). When a step fails, the namespace's pods, events and the logs of every pod
that is not healthy are printed; at the end a table lists step, seconds and result.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator
from pathlib import Path

import pytest

import cluster_build
import cluster_local
from tests.e2e.kube import CACHE_BIN, diagnostics, sh

NAMESPACE = "gridts-e2e"
_steps: list[tuple[str, float, str]] = []


@pytest.fixture(scope="session", autouse=True)
def cluster() -> None:
    """`scripts/cluster up` (idempotent), then the kubectl and helm of the README on PATH."""
    start = time.monotonic()
    sh([sys.executable, "scripts/cluster", "up"], timeout=3600)
    os.environ["KUBECONFIG"] = str(cluster_local.kubeconfig())
    os.environ["PATH"] = os.pathsep.join(
        [
            str(cluster_build.kubernetes_dir()),
            str(CACHE_BIN),
            str(Path(sys.executable).parent),
            os.environ["PATH"],
        ]
    )
    _steps.append(("cluster up (builds on first run)", time.monotonic() - start, "passed"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.failed):
        doc = (getattr(item, "function", None).__doc__ or item.name).strip().splitlines()[0]
        _steps.append((doc, report.duration, report.outcome))
        if report.failed:
            report.sections.append(("cluster state", diagnostics(NAMESPACE)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _steps:
        return
    width = max(len(s[0]) for s in _steps)
    terminalreporter.section("e2e steps")
    terminalreporter.write_line(f"{'step':{width}}  {'seconds':>8}  result")
    for name, seconds, outcome in _steps:
        terminalreporter.write_line(f"{name:{width}}  {seconds:8.1f}  {outcome}")
    terminalreporter.write_line(f"{'total':{width}}  {sum(s[1] for s in _steps):8.1f}")
