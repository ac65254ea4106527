"""`ingest.inlineFiles` and the size of Helm's release record.

Helm keeps each revision in a Secret whose one data key holds the release (the chart's files,
the values given, the rendered manifest) as JSON, gzipped and base64-encoded; a Secret holds at
most 1 MiB. An inline file is in that record twice (in the values and in the rendered
ConfigMap), more than the 32 KiB gzip window apart, so a 1 MB file made the next
`helm upgrade --reuse-values` fail with `Secret "sh.helm.release.v1..." is invalid: data: Too
long`. The chart refuses inline files above 256 KiB in total, before anything is stored.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART

LIMIT = 256 * 1024
SECRET_LIMIT = 1024 * 1024  # bytes of data in one Secret (Kubernetes' MaxSecretSize)


def text_file(path: Path, size: int, seed: int = 0) -> Path:
    """``size`` bytes of text that compresses as badly as text can (random printable ASCII,
    lines of 80): the worst case for the release record."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    chars = [rng.choice(alphabet) for _ in range(size)]
    for i in range(80, size, 81):
        chars[i] = "\n"
    path.write_text("".join(chars))
    assert path.stat().st_size == size
    return path


def release_secret_size(values: dict[str, Any], manifest: str) -> int:
    """The size of the data Helm would store for a release of this chart: its encoding of the
    release (Go's json.Marshal of the release, gzip at best compression, base64), built from
    the same parts (chart files as base64, values, schema, config, manifest)."""

    def encoded(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    files = sorted(p for p in CHART.rglob("*") if p.is_file())
    special = {"Chart.yaml", "values.yaml", "values.schema.json"}
    release = {
        "name": "gridts",
        "info": {"status": "deployed", "description": "Upgrade complete", "notes": "x" * 4096},
        "chart": {
            "metadata": yaml.safe_load((CHART / "Chart.yaml").read_text()),
            "templates": [
                {"name": str(p.relative_to(CHART)), "data": encoded(p)}
                for p in files
                if p.relative_to(CHART).parts[0] == "templates"
            ],
            "values": yaml.safe_load((CHART / "values.yaml").read_text()),
            "schema": encoded(CHART / "values.schema.json"),
            "files": [
                {"name": str(p.relative_to(CHART)), "data": encoded(p)}
                for p in files
                if p.relative_to(CHART).parts[0] != "templates" and p.name not in special
            ],
        },
        "config": values,
        "manifest": manifest,
        "version": 2,
        "namespace": "gridts",
    }
    raw = json.dumps(release, ensure_ascii=False, separators=(",", ":")).encode()
    return len(base64.b64encode(gzip.compress(raw, compresslevel=9)))


def render_with_files(files: dict[str, Path], helm: str = "helm") -> str:
    args = [k.tool(helm), "template", "gridts", str(CHART), "--namespace", "gridts"]
    for name, path in files.items():
        args += ["--set-file", f"ingest.inlineFiles.{name.replace('.', chr(92) + '.')}={path}"]
    return k.run(args)


@pytest.mark.parametrize("helm", ["helm", "helm4"])
def test_an_inline_file_above_the_limit_is_refused_by_the_schema(tmp_path: Path, helm: str) -> None:
    big = text_file(tmp_path / "big.csv", LIMIT + 1)
    with pytest.raises(k.ToolError) as raised:
        render_with_files({"big.csv": big}, helm=helm)
    message = str(raised.value)
    assert "inlineFiles" in message
    assert f"{LIMIT:,}" in message or str(LIMIT) in message
    with pytest.raises(k.ToolError):
        k.run([k.tool(helm), "lint", str(CHART), "--set-file", f"ingest.inlineFiles.a={big}"])


def test_inline_files_above_the_limit_together_are_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    files = {
        f"part{i}.csv": text_file(tmp_path / f"part{i}.csv", LIMIT // 2 + 1, i) for i in (1, 2)
    }
    with pytest.raises(k.ToolError) as raised:
        render_with_files(files)
    message = " ".join(str(raised.value).split())
    assert "ingest.inlineFiles" in message
    assert "256 KiB" in message
    assert "ingest.data.existingClaim" in message, "it says where bigger files go"


def test_files_up_to_the_limit_fit_in_the_release_secret(tmp_path: Path) -> None:
    """The limit is sound: at 256 KiB of the least compressible text the release record stays
    well under 1 MiB, while the 1 MB file of the fault report would not have fitted."""
    at_limit = text_file(tmp_path / "at-limit.csv", LIMIT)
    manifest = render_with_files({"at-limit.csv": at_limit})
    values = {"ingest": {"inlineFiles": {"at-limit.csv": at_limit.read_text()}}}
    size = release_secret_size(values, manifest)
    assert size < 0.8 * SECRET_LIMIT, size

    one_mb = text_file(tmp_path / "one-mb.csv", 1_000_000, seed=7)
    content = one_mb.read_text()
    fake_manifest = manifest.replace(at_limit.read_text().replace("\n", "\n    "), "")
    fake_manifest += "\n" + content.replace("\n", "\n    ")
    too_big = release_secret_size({"ingest": {"inlineFiles": {"f.csv": content}}}, fake_manifest)
    assert too_big > SECRET_LIMIT, too_big
