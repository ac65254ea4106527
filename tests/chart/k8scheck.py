"""Rendering and checking of Kubernetes objects without a cluster.

`render_chart` and `kustomize_build` run the real tools (installed by scripts/install-tools),
`schema_errors` validates each object strictly against the OpenAPI-derived JSON schemas that the
`kubernetes-validate` package ships, and `problems` applies the project's own rules (selectors,
references, probes, resources, security contexts, entrypoints) to a whole set of objects.

Every check returns a list of human-readable problems instead of asserting, so that the
mutation tests can show each rule fires on a deliberately broken chart.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gridts"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the schema
# package ships.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())

Obj = dict[str, Any]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
# Custom resources: no schema in kubernetes-validate; `custom_resource_errors` checks them.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# A Prometheus duration (`for:` of an alert, a scrape interval).
DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")


class ToolError(AssertionError):
    """A tool (helm, kustomize) exited non-zero."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: run `bash scripts/install-tools` (make tools)")
    return path


def run(args: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def load_documents(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_chart(
    chart: Path = CHART,
    values: Iterable[Path] = (),
    sets: Iterable[str] = (),
    release: str = "grid",
    namespace: str = "gridts",
    kube_version: str = "1.30.0",
    skip_tests: bool = False,
    helm: str = "helm",
) -> list[Obj]:
    args = [tool(helm), "template", release, str(chart), "--namespace", namespace]
    args += ["--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    if skip_tests:
        args.append("--skip-tests")
    return load_documents(run(args))


def kustomize_build(path: Path) -> list[Obj]:
    return load_documents(run([tool("kustomize"), "build", str(path)]))


# ---- schema validation ------------------------------------------------------------------------


def schema_errors(objects: Iterable[Obj], kube_version: str) -> list[str]:
    errors = []
    for obj in objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
            errors += [f"{what}: {e}" for e in custom_resource_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{what} (Kubernetes {kube_version}): {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{what}: {exc.message}")
    return errors


def custom_resource_errors(obj: Obj) -> list[str]:
    """The ServiceMonitor and PrometheusRule fields the chart uses, checked by hand (no CRD
    schema offline)."""
    if obj.get("kind") == "PrometheusRule":
        return prometheus_rule_errors(obj)
    spec = obj.get("spec", {})
    errors = []
    allowed = {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    if set(spec) - allowed:
        errors.append(f"unexpected spec fields {sorted(set(spec) - allowed)}")
    if not spec.get("selector", {}).get("matchLabels"):
        errors.append("spec.selector.matchLabels missing")
    for endpoint in spec.get("endpoints", []) or [None]:
        if not isinstance(endpoint, dict) or not endpoint.get("port"):
            errors.append("every endpoint needs a named port")
        elif not DURATION.fullmatch(str(endpoint.get("interval", "30s"))):
            errors.append(f"bad interval {endpoint.get('interval')!r}")
    return errors


def prometheus_rule_errors(obj: Obj) -> list[str]:
    """Every group named, every rule an alert with a PromQL expression that parses (the Rust
    promql-parser crate), a valid `for`, a severity and a summary and description."""
    errors = []
    groups = obj.get("spec", {}).get("groups") or []
    if not groups:
        errors.append("spec.groups missing")
    for group in groups:
        if not group.get("name") or not group.get("rules"):
            errors.append(f"group {group.get('name')!r} needs a name and rules")
        for rule in group.get("rules") or []:
            name = rule.get("alert") or "?"
            try:
                promql_parser.parse(str(rule.get("expr", "")))
            except ValueError as exc:
                errors.append(f"{name}: expr does not parse: {exc}")
            if not DURATION.fullmatch(str(rule.get("for", ""))):
                errors.append(f"{name}: bad for {rule.get('for')!r}")
            if (rule.get("labels") or {}).get("severity") not in {"critical", "warning", "info"}:
                errors.append(f"{name}: severity critical, warning or info")
            if not {"summary", "description"} <= set(rule.get("annotations") or {}):
                errors.append(f"{name}: needs a summary and a description")
    return errors


# ---- pods inside workloads -----------------------------------------------------------------


@dataclass
class PodTemplate:
    owner: Obj
    metadata: Obj
    spec: Obj
    claim_templates: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.owner['kind']}/{self.owner['metadata']['name']}"

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.metadata.get("labels") or {})

    def containers(self) -> Iterator[Obj]:
        yield from self.spec.get("initContainers") or []
        yield from self.spec.get("containers") or []


def pod_templates(objects: Iterable[Obj]) -> list[PodTemplate]:
    pods = []
    for obj in objects:
        kind = obj.get("kind")
        spec = obj.get("spec") or {}
        if kind == "Pod":
            pods.append(PodTemplate(obj, obj["metadata"], spec))
        elif kind == "CronJob":
            template = spec["jobTemplate"]["spec"]["template"]
            pods.append(PodTemplate(obj, template.get("metadata", {}), template["spec"]))
        elif kind in WORKLOAD_KINDS:
            claims = [c["metadata"]["name"] for c in spec.get("volumeClaimTemplates") or []]
            template = spec["template"]
            pods.append(PodTemplate(obj, template.get("metadata", {}), template["spec"], claims))
    return pods


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    if not matches(selector.get("matchLabels") or {}, labels):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def by_kind(objects: Iterable[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o.get("kind") == kind}


def one(objects: Iterable[Obj], kind: str, suffix: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} named *{suffix}, found {len(found)}"
    return found[0]


# ---- the project's rules -------------------------------------------------------------------


@dataclass
class External:
    """Objects a render refers to but does not contain, because the operator supplies them."""

    secrets: set[str] = field(default_factory=set)
    config_maps: set[str] = field(default_factory=set)
    claims: set[str] = field(default_factory=set)


def problems(objects: list[Obj], external: External | None = None) -> list[str]:
    external = external or External()
    found: list[str] = []
    found += selector_problems(objects)
    found += reference_problems(objects, external)
    found += probe_and_resource_problems(objects)
    found += security_problems(objects)
    found += entrypoint_problems(objects)
    return found


def selector_problems(objects: list[Obj]) -> list[str]:
    found = []
    pods = pod_templates(objects)
    services = by_kind(objects, "Service")
    for obj in objects:
        kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec") or {}
        what = f"{kind}/{name}"
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
            labels = spec["template"].get("metadata", {}).get("labels") or {}
            if not spec.get("selector", {}).get("matchLabels"):
                found.append(f"{what}: no selector.matchLabels")
            elif not selector_matches(spec["selector"], labels):
                found.append(f"{what}: selector {spec['selector']} does not match its template")
        if kind == "StatefulSet":
            governing = services.get(spec.get("serviceName", ""))
            if governing is None or governing["spec"].get("clusterIP") != "None":
                found.append(
                    f"{what}: serviceName {spec.get('serviceName')!r} is no headless Service"
                )
        if kind == "Service" and spec.get("selector"):
            selected = [p for p in pods if matches(spec["selector"], p.labels)]
            if not selected:
                found.append(f"{what}: selector {spec['selector']} matches no pod template")
            for port in spec.get("ports", []):
                target = port.get("targetPort", port["port"])
                for pod in selected:
                    names = {
                        p.get("name"): p["containerPort"]
                        for c in pod.containers()
                        for p in c.get("ports") or []
                    }
                    if isinstance(target, str) and target not in names:
                        found.append(f"{what}: targetPort {target!r} not a port of {pod.name}")
                    if isinstance(target, int) and target not in names.values():
                        found.append(f"{what}: targetPort {target} not a port of {pod.name}")
        if kind == "PodDisruptionBudget" and not any(
            selector_matches(spec["selector"], p.labels) for p in pods
        ):
            found.append(f"{what}: selector matches no pod template")
        if kind == "NetworkPolicy":
            if not any(selector_matches(spec["podSelector"], p.labels) for p in pods):
                found.append(f"{what}: podSelector matches no pod template")
            for rule in spec.get("ingress") or []:
                for peer in rule.get("from") or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        sel = peer["podSelector"]
                        if not any(selector_matches(sel, p.labels) for p in pods):
                            found.append(f"{what}: peer podSelector {sel} matches no pod template")
        if kind == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            if ref["name"] not in by_kind(objects, ref["kind"]):
                found.append(f"{what}: scaleTargetRef {ref['kind']}/{ref['name']} not rendered")
        if kind == "Ingress":
            for rule in spec.get("rules") or []:
                for path in rule.get("http", {}).get("paths", []):
                    backend = path["backend"]["service"]
                    svc = services.get(backend["name"])
                    port_names = {
                        p.get("name") for p in (svc or {}).get("spec", {}).get("ports", [])
                    }
                    if svc is None:
                        found.append(f"{what}: backend Service {backend['name']} not rendered")
                    elif backend["port"].get("name") not in port_names | {None}:
                        found.append(f"{what}: backend port {backend['port']} not on the Service")
        if kind == "ServiceMonitor":
            monitored = [
                s
                for s in services.values()
                if matches(spec["selector"]["matchLabels"], s["metadata"].get("labels") or {})
            ]
            if not monitored:
                found.append(f"{what}: selects no Service")
            for endpoint in spec.get("endpoints", []):
                if not any(
                    endpoint["port"] in {p.get("name") for p in s["spec"]["ports"]}
                    for s in monitored
                ):
                    found.append(
                        f"{what}: endpoint port {endpoint['port']!r} on no selected Service"
                    )
    return found


def produced_by_jobs(objects: list[Obj]) -> dict[str, set[str]]:
    """Secrets (name -> keys) that a Job of the render creates at run time (the tokens Job)."""
    produced: dict[str, set[str]] = {}
    for pod in pod_templates(objects):
        for container in pod.containers():
            for env in container.get("env") or []:
                if env["name"] == "TOKEN_SPECS":
                    for spec in json.loads(env["value"]):
                        keys = produced.setdefault(spec["secret"], set())
                        keys.add(spec["key"])
                        if spec.get("scope_key"):  # the Job writes it next to the token
                            keys.add(spec["scope_key"])
    return produced


def reference_problems(objects: list[Obj], external: External) -> list[str]:
    secrets = {
        n: set((o.get("data") or {}) | (o.get("stringData") or {}))
        for n, o in by_kind(objects, "Secret").items()
    }
    for name, keys in produced_by_jobs(objects).items():
        secrets.setdefault(name, set()).update(keys)
    config_maps = {n: set(o.get("data") or {}) for n, o in by_kind(objects, "ConfigMap").items()}
    accounts = set(by_kind(objects, "ServiceAccount"))
    claims = set(by_kind(objects, "PersistentVolumeClaim")) | external.claims
    found = []

    def need_secret(where: str, name: str, key: str | None) -> None:
        if name in external.secrets:
            return
        if name not in secrets:
            found.append(f"{where}: Secret {name!r} is neither rendered nor declared external")
        elif key is not None and key not in secrets[name]:
            found.append(f"{where}: Secret {name!r} has no key {key!r}")

    def need_config_map(where: str, name: str, key: str | None) -> None:
        if name in external.config_maps:
            return
        if name not in config_maps:
            found.append(f"{where}: ConfigMap {name!r} is neither rendered nor declared external")
        elif key is not None and key not in config_maps[name]:
            found.append(f"{where}: ConfigMap {name!r} has no key {key!r}")

    for pod in pod_templates(objects):
        spec = pod.spec
        account = spec.get("serviceAccountName")
        if account is None:
            found.append(f"{pod.name}: no serviceAccountName (would run as `default`)")
        elif account not in accounts:
            found.append(f"{pod.name}: ServiceAccount {account!r} not rendered")
        for pull in spec.get("imagePullSecrets") or []:
            external_or_rendered = pull["name"] in external.secrets or pull["name"] in secrets
            if not external_or_rendered:
                found.append(f"{pod.name}: imagePullSecret {pull['name']!r} not declared external")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for volume in volumes.values():
            if "secret" in volume:
                need_secret(pod.name, volume["secret"]["secretName"], None)
            if "configMap" in volume:
                for item in volume["configMap"].get("items") or [{"key": None}]:
                    need_config_map(pod.name, volume["configMap"]["name"], item["key"])
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in claims:
                    found.append(
                        f"{pod.name}: PVC {claim!r} neither rendered nor declared external"
                    )
        for container in pod.containers():
            where = f"{pod.name} container {container['name']}"
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                if "secretKeyRef" in source and not source["secretKeyRef"].get("optional"):
                    ref = source["secretKeyRef"]
                    need_secret(where, ref["name"], ref["key"])
                if "configMapKeyRef" in source and not source["configMapKeyRef"].get("optional"):
                    ref = source["configMapKeyRef"]
                    need_config_map(where, ref["name"], ref["key"])
            for env_from in container.get("envFrom") or []:
                if "secretRef" in env_from:
                    need_secret(where, env_from["secretRef"]["name"], None)
                if "configMapRef" in env_from:
                    need_config_map(where, env_from["configMapRef"]["name"], None)
            for mount in container.get("volumeMounts") or []:
                if mount["name"] not in volumes and mount["name"] not in pod.claim_templates:
                    found.append(f"{where}: volumeMount {mount['name']!r} has no volume")
    roles = by_kind(objects, "Role")
    for name, binding in by_kind(objects, "RoleBinding").items():
        if binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] not in roles:
            found.append(f"RoleBinding/{name}: Role {binding['roleRef']['name']!r} not rendered")
        for subject in binding.get("subjects") or []:
            if subject["kind"] == "ServiceAccount" and subject["name"] not in accounts:
                found.append(f"RoleBinding/{name}: ServiceAccount {subject['name']!r} not rendered")
    for name, ingress in by_kind(objects, "Ingress").items():
        for tls in ingress["spec"].get("tls") or []:
            if tls["secretName"] not in secrets and tls["secretName"] not in external.secrets:
                found.append(
                    f"Ingress/{name}: TLS Secret {tls['secretName']!r} not declared external"
                )
    return found


def _quantity(value: Any) -> bool:
    return value not in (None, "", 0, "0")


def probe_and_resource_problems(objects: list[Obj]) -> list[str]:
    found = []
    for pod in pod_templates(objects):
        long_running = pod.owner["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}
        for container in pod.containers():
            where = f"{pod.name} container {container['name']}"
            if long_running:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in container:
                        found.append(f"{where}: no {probe}")
            resources = container.get("resources") or {}
            for kind, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
                if not _quantity((resources.get(kind) or {}).get(key)):
                    found.append(f"{where}: no resources.{kind}.{key}")
    return found


def security_problems(objects: list[Obj]) -> list[str]:
    found = []
    for pod in pod_templates(objects):
        spec = pod.spec
        pod_sc = spec.get("securityContext") or {}
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                found.append(f"{pod.name}: {host} is set")
        for volume in spec.get("volumes") or []:
            if "hostPath" in volume:
                found.append(f"{pod.name}: hostPath volume {volume['name']!r}")
        for container in pod.containers():
            where = f"{pod.name} container {container['name']}"
            sc = container.get("securityContext") or {}

            def effective(key: str, sc: Obj = sc, pod_sc: Obj = pod_sc) -> Any:
                return sc.get(key, pod_sc.get(key))

            if effective("runAsNonRoot") is not True:
                found.append(f"{where}: runAsNonRoot is not true")
            if effective("runAsUser") in (0, None):
                found.append(f"{where}: no numeric non-root runAsUser")
            if sc.get("privileged"):
                found.append(f"{where}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                found.append(f"{where}: readOnlyRootFilesystem is not true")
            capabilities = sc.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                found.append(f"{where}: capabilities.drop lacks ALL")
            if capabilities.get("add"):
                found.append(f"{where}: adds capabilities {capabilities['add']}")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                found.append(f"{where}: seccompProfile is not RuntimeDefault")
    return found


# ---- the image and its entrypoint ------------------------------------------------------------


@dataclass
class Dockerfile:
    stages: list[list[tuple[str, str]]]  # per stage: (INSTRUCTION, rest of line)

    @classmethod
    def parse(cls, path: Path = ROOT / "Dockerfile") -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text())
        stages: list[list[tuple[str, str]]] = [[]]
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, rest = line.partition(" ")
            if instruction.upper() == "FROM":
                stages.append([])
            stages[-1].append((instruction.upper(), rest.strip()))
        return cls(stages[1:])

    @property
    def final(self) -> list[tuple[str, str]]:
        return self.stages[-1]

    def last(self, instruction: str) -> str | None:
        values = [rest for ins, rest in self.final if ins == instruction]
        return values[-1] if values else None

    @property
    def entrypoint(self) -> list[str]:
        return list(json.loads(self.last("ENTRYPOINT") or "[]"))

    @property
    def cmd(self) -> list[str]:
        return list(json.loads(self.last("CMD") or "[]"))

    @property
    def user(self) -> tuple[int, int]:
        user, _, group = (self.last("USER") or "0").partition(":")
        return int(user), int(group or user)


def gridts_image_repository(objects: list[Obj]) -> set[str]:
    """Images of the release that are not InfluxDB's or the gateway's (HAProxy): the one gridts
    image."""
    images = set()
    for pod in pod_templates(objects):
        for container in pod.containers():
            repository = container["image"].split("@")[0].rsplit(":", 1)[0]
            if not repository.endswith(("influxdb", "haproxy")):
                images.add(container["image"])
    return images


def runnable_module(module: str) -> bool:
    """`python -m module` runs something of src/: a package with a __main__, or a module with a
    `__main__` guard."""
    path = ROOT / "src" / Path(*module.split(".")) if module else ROOT / "src"
    if (path / "__main__.py").exists():
        return True
    file = path.with_suffix(".py")
    return file.exists() and 'if __name__ == "__main__":' in file.read_text()


def entrypoint_problems(objects: list[Obj], dockerfile: Dockerfile | None = None) -> list[str]:
    """Containers of the gridts image use the Dockerfile's ENTRYPOINT (an init, then
    `python -m`) with a module of src/ as args[0] (a package with __main__, or a module with a
    `__main__` guard)."""
    dockerfile = dockerfile or Dockerfile.parse()
    found = []
    if dockerfile.entrypoint[-2:] != ["python", "-m"]:
        return [f"Dockerfile ENTRYPOINT is {dockerfile.entrypoint}, the checks expect python -m"]
    uid, _ = dockerfile.user
    for pod in pod_templates(objects):
        for container in pod.containers():
            if container["image"] not in gridts_image_repository(objects):
                continue
            where = f"{pod.name} container {container['name']}"
            if "command" in container:
                found.append(f"{where}: overrides the image ENTRYPOINT with {container['command']}")
            args = container.get("args") or dockerfile.cmd
            module = args[0] if args else ""
            run_as = (container.get("securityContext") or {}).get(
                "runAsUser", (pod.spec.get("securityContext") or {}).get("runAsUser")
            )
            if run_as != uid:
                found.append(f"{where}: runAsUser {run_as} is not the image's USER {uid}")
            if not runnable_module(module):
                found.append(f"{where}: `python -m {module}` is not a runnable module of src/")
    return found
