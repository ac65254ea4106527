"""The Dockerfile's build steps, replayed without Docker: the `uv sync` commands of its build
stage run on exactly the files its COPY lines take (through the .dockerignore allow-list), into
a fresh venv; then the entrypoint's commands run from that venv as the pods run them.

The build runs once per kind of base image the Dockerfile supports, with `python3` found on the
PATH such a base has: this test run's Python 3.11 (like python:3.11-slim), and this machine's
Debian bookworm /usr/bin/python3 when there is one (apt's python3 with an "externally managed"
pip and no `python`, like a Debian base image)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chart import k8scheck as k
from tests.chart.k8scheck import ROOT, Dockerfile


def uv_binary() -> str:
    for candidate in (ROOT / ".tools" / "uv" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("uv not found: run `make deps`")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_path(base: str) -> str:
    """The PATH a base image's build steps see, with its `python3` first."""
    if base == "python-slim":
        return f"{Path(sys.executable).parent}:{DEBIAN_PATH}"
    found = shutil.which("python3", path=DEBIAN_PATH)
    if found is None or not Path("/usr/lib/python3.11/EXTERNALLY-MANAGED").exists():
        pytest.skip("no Debian python3 3.11 (externally managed) on this machine")
    return DEBIAN_PATH


def shell_value(word: str, path: str) -> str:
    """What the build step's shell makes of a word such as `$(command -v python3)`."""
    out = subprocess.run(
        ["/bin/sh", "-c", f'printf %s "{word}"'],
        env={"PATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.fixture(scope="module", params=["python-slim", "debian"])
def image_venv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base_search_path = base_path(request.param)
    build = Dockerfile.parse().stages[0]
    context = tmp_path_factory.mktemp("context")
    venv = context / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    for ins, rest in build:
        if ins == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
        if ins == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(
                        path, context / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(path, context / source)
        if ins == "RUN" and "uv sync" in rest:
            args = shlex.split(rest[rest.index("uv sync") :])
            interpreter = shell_value(args[args.index("--python") + 1], base_search_path)
            assert Path(interpreter).is_absolute(), f"no python3 on {base_search_path}"
            args[args.index("--python") + 1] = interpreter
            env["UV_PROJECT_ENVIRONMENT"] = str(venv)
            # Speed, not semantics: no .pyc compilation, link from uv's cache where possible.
            env["UV_COMPILE_BYTECODE"] = "0"
            env.pop("UV_LINK_MODE", None)
            proc = subprocess.run(
                [uv_binary(), *args[1:]],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, proc.stderr
    return venv


def image_path(venv: Path) -> str:
    """The runtime stage's PATH: the venv's bin first, then the base's (no `python` on a Debian
    base, so the venv's must be the one found)."""
    return f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"


def entrypoint(*args: str) -> list[str]:
    """The container's command line: the Dockerfile's ENTRYPOINT, then the pod's args."""
    return [*Dockerfile.parse().entrypoint, *args]


def run(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the image's PATH."""
    return subprocess.run(
        ["python", *args],
        cwd="/",
        env={"PATH": image_path(venv), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_image(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The container as a pod with ``args`` runs it: ENTRYPOINT + args, the image's PATH."""
    return subprocess.run(
        entrypoint(*args),
        cwd="/",
        env={"PATH": image_path(venv), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_entrypoint_programs_are_the_venvs(image_venv: Path) -> None:
    for program in [*Dockerfile.parse().entrypoint[:1], "python"]:
        found = shutil.which(program, path=image_path(image_venv))
        assert found is not None, program
        assert Path(found).parent == image_venv / "bin", found


def test_no_dev_dependencies_in_the_image(image_venv: Path) -> None:
    for module in ("pytest", "mypy", "ruff", "hypothesis", "kubernetes_validate"):
        assert run(image_venv, "-c", f"import {module}").returncode != 0, module
    assert run(image_venv, "-c", "import app, ingest, kubernetes, httpx").returncode == 0


def test_ingest_cli_runs_as_the_cronjob_runs_it(image_venv: Path) -> None:
    args = k.one(k.render_chart(), "CronJob", "-ingest")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"][0]["args"]
    assert args[:2] == ["ingest", "load"]
    help_run = run_image(image_venv, *args, "--help")
    assert help_run.returncode == 0, help_run.stderr
    no_source = run_image(image_venv, *args)
    assert no_source.returncode == 2, "no SOURCE is a usage error: the Job fails at once"


def test_chart_modules_run_on_the_image_dependencies(image_venv: Path) -> None:
    for module in ("ops.tokens_job", "ops.smoke"):
        proc = run(image_venv, "-c", f"import {module}")
        assert proc.returncode == 0, proc.stderr
    proc = run_image(image_venv, "ops.tokens_job")
    assert proc.returncode == 2, "missing configuration is exit 2 (the Job fails without retries)"


@pytest.fixture
def api(image_venv: Path) -> Iterator[str]:
    port = free_port()
    env = {
        "PATH": image_path(image_venv),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "INFLUX_URL": "http://127.0.0.1:9",
        "INFLUX_ORG": "grid",
        "INFLUX_BUCKET": "grid",
        "INFLUX_TOKEN": "unused",
    }
    proc = subprocess.Popen(
        entrypoint(*Dockerfile.parse().cmd),
        cwd="/",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def test_api_serves_the_probe_paths_of_the_chart(api: str) -> None:
    """`python -m app` (the image's CMD): liveness passes without InfluxDB, readiness does not."""
    deploy = k.one(k.render_chart(), "Deployment", "-api")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert httpx.get(api + container["livenessProbe"]["httpGet"]["path"]).status_code == 200
    assert (
        httpx.get(api + container["readinessProbe"]["httpGet"]["path"], timeout=30).status_code
        == 503
    )
    path = deploy["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    assert httpx.get(api + path).status_code == 200


def pid_namespace_available() -> bool:
    return (
        subprocess.run(
            ["unshare", "--pid", "--fork", "true"], capture_output=True, check=False
        ).returncode
        == 0
    )


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_sigterm_stops_a_chart_job_promptly(image_venv: Path, tmp_path: Path) -> None:
    """The container's first process is PID 1 of its PID namespace, and the kernel drops the
    SIGTERM the kubelet sends to a PID 1 that has no handler for it: Python as PID 1 (the tokens
    Job, an ingest, the helm test pod) ignores it and is killed only after the grace period.
    Here the ENTRYPOINT runs as PID 1 of a new PID namespace with the tokens module waiting for
    an InfluxDB that never answers, and gets SIGTERM from outside, as from the kubelet."""
    if not pid_namespace_available():
        pytest.skip("unshare --pid is not permitted here (no CAP_SYS_ADMIN)")
    env = {
        "PATH": image_path(image_venv),
        "INFLUX_URL": f"http://127.0.0.1:{free_port()}",
        "INFLUX_ORG": "grid",
        "INFLUX_BUCKET": "grid",
        "INFLUX_ADMIN_TOKEN": "unused",
        "NAMESPACE": "gridts",
        "TOKEN_SPECS": "[]",
        "WAIT_SECONDS": "600",
    }
    outer = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", *entrypoint("ops.tokens_job")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not children(outer.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (init,) = children(outer.pid)  # PID 1 inside the namespace
        assert outer.stderr is not None
        line = outer.stderr.readline()  # the module is up and waiting
        assert "waiting for InfluxDB" in line, line
        os.kill(init, signal.SIGTERM)
        try:
            outer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{entrypoint('ops.tokens_job')} as PID 1 ignored SIGTERM")
        assert outer.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), outer.returncode
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()
        if outer.stderr is not None:
            outer.stderr.close()
