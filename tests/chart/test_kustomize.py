"""k8s/: the kustomize base (rendered from the chart) and the dev and prod overlays."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

import pytest

from tests.chart import k8scheck as k
from tests.chart.k8scheck import ROOT, External, Obj, one

TARGETS = ["base", "overlays/dev", "overlays/prod"]
# Supplied by the operator (see the comments in k8s/overlays/prod/kustomization.yaml).
EXTERNAL = {
    "base": External(secrets={"gridts-influxdb-admin"}),
    "overlays/dev": External(),
    "overlays/prod": External(secrets={"gridts-influxdb-admin", "grid-example-com-tls"}),
}


@cache
def built(target: str) -> list[Obj]:
    return k.kustomize_build(ROOT / "k8s" / target)


def test_base_is_the_current_chart_render() -> None:
    k.tool("helm")
    k.run(["bash", str(ROOT / "k8s" / "generate"), "--check"])


@pytest.mark.parametrize("kube_version", k.KUBE_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_build_validates_strictly(target: str, kube_version: str) -> None:
    objects = built(target)
    assert len(objects) >= 10
    assert k.schema_errors(objects, kube_version) == []


@pytest.mark.parametrize("target", TARGETS)
def test_build_follows_the_rules(target: str) -> None:
    assert k.problems(built(target), EXTERNAL[target]) == []


@pytest.mark.parametrize(
    ("target", "namespace"), [("overlays/dev", "gridts-dev"), ("overlays/prod", "gridts")]
)
def test_overlay_namespace_reaches_every_object_and_the_rolebinding(
    target: str, namespace: str
) -> None:
    objects = [o for o in built(target) if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in objects} == {namespace}
    binding = one(objects, "RoleBinding", "gridts-tokens")
    assert {s["namespace"] for s in binding["subjects"]} == {namespace}


def test_no_helm_leftovers() -> None:
    for obj in built("overlays/prod"):
        labels = obj["metadata"].get("labels") or {}
        assert "helm.sh/chart" not in labels
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize"
        assert "helm.sh/hook" not in (obj["metadata"].get("annotations") or {})


def test_dev_overlay() -> None:
    objects = built("overlays/dev")
    assert one(objects, "Deployment", "gridts-api")["spec"]["replicas"] == 1
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    images = {c["image"] for p in k.pod_templates(objects) for c in p.containers()}
    assert images == {"gridts:dev", "influxdb:2.9.1", "haproxy:2.8"}
    assert one(objects, "Deployment", "gridts-gateway")["spec"]["replicas"] == 1
    # The generated admin Secret keeps its name (see test_job_name_follows_every_reference...).
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "gridts-influxdb-admin"


def test_prod_overlay() -> None:
    objects = built("overlays/prod")
    deploy = one(objects, "Deployment", "gridts-api")
    assert "replicas" not in deploy["spec"], "the HPA owns the replica count"
    hpa = one(objects, "HorizontalPodAutoscaler", "gridts-api")
    assert hpa["spec"]["minReplicas"] >= 2
    assert one(objects, "PodDisruptionBudget", "gridts-api")["spec"]["minAvailable"] == 2
    sts = one(objects, "StatefulSet", "gridts-influxdb")
    assert (
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        == "200Gi"
    )
    images = {c["image"] for p in k.pod_templates(objects) for c in p.containers()}
    assert images == {"registry.example.com/grid/gridts:0.1.0", "influxdb:2.9.1", "haproxy:2.8"}
    assert not [o for o in objects if o["kind"] == "Secret"], "no secret material in git for prod"
    assert one(objects, "CronJob", "gridts-ingest")["spec"]["suspend"] is True


def test_dev_overlay_creates_its_namespace_first() -> None:
    """`kubectl apply -k k8s/overlays/dev` on a fresh cluster: the Namespace is part of the
    build and comes first (kubectl applies in this order), so nothing hits 'namespace not
    found'."""
    objects = built("overlays/dev")
    assert objects[0]["kind"] == "Namespace"
    assert objects[0]["metadata"]["name"] == "gridts-dev"
    assert [o for o in objects if o["kind"] == "Namespace"] == objects[:1]


