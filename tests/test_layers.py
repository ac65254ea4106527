"""The import layers of src/ (docs/architecture.md, "Never"): the API and the ingest import
neither each other nor the cluster side, and the cluster side's libraries are an extra of their
own, so the API's dependencies do not include the Kubernetes client.

Static: every import statement counts, also one inside a function (a lazy import is still an
edge)."""

from __future__ import annotations

import ast
from importlib.metadata import requires
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# package -> the top-level modules it must never import
FORBIDDEN = {
    "app": {"ingest", "ops", "kubernetes", "yaml"},
    "ingest": {"app", "ops", "kubernetes", "yaml"},
    "gridts": {"app", "ingest", "ops", "kubernetes", "yaml", "fastapi", "starlette"},
}


def imported(path: Path) -> set[str]:
    """The top-level names of everything ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def edges(package: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(SRC)): imported(path) & FORBIDDEN[package]
        for path in sorted((SRC / package).rglob("*.py"))
    }


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_imports(package: str) -> None:
    found = {module: bad for module, bad in edges(package).items() if bad}
    assert found == {}


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import kubernetes.client\n    from ops import submit\n")
    assert imported(module) == {"kubernetes", "ops"}


def test_the_kubernetes_client_is_an_extra_of_the_cluster_side() -> None:
    requirements = requires("gridts") or []
    cluster = [r for r in requirements if r.startswith(("kubernetes", "pyyaml"))]
    assert cluster, requirements
    assert all(r.replace('"', "'").endswith("; extra == 'ops'") for r in cluster), cluster
