"""The app as `app.main` builds it: one version, the package's, in the OpenAPI document."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]


async def test_openapi_version_is_the_package_and_chart_version(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    chart = yaml.safe_load((ROOT / "charts/gridts/Chart.yaml").read_text())
    assert doc["info"]["version"] == importlib.metadata.version("gridts")
    assert doc["info"]["version"] == str(chart["appVersion"])
