"""The Dockerfile, read as text (no Docker engine here), against what the chart expects of it."""

from __future__ import annotations

import re

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
    assert dockerfile.entrypoint == ["python", "-m"]
    assert dockerfile.cmd == ["app"], "no arguments: the API"
    assert "8000" in (dockerfile.last("EXPOSE") or "")
    for module in ("app", "ingest"):
        assert (ROOT / "src" / module / "__init__.py").exists()


def test_chart_containers_use_the_entrypoint_and_the_image_user() -> None:
    objects = k.render_chart(
        sets=["ingest.sources={https://example.com/a.csv}", "api.auth.enabled=true"]
    )
    assert k.entrypoint_problems(objects) == []
    args = {
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
