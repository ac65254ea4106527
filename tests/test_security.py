"""Security properties across the parts: tokens never printed, constant-time comparison, no
secret in the chart's defaults."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT, InfluxServer

SECRET_WORDS = re.compile(r"(token|password|secret|key)$", re.IGNORECASE)


def test_ingest_never_prints_the_token(influx: InfluxServer, tmp_path: Path) -> None:
    """A refused write (wrong token) and a good run: neither output nor report holds a token."""
    path = tmp_path / "f.csv"
    path.write_text("Datum Zeit;A:f_soll_aktiv [Hz]\nSa. 01.05.21 00:00:30;50\n")
    wrong = "wrong-" + influx.token[::-1]
    report = tmp_path / "r.json"
    runs = [
        ({**influx.env(), "INFLUX_TOKEN": wrong}, 1),
        (influx.env(), 0),
    ]
    for env, status in runs:
        proc = subprocess.run(
            [sys.executable, "-m", "ingest", "load", str(path), "--report", str(report)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == status, proc.stderr
        seen = proc.stdout + proc.stderr + report.read_text()
        assert env["INFLUX_TOKEN"] not in seen
        assert influx.token not in seen
    assert (
        "401"
        in subprocess.run(
            [sys.executable, "-m", "ingest", "load", str(path)],
            env={**os.environ, **influx.env(), "INFLUX_TOKEN": wrong},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stderr
    )


def test_bearer_tokens_are_compared_in_constant_time() -> None:
    """The API's token check uses hmac.compare_digest and never == on token values."""
    tree = ast.parse((ROOT / "src/app/deps.py").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "compare_digest"
    ]
    assert calls, "no hmac.compare_digest in src/app/deps.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq | ast.In) for op in node.ops
        ):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            assert not {"token", "tokens", "presented", "given"} & names, ast.unparse(node)
    from app.deps import token_matches

    assert token_matches("b", ("a", "b"))
    assert not token_matches("c", ("a", "b"))
    assert not token_matches("", ("a",))


def _leaves(node: object, path: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _leaves(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _leaves(v, f"{path}[{i}]")]
    return [(path, node)]


def test_chart_defaults_hold_no_secret() -> None:
    """Every secret-looking key in values.yaml is empty or names a Secret key, never a value."""
    values = yaml.safe_load((ROOT / "charts/gridts/values.yaml").read_text())
    offending = []
    for path, value in _leaves(values):
        last = path.rsplit(".", 1)[-1]
        # `key: admin-token` names a key inside a Secret; any other value would be a secret
        names_a_key = last == "key" and isinstance(value, str) and re.fullmatch(r"[a-z-]+", value)
        if SECRET_WORDS.search(last) and isinstance(value, str) and value and not names_a_key:
            offending.append((path, value))
    assert offending == []
    rendered = json.dumps(values)
    assert not re.search(r"[A-Za-z0-9_\-]{32,}={0,2}", rendered), "a long token-like string"