def test_documented_apply_commands_are_the_ones_that_work() -> None:
    """The README and the overlay comments give the same commands: the dev overlay needs
    nothing before it; prod needs its namespace and the admin Secret first."""
    readme = (ROOT / "README.md").read_text()
    dev = (ROOT / "k8s" / "overlays" / "dev" / "kustomization.yaml").read_text()
    prod = (ROOT / "k8s" / "overlays" / "prod" / "kustomization.yaml").read_text()
    assert "#   kubectl apply -k k8s/overlays/dev\n" in dev
    assert "create namespace" not in dev
    assert "kubectl apply -k k8s/overlays/dev" in readme
    assert "#   kubectl create namespace gridts\n" in prod
    assert prod.index("create namespace gridts") < prod.index("create secret generic")
    assert prod.index("create secret generic") < prod.index("kubectl apply -k k8s/overlays/prod")
    assert "kubectl create namespace gridts" in readme


def build_with_tag(overlay: str, tag: str, tmp_path: Path) -> list[Obj]:
    """`kubectl apply -k` of an overlay with another image tag, as the e2e and operators do."""
    work = tmp_path / tag
    work.mkdir(parents=True)
    (work / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(ROOT / 'k8s' / overlay, work)}\n"
        f"images:\n  - name: gridts\n    newTag: {tag}\n"
        "  - name: registry.example.com/grid/gridts\n"
        f"    newTag: {tag}\n"
    )
    return k.kustomize_build(work)


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_reapplying_with_a_new_tag_creates_a_new_job(overlay: str, tmp_path: Path) -> None:
    """A Job's pod template is immutable: `kubectl apply` of a changed template fails on it
    (after the Deployment and CronJob already moved). The kustomize Job's name carries a hash
    of its final spec, so a new tag is a new Job and the old name is left alone; the same
    build gives the same name, so re-applying unchanged is a no-op. Finished Jobs go away
    after ttlSecondsAfterFinished."""
    first, again, second = (
        build_with_tag(overlay, "1.0.0", tmp_path / "a"),
        build_with_tag(overlay, "1.0.0", tmp_path / "b"),
        build_with_tag(overlay, "1.0.1", tmp_path / "c"),
    )
    names = {tag: {(o["kind"], o["metadata"]["name"]) for o in objs} for tag, objs in
             (("first", first), ("again", again), ("second", second))}  # fmt: skip
    assert names["first"] == names["again"]
    changed = names["first"] ^ names["second"]
    assert {kind for kind, _ in changed} == {"Job"}, changed
    for objects in (first, second):
        (job,) = [o for o in objects if o["kind"] == "Job"]
        assert job["metadata"]["name"].startswith("gridts-tokens-")
        assert 0 < job["spec"]["ttlSecondsAfterFinished"] <= 7 * 86400
        annotations = job["metadata"].get("annotations") or {}
        assert not annotations, "no build annotations left"
        images = {c["image"] for c in job["spec"]["template"]["spec"]["containers"]}
        assert {i.rsplit(":", 1)[1] for i in images} <= {"1.0.0", "1.0.1"}


def test_job_name_follows_every_reference_it_has() -> None:
    """kustomize hashes the Job's name before it rewrites references to hashed names, so the
    Job must refer to no generated (hash-suffixed) object: a changed admin Secret would keep
    the Job's name and change its immutable template."""
    for target in ("overlays/dev", "overlays/prod"):
        objects = built(target)
        (job,) = [o for o in objects if o["kind"] == "Job"]
        text = json.dumps(job["spec"])
        generated = [
            o["metadata"]["name"]
            for o in objects
            if o["kind"] in {"Secret", "ConfigMap"}
            and re.search(r"-[a-z0-9]{10}$", o["metadata"]["name"])
        ]
        assert not [name for name in generated if name in text], generated


def test_token_descriptions_name_the_namespace_the_job_runs_in() -> None:
    """The base is rendered once for namespace gridts and applied to any namespace: the Job
    describes its tokens with the namespace of its pod, not the render's."""
    (job,) = [o for o in built("overlays/dev") if o["kind"] == "Job"]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    specs = json.loads(env["TOKEN_SPECS"]["value"])
    assert all("description" not in spec for spec in specs)
    assert "gridts/" not in env["TOKEN_SPECS"]["value"]
