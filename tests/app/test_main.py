"""The app as `app.main` builds it: one version, the package's, in the OpenAPI document."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]


async def test_openapi_version_is_the_package_and_chart_version(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    chart = yaml.safe_load((ROOT / "charts/gridts/Chart.yaml").read_text())
    assert doc["info"]["version"] == importlib.metadata.version("gridts")
    assert doc["info"]["version"] == str(chart["appVersion"])


def test_pure_modules_import_without_the_web_framework() -> None:
    """The exception tree and the pure modules (plan, Flux text, points, shaping, formats) load
    in a process that never imports FastAPI or Starlette: only app.responses maps errors to
    HTTP."""
    code = (
        "import sys\n"
        "import app.errors, app.query.plan, app.query.flux, app.points, app.shape, app.formats\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette'))\n"
        "assert not web, web\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_keep_freed_memory() -> None:
    """glibc's heap thresholds set at start (``python -m app``); nothing where there is none."""
    from app.__main__ import keep_freed_memory

    assert keep_freed_memory()  # glibc here
    assert not keep_freed_memory("/nonexistent/libc.so.6")
