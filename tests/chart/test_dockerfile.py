"""The Dockerfile, read as text (no Docker engine here), against what the chart expects of it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart import k8scheck as k
from tests.chart.k8scheck import ROOT, Dockerfile

BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|make|build-essential|apt-get install|uv sync|pip install)\b"
)


def test_multi_stage_on_slim_python_311() -> None:
    dockerfile = Dockerfile.parse()
    assert len(dockerfile.stages) >= 2
    args = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^ARG (\w+)=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    }
    for stage in dockerfile.stages:
        base = stage[0][1].split()[0]
        base = args.get(base.strip("${}"), base)
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base), base


def test_dependencies_are_installed_from_the_lock_before_the_code() -> None:
    build = Dockerfile.parse().stages[0]
    steps = [f"{ins} {rest}" for ins, rest in build]
    lock = next(i for i, s in enumerate(steps) if s.startswith("COPY") and "uv.lock" in s)
    deps = next(i for i, s in enumerate(steps) if "--no-install-project" in s)
    code = next(i for i, s in enumerate(steps) if s.startswith("COPY src"))
    assert lock < deps < code
    assert all("--frozen" in s for s in steps if "uv sync" in s)
    assert all("--no-dev" in s for s in steps if "uv sync" in s)


def test_final_stage_has_no_build_tools_and_a_numeric_non_root_user() -> None:
    dockerfile = Dockerfile.parse()
    for ins, rest in dockerfile.final:
        if ins == "RUN":
            assert not BUILD_TOOLS.search(rest), rest
    uid, gid = dockerfile.user
    assert uid >= 10000
    assert gid >= 10000
    assert dockerfile.last("USER") == f"{uid}:{gid}", "numeric, so runAsNonRoot can verify it"
    copies = [rest for ins, rest in dockerfile.final if ins == "COPY"]
    assert copies == ["--from=build --chown=0:0 /opt/gridts/venv /opt/gridts/venv"]


def test_entrypoint_runs_the_api_or_the_ingest_cli() -> None:
    dockerfile = Dockerfile.parse()
    # An init as PID 1 forwards SIGTERM; Python as PID 1 would ignore it (see test_image_steps).
    assert dockerfile.entrypoint == ["dumb-init", "--", "python", "-m"]
    assert dockerfile.cmd == ["app"], "no arguments: the API"
    assert "8000" in (dockerfile.last("EXPOSE") or "")
    for module in ("app", "ingest"):
        assert (ROOT / "src" / module / "__init__.py").exists()


def test_chart_containers_use_the_entrypoint_and_the_image_user() -> None:
    objects = k.render_chart(
        sets=["ingest.sources={https://example.com/a.csv}", "api.auth.enabled=true"]
    )
    assert k.entrypoint_problems(objects) == []
    args: dict[str, Any] = {
        c["name"]: c.get("args")
        for p in k.pod_templates(objects)
        for c in p.containers()
        if c["name"] != "influxdb"
    }
    assert args["api"] == ["app"]
    assert args["ingest"][:2] == ["ingest", "load"]


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!uv.lock", "!src/"} <= set(lines)


def test_the_interpreter_is_python3_from_path_not_a_fixed_path() -> None:
    """A Debian bookworm base has /usr/bin/python3 and no `python`; python:3.11-slim has
    /usr/local/bin/python3. The venv is made from whichever `python3` the base puts on PATH."""
    steps = [rest for stage in Dockerfile.parse().stages for ins, rest in stage if ins == "RUN"]
    syncs = [s for s in steps if "uv sync" in s]
    assert len(syncs) == 2
    assert all('--python "$(command -v python3)"' in s for s in syncs), syncs
    for step in steps:
        assert "/usr/local/bin" not in step, step
        assert not re.search(r"(^|[\s;&|({])python(\s|$)", step), f"bare `python` in: {step}"


def test_no_build_step_hides_a_failure() -> None:
    for stage in Dockerfile.parse().stages:
        for ins, rest in stage:
            if ins == "RUN":
                assert not re.search(r"\|\|\s*(true|:)\b", rest), rest


def stub(path: Path, script: str) -> None:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


# Stand-ins for the commands the runtime stage's RUN step calls, on a state directory: `pip`
# (pip importable), `dpkg-pip` (pip installed by dpkg), `managed` (PEP 668 marker), `stuck` (pip
# cannot be removed). The real apt-get, useradd and pip would change this machine.
STUBS = {
    "groupadd": "exit 0\n",
    "useradd": "exit 0\n",
    "dpkg-query": (
        'case "$*" in *python3-pip*) [ -e "$STATE/dpkg-pip" ] && { printf installed; exit 0; };;'
        " esac\n"
        'echo "dpkg-query: no packages found matching $*" >&2; exit 1\n'
    ),
    "apt-get": (
        'echo "apt-get $*" >> "$STATE/calls"\n'
        'case "$*" in *"purge"*python3-pip*) rm -f "$STATE/dpkg-pip" "$STATE/pip";; esac\n'
    ),
    "python3": (
        'if [ "$1 $2 $3" = "-m pip --version" ]; then [ -e "$STATE/pip" ]; exit $?; fi\n'
        'if [ "$1 $2 $3" = "-m pip uninstall" ]; then\n'
        '  [ -e "$STATE/pip" ] || { echo "No module named pip" >&2; exit 1; }\n'
        '  if [ -e "$STATE/managed" ] && [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ]; then\n'
        '    echo "error: externally-managed-environment" >&2; exit 1; fi\n'
        '  if [ -e "$STATE/dpkg-pip" ] || [ -e "$STATE/stuck" ]; then\n'
        '    echo "Cannot uninstall pip: installed by debian" >&2; exit 1; fi\n'
        '  echo "pip uninstall" >> "$STATE/calls"; rm -f "$STATE/pip"; exit 0\n'
        "fi\n"
        "exit 2\n"
    ),
}


def run_runtime_step(
    tmp_path: Path, state: set[str], python_alias: bool
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The runtime stage's RUN step, run by /bin/sh (dash, Docker's shell on Debian) with only
    the stand-ins and a few harmless tools on PATH. Returns the run and the state directory."""
    bin_dir, state_dir = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state_dir.mkdir()
    for name, script in STUBS.items():
        stub(bin_dir / name, script)
    if python_alias:  # python:3.11-slim also has `python`; Debian does not
        stub(bin_dir / "python", 'exec python3 "$@"\n')
    for tool in ("grep", "rm", "cat"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    for name in state:
        (state_dir / name).touch()
    (step,) = [rest for ins, rest in Dockerfile.parse().final if ins == "RUN"]
    env = {"PATH": str(bin_dir), "STATE": str(state_dir)}
    proc = subprocess.run(
        ["/bin/sh", "-c", step], env=env, capture_output=True, text=True, check=False
    )
    return proc, state_dir


@pytest.mark.parametrize(
    ("base", "state", "python_alias"),
    [
        ("python:3.11-slim", {"pip"}, True),
        ("debian bookworm + python3-pip", {"pip", "dpkg-pip", "managed"}, False),
        ("debian, pip installed by pip", {"pip", "managed"}, False),
    ],
)
def test_runtime_stage_removes_pip_on_either_base(
    tmp_path: Path, base: str, state: set[str], python_alias: bool
) -> None:
    """Afterwards `python3 -m pip` fails, on both bases."""
    proc, state_dir = run_runtime_step(tmp_path, state, python_alias)
    assert proc.returncode == 0, proc.stderr
    assert not (state_dir / "pip").exists(), f"{base}: pip is still in the runtime image"
    calls = (state_dir / "calls").read_text() if (state_dir / "calls").exists() else ""
    assert ("apt-get purge" in calls) == ("dpkg-pip" in state), calls


def test_runtime_stage_fails_when_pip_stays(tmp_path: Path) -> None:
    proc, _ = run_runtime_step(tmp_path, {"pip", "stuck"}, python_alias=True)
    assert proc.returncode != 0, "a pip that cannot be removed must fail the build"
