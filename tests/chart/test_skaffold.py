"""skaffold.yaml against skaffold's published JSON schema (from its Go module, fetched by
scripts/install-tools: skaffold itself cannot be `go install`ed), and against the chart."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART, ROOT

CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def schema_path() -> Path:
    version = CONFIG["apiVersion"].split("/")[1]
    cache = Path(os.environ.get("GRIDTS_CACHE") or Path.home() / ".cache" / "gridts")
    path = cache / "schemas" / f"skaffold-{version}.json"
    if not path.exists():
        pytest.fail(f"{path} missing: run `bash scripts/install-tools` (make tools)")
    return path


def validate(config: dict[str, Any]) -> list[str]:
    schema = json.loads(schema_path().read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)
    ]


def apply_patches(config: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-patch subset skaffold profiles use here (add, replace), as skaffold applies it."""
    result = copy.deepcopy(config)
    for patch in patches:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in patch["path"].split("/")[1:]
        ]
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if patch["op"] == "replace":
            assert (int(last) < len(node)) if isinstance(node, list) else last in node, patch
        else:
            assert patch["op"] == "add", patch
        if isinstance(node, list):
            node[int(last)] = patch["value"]
        else:
            node[last] = patch["value"]
    return result


PROFILES = {p["name"]: p for p in CONFIG["profiles"]}


def test_skaffold_yaml_validates_against_the_schema() -> None:
    assert CONFIG["apiVersion"] == "skaffold/v4beta13"
    assert validate(CONFIG) == []


def test_schema_is_strict_enough_to_catch_typos() -> None:
    broken = copy.deepcopy(CONFIG)
    broken["deploy"]["helm"]["releases"][0]["chartpath"] = "charts/gridts"
    assert validate(broken)


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_profiles_validate_after_their_patches(name: str) -> None:
    assert validate(apply_patches(CONFIG, PROFILES[name]["patches"])) == []


def test_build_uses_the_dockerfile_and_deploy_the_chart() -> None:
    (artifact,) = CONFIG["build"]["artifacts"]
    assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).exists()
    (release,) = CONFIG["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    templates = release["setValueTemplates"]
    image = re.sub(r"[^A-Za-z0-9_]", "_", artifact["image"])
    assert templates == {
        "image.repository": f"{{{{.IMAGE_REPO_{image}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{image}}}}}",
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == artifact["image"]


@pytest.mark.parametrize("name", ["default", "dev", "prod"])
def test_each_profile_renders_a_valid_release(name: str) -> None:
    config = CONFIG if name == "default" else apply_patches(CONFIG, PROFILES[name]["patches"])
    (release,) = config["deploy"]["helm"]["releases"]
    sets = [f"{key}={value}" for key, value in (release.get("setValues") or {}).items()]
    # What skaffold would pass for a locally built image.
    built = {"image.repository": "gridts", "image.tag": "abc1234"}
    if "image.digest" in release["setValueTemplates"]:
        built["image.digest"] = "sha256:" + "ab" * 32
    sets += [f"{key}={value}" for key, value in built.items()]
    objects = k.render_chart(sets=sets, release=release["name"], namespace=release["namespace"])
    assert k.schema_errors(objects, k.KUBE_VERSIONS[-1]) == []
    assert k.problems(objects) == []
    images = k.gridts_image_repository(objects)
    assert len(images) == 1
    assert next(iter(images)).startswith("gridts:abc1234")
