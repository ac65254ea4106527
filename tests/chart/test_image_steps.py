"""The Dockerfile's build steps, replayed without Docker: the `uv sync` commands of its build
stage run on exactly the files its COPY lines take (through the .dockerignore allow-list), into
a fresh venv; then the entrypoint's commands run from that venv as the pods run them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART, ROOT, Dockerfile


def uv_binary() -> str:
    for candidate in (ROOT / ".tools" / "uv" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("uv not found: run `make deps`")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
            args[args.index("--python") + 1] = sys.executable
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


def run(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), *args],
        cwd="/",
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_dev_dependencies_in_the_image(image_venv: Path) -> None:
    for module in ("pytest", "mypy", "ruff", "hypothesis", "kubernetes_validate"):
        assert run(image_venv, "-c", f"import {module}").returncode != 0, module
    assert run(image_venv, "-c", "import app, ingest, kubernetes, httpx").returncode == 0


def test_ingest_cli_runs_as_the_cronjob_runs_it(image_venv: Path) -> None:
    args = k.one(k.render_chart(), "CronJob", "-ingest")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"][0]["args"]
    assert args[:2] == ["ingest", "load"]
    help_run = run(image_venv, "-m", *args, "--help")
    assert help_run.returncode == 0, help_run.stderr
    no_source = run(image_venv, "-m", *args)
    assert no_source.returncode == 2, "no SOURCE is a usage error: the Job fails at once"


def test_chart_modules_run_on_the_image_dependencies(image_venv: Path) -> None:
    for module in ("influx_tokens", "gridts_smoke"):
        proc = run(image_venv, "-c", f"import {module}", PYTHONPATH=str(CHART / "files"))
        assert proc.returncode == 0, proc.stderr
    proc = run(image_venv, "-m", "influx_tokens", PYTHONPATH=str(CHART / "files"))
    assert proc.returncode == 2, "missing configuration is exit 2 (the Job fails without retries)"


@pytest.fixture
def api(image_venv: Path) -> Iterator[str]:
    port = free_port()
    env = {
        "PATH": f"{image_venv / 'bin'}:/usr/bin:/bin",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "INFLUX_URL": "http://127.0.0.1:9",
        "INFLUX_ORG": "grid",
        "INFLUX_BUCKET": "grid",
        "INFLUX_TOKEN": "unused",
    }
    proc = subprocess.Popen(
        [str(image_venv / "bin" / "python"), "-m", "app"],
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
