"""Chart values a Helm user expects (issue 11, item 14): the API's own settings, extra env,
pod annotations and labels, ServiceAccount annotations, overridable security contexts (OpenShift),
documented in the chart README (tests/chart/test_chart_readme.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from annotated_types import Ge, Gt

import influxdb_local
from app.settings import Settings
from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART, ROOT, External, Obj, one

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def values_file(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    """A values file (not --set: numbers from files reach the templates as float64)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def render(tmp_path: Path, values: dict[str, Any], helm: str = "helm") -> list[Obj]:
    return k.render_chart(values=[values_file(tmp_path, values)], helm=helm)


def container(objects: list[Obj], kind: str, suffix: str) -> Obj:
    pod = pod_template(objects, kind, suffix)
    (c,) = pod["spec"]["containers"]
    return dict(c)


def pod_template(objects: list[Obj], kind: str, suffix: str) -> Obj:
    obj = one(objects, kind, suffix)
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"])
    if kind == "Pod":
        return obj
    return dict(obj["spec"]["template"])


def env_names(c: Obj) -> list[str]:
    return [e["name"] for e in c.get("env") or []]


def plain_env(c: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env") or [] if "value" in e}


# ---- api.settings -------------------------------------------------------------------------------

# chart value -> (environment variable, the API's own setting)
SETTINGS = {
    "queryTimeoutSeconds": ("API_QUERY_TIMEOUT_SECONDS", "api_query_timeout_seconds"),
    "maxPoints": ("API_MAX_POINTS", "api_max_points"),
    "maxScanPoints": ("API_MAX_SCAN_POINTS", "api_max_scan_points"),
    "concurrentRequests": ("API_CONCURRENT_REQUESTS", "api_concurrent_requests"),
    "influxqlReads": ("API_INFLUXQL_READS", "api_influxql_reads"),
    "heavyQueries": ("API_HEAVY_QUERIES", "api_heavy_queries"),
    "heavyWaitSeconds": ("API_HEAVY_WAIT_SECONDS", "api_heavy_wait_seconds"),
    "catalogTtlSeconds": ("API_CATALOG_TTL_SECONDS", "api_catalog_ttl_seconds"),
    "pendingRefreshSeconds": ("API_PENDING_REFRESH_SECONDS", "api_pending_refresh_seconds"),
}


def api_settings_read_from(c: Obj, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The API's own Settings, read from the rendered container's environment."""
    for variable, _ in SETTINGS.values():
        monkeypatch.delenv(variable, raising=False)
    for name, value in plain_env(c).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INFLUX_TOKEN", "from-the-secret")
    return Settings()


def test_api_settings_default_to_the_apis_own(monkeypatch: pytest.MonkeyPatch) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["api"]["settings"]
    assert set(values) == set(SETTINGS)
    for key, (_, field) in SETTINGS.items():
        assert values[key] == Settings.model_fields[field].default, key
    c = container(k.render_chart(), "Deployment", "-api")
    env = plain_env(c)
    assert {env[name] for name, _ in SETTINGS.values()}, "rendered"
    settings = api_settings_read_from(c, monkeypatch)
    for key, (_, field) in SETTINGS.items():
        assert getattr(settings, field) == values[key], key


def test_api_settings_reach_the_api_as_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set in a values file, so that the numbers are float64 in the templates: 1000000 must not
    become 1e+06 (which the API refuses for an integer)."""
    chosen = {
        "queryTimeoutSeconds": 120.5,
        "maxPoints": 1_000_000,
        "maxScanPoints": 20_000_000,
        "concurrentRequests": 0,
        "influxqlReads": False,
        "heavyQueries": 4,
        "heavyWaitSeconds": 0,
        "catalogTtlSeconds": 0.5,
        "pendingRefreshSeconds": 0.25,
    }
    for helm in ("helm", "helm4"):
        objects = render(tmp_path, {"api": {"settings": chosen}}, helm=helm)
        c = container(objects, "Deployment", "-api")
        env = plain_env(c)
        assert env["API_MAX_POINTS"] == "1000000"
        assert env["API_MAX_SCAN_POINTS"] == "20000000"
        assert env["API_QUERY_TIMEOUT_SECONDS"] == "120.5"
        settings = api_settings_read_from(c, monkeypatch)
        for key, (_, field) in SETTINGS.items():
            assert getattr(settings, field) == chosen[key], key
        for version in k.KUBE_VERSIONS:
            assert k.schema_errors(objects, version) == []


def test_the_grace_period_covers_the_query_timeout(tmp_path: Path) -> None:
    """uvicorn lets running requests finish after SIGTERM; they may run as long as the query
    timeout, so the kubelet must not kill the pod before (after the preStop delay)."""

    def grace(values: dict[str, Any]) -> int:
        spec = pod_template(render(tmp_path, values), "Deployment", "-api")["spec"]
        return int(spec["terminationGracePeriodSeconds"])

    assert grace({}) == 5 + 30
    assert grace({"api": {"settings": {"queryTimeoutSeconds": 120.5}}}) == 5 + 121
    assert grace({"api": {"settings": {"queryTimeoutSeconds": 10}}}) == 5 + 30
    assert (
        grace({"api": {"shutdownDelaySeconds": 0, "settings": {"queryTimeoutSeconds": 90}}}) == 90
    )


def pydantic_bounds(field: str) -> dict[str, float]:
    bounds = {}
    for item in Settings.model_fields[field].metadata:
        if isinstance(item, Gt):
            assert isinstance(item.gt, int | float), item
            bounds["exclusiveMinimum"] = float(item.gt)
        if isinstance(item, Ge):
            assert isinstance(item.ge, int | float), item
            bounds["minimum"] = float(item.ge)
    return bounds


def test_api_settings_schema_has_the_apis_own_types_and_bounds() -> None:
    """What the API would refuse at start (a crash-looping Deployment) the schema refuses at
    `helm install`."""
    props = SCHEMA["properties"]["api"]["properties"]["settings"]["properties"]
    assert set(props) == set(SETTINGS)
    json_types: dict[object, str] = {int: "integer", float: "number", bool: "boolean"}
    for key, (_, field) in SETTINGS.items():
        annotation = Settings.model_fields[field].annotation
        assert props[key]["type"] == json_types[annotation], key
        schema_bounds = {
            b: float(props[key][b]) for b in ("minimum", "exclusiveMinimum") if b in props[key]
        }
        assert schema_bounds == pydantic_bounds(field), key


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"queryTimeoutSeconds": 0}, "/api/settings/queryTimeoutSeconds"),
        ({"queryTimeoutSeconds": "30s"}, "/api/settings/queryTimeoutSeconds"),
        ({"maxPoints": 0}, "/api/settings/maxPoints"),
        ({"maxPoints": 1.5}, "/api/settings/maxPoints"),
        ({"maxScanPoints": "500000"}, "/api/settings/maxScanPoints"),
        ({"concurrentRequests": -1}, "/api/settings/concurrentRequests"),
        ({"concurrentRequests": 2.5}, "/api/settings/concurrentRequests"),
        ({"influxqlReads": "yes"}, "/api/settings/influxqlReads"),
        ({"heavyQueries": 0}, "/api/settings/heavyQueries"),
        ({"heavyWaitSeconds": -1}, "/api/settings/heavyWaitSeconds"),
        ({"catalogTtlSeconds": -0.5}, "/api/settings/catalogTtlSeconds"),
        ({"maxPionts": 5}, "maxPionts"),
    ],
)
def test_api_settings_out_of_range_fail_the_render(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        render(tmp_path, {"api": {"settings": settings}})


# ---- extraEnv -----------------------------------------------------------------------------------

EXTRA = [
    {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"},
    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "proxy-auth", "key": "user"}}},
    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
]


def test_extra_env_follows_the_charts_own(tmp_path: Path) -> None:
    indexed = {"ingest": {"indexed": {"enabled": True}}}
    extra = {"api": {"extraEnv": EXTRA}, "ingest": {"extraEnv": EXTRA}}
    objects = render(tmp_path, merged(indexed, merged(extra, {"influxdb": {"extraEnv": EXTRA}})))
    without = render(tmp_path, indexed)
    for kind, suffix in (
        ("Deployment", "-api"),
        ("CronJob", "-ingest"),
        ("StatefulSet", "-influxdb"),
    ):
        own = container(without, kind, suffix)["env"]
        # The chart's variables first (extraEnv may refer to them as $(NAME)), then these.
        assert container(objects, kind, suffix)["env"] == own + EXTRA
    assert "JOB_INDEX" in env_names(container(objects, "CronJob", "-ingest"))
    for version in k.KUBE_VERSIONS:
        assert k.schema_errors(objects, version) == []
    assert k.problems(objects, External(secrets={"proxy-auth"})) == []
    assert any("proxy-auth" in p for p in k.problems(objects))


def test_ops_submit_keeps_the_extra_env_of_the_template(tmp_path: Path) -> None:
    from ops import submit

    cronjob = one(render(tmp_path, {"ingest": {"extraEnv": EXTRA[:1]}}), "CronJob", "-ingest")
    job = submit.build_job(cronjob, namespace="gridts", sources=["https://example.com/a.csv"])
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["env"][-1] == EXTRA[0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"api": {"extraEnv": [{"name": "API_MAX_POINTS", "value": "5"}]}},
            "api.extraEnv: API_MAX_POINTS is set by the chart itself (from api.settings.maxPoints)",
        ),
        (
            {"api": {"extraEnv": [{"name": "INFLUX_TOKEN", "value": "t"}]}},
            "INFLUX_TOKEN is set by the chart itself (from tokens.api.existingSecret)",
        ),
        (
            {"api": {"extraEnv": [{"name": "API_TOKENS", "value": "t"}]}},
            "API_TOKENS is set by the chart itself (from api.auth.enabled",
        ),
        (
            {"ingest": {"extraEnv": [{"name": "INFLUX_URL", "value": "http://x"}]}},
            "ingest.extraEnv: INFLUX_URL is set by the chart itself",
        ),
        (
            {"ingest": {"extraEnv": [{"name": "JOB_INDEX", "value": "3"}]}},
            "ingest.extraEnv: JOB_INDEX is set by the chart itself",
        ),
        (
            {"ingest": {"extraEnv": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "ingest.extraEnv: A is given twice",
        ),
        *(
            (
                {"influxdb": {"extraEnv": [{"name": name, "value": "/x"}]}},
                f"influxdb.extraEnv: {name} is set by the chart itself",
            )
            for name in ("INFLUXD_BOLT_PATH", "INFLUXD_ENGINE_PATH", "INFLUXD_REPORTING_DISABLED")
        ),
        (
            {"influxdb": {"extraEnv": [{"name": "INFLUXD_PPROF_DISABLED", "value": "false"}]}},
            "influxdb.extraEnv: INFLUXD_PPROF_DISABLED is set by the chart itself (from "
            "influxdb.profiling)",
        ),
        ({"influxdb": {"profiling": "yes"}}, "/influxdb/profiling"),
        (
            {
                "influxdb": {
                    "extraEnv": [
                        {"name": "INFLUXD_STORAGE_CACHE_SNAPSHOT_MEMORY_SIZE", "value": "25MB"}
                    ]
                }
            },
            "influxdb.extraEnv: INFLUXD_STORAGE_CACHE_SNAPSHOT_MEMORY_SIZE is set by the chart "
            "itself (from influxdb.cacheSnapshotSize)",
        ),
        *(
            ({"influxdb": {"cacheSnapshotSize": size}}, "/influxdb/cacheSnapshotSize")
            for size in ("", "25MB", "2m", "2 MiB", "0MiB", "-1MiB", "2.5MiB", 2097152)
        ),
        ({"influxdb": {"extraEnv": [{"name": "INFLUXD_X", "value": 1}]}}, "/influxdb/extraEnv/0"),
        ({"api": {"extraEnv": [{"name": "N", "value": 5}]}}, "/api/extraEnv/0/value"),
        ({"api": {"extraEnv": [{"value": "x"}]}}, "/api/extraEnv/0"),
        ({"api": {"extraEnv": [{"name": "N", "vaule": "x"}]}}, "vaule"),
        (
            {
                "ingest": {
                    "extraEnv": [
                        {"name": "N", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}
                    ]
                }
            },
            "/ingest/extraEnv/0",
        ),
        ({"ingest": {"extraEnv": {"N": "x"}}}, "/ingest/extraEnv"),
    ],
)
def test_bad_extra_env_fails_the_render(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        render(tmp_path, values)


# ---- pod annotations and labels, ServiceAccount annotations -------------------------------------

# component -> (values path, kind and name suffix of its workload, ServiceAccount suffix)
COMPONENTS = {
    "api": (("api",), ("Deployment", "-api"), "-api"),
    "influxdb": (("influxdb",), ("StatefulSet", "-influxdb"), "-influxdb"),
    "ingest": (("ingest",), ("CronJob", "-ingest"), "-ingest"),
    "tokens": (("tokens", "job"), ("Job", "-tokens-1"), "-tokens"),
}


def nested(path: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def test_pod_annotations_labels_and_service_account_annotations(tmp_path: Path) -> None:
    values = merged(
        *(
            nested(
                path,
                {
                    "podAnnotations": {"example.com/for": name},
                    "podLabels": {"example.com/team": f"grid-{name}"},
                    "serviceAccount": {"annotations": {"example.com/role": f"role-{name}"}},
                },
            )
            for name, (path, _, _) in COMPONENTS.items()
        )
    )
    objects = render(tmp_path, values)
    default = k.render_chart()
    for name, (_, (kind, suffix), account) in COMPONENTS.items():
        meta = pod_template(objects, kind, suffix)["metadata"]
        assert meta["annotations"]["example.com/for"] == name
        assert meta["labels"]["example.com/team"] == f"grid-{name}"
        # The chart's own labels are all still there.
        own = pod_template(default, kind, suffix)["metadata"]["labels"]
        assert own.items() <= meta["labels"].items()
        sa = one(objects, "ServiceAccount", account)["metadata"]
        assert sa["annotations"] == {"example.com/role": f"role-{name}"}
        assert "annotations" not in one(default, "ServiceAccount", account)["metadata"]
        assert "annotations" not in pod_template(default, kind, suffix)["metadata"] or name == "api"
    for version in k.KUBE_VERSIONS:
        assert k.schema_errors(objects, version) == []
    assert k.problems(objects) == []


def test_api_pod_annotations_win_over_the_scrape_annotations(tmp_path: Path) -> None:
    objects = render(tmp_path, {"api": {"podAnnotations": {"prometheus.io/path": "/other"}}})
    annotations = pod_template(objects, "Deployment", "-api")["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/other",
    }
    off = render(tmp_path, {"api": {"metrics": {"annotations": False}}})
    assert "annotations" not in pod_template(off, "Deployment", "-api")["metadata"]


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_pod_labels_may_not_replace_the_charts_own(tmp_path: Path, name: str) -> None:
    path = COMPONENTS[name][0]
    values = nested(path, {"podLabels": {"app.kubernetes.io/component": "other"}})
    where = ".".join(path) + ".podLabels"
    with pytest.raises(k.ToolError, match=re.escape(f'{where}: "app.kubernetes.io/component"')):
        render(tmp_path, values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api": {"podAnnotations": {"a": 1}}}, "/api/podAnnotations/a"),
        ({"ingest": {"podLabels": {"team": "grid ops"}}}, "/ingest/podLabels/team"),
        ({"influxdb": {"podLabels": {"bad key!": "x"}}}, "invalid propertyName 'bad key!'"),
        ({"tokens": {"job": {"podLabels": {"on": True}}}}, "/tokens/job/podLabels/on"),
        ({"api": {"serviceAccount": {"name": "other"}}}, "/api/serviceAccount"),
        ({"ingest": {"serviceAccount": {"annotations": {"x": 5}}}}, "/ingest/serviceAccount"),
    ],
)
def test_bad_annotations_and_labels_fail_the_render(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        render(tmp_path, values)


# ---- security contexts --------------------------------------------------------------------------

GRIDTS_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
HARDENED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
GATEWAY_POD = {
    "runAsNonRoot": True,
    "runAsUser": 99,
    "runAsGroup": 99,
    "seccompProfile": {"type": "RuntimeDefault"},
}
INFLUXDB_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_default_security_contexts_are_unchanged() -> None:
    """The defaults are the hardened contexts the chart always had (now values)."""
    objects = k.render_chart()
    pods = {p.name: p for p in k.pod_templates(objects)}
    assert set(pods) == {
        "Deployment/grid-gridts-api",
        "Deployment/grid-gridts-gateway",
        "StatefulSet/grid-gridts-influxdb",
        "CronJob/grid-gridts-ingest",
        "Job/grid-gridts-tokens-1",
        "Pod/grid-gridts-test",
    }
    for name, pod in pods.items():
        own = {"StatefulSet/grid-gridts-influxdb": INFLUXDB_POD,
               "Deployment/grid-gridts-gateway": GATEWAY_POD}  # fmt: skip
        assert pod.spec["securityContext"] == own.get(name, GRIDTS_POD), name
        for c in pod.containers():
            assert c["securityContext"] == HARDENED, name


def test_security_contexts_can_be_overridden_key_by_key(tmp_path: Path) -> None:
    values = {
        "podSecurityContext": {"runAsUser": 20000, "supplementalGroups": [5000]},
        "containerSecurityContext": {"seLinuxOptions": {"level": "s0:c1,c2"}},
        "influxdb": {
            "podSecurityContext": {"fsGroupChangePolicy": "Always"},
            "containerSecurityContext": {"readOnlyRootFilesystem": False},
        },
        "gateway": {
            "podSecurityContext": {"runAsUser": 4242},
            "containerSecurityContext": {"privileged": None},
        },
    }
    objects = render(tmp_path, values)
    for pod in k.pod_templates(objects):
        sc = pod.spec["securityContext"]
        (c,) = pod.containers()
        if pod.name.startswith("StatefulSet/"):
            assert sc == {**INFLUXDB_POD, "fsGroupChangePolicy": "Always"}
            assert c["securityContext"] == {**HARDENED, "readOnlyRootFilesystem": False}
        elif pod.name.endswith("-gateway"):
            assert sc == {**GATEWAY_POD, "runAsUser": 4242}
            assert c["securityContext"] == {k: v for k, v in HARDENED.items() if k != "privileged"}
        else:
            assert sc == {**GRIDTS_POD, "runAsUser": 20000, "supplementalGroups": [5000]}
            assert c["securityContext"] == {**HARDENED, "seLinuxOptions": {"level": "s0:c1,c2"}}
    for version in k.KUBE_VERSIONS:
        assert k.schema_errors(objects, version) == []


def openshift_values() -> str:
    """The values the chart README gives for OpenShift's restricted SCC."""
    text = (CHART / "README.md.gotmpl").read_text()
    section = text[text.index("## Security contexts and OpenShift") :]
    return section[
        section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))
    ]


UNSET = {"runAsUser", "runAsGroup", "fsGroup"}


def assert_left_to_the_platform(objects: list[Obj]) -> None:
    pods = k.pod_templates(objects)
    assert len(pods) == 6
    for pod in pods:
        assert not UNSET & set(pod.spec["securityContext"]), pod.name
        assert pod.spec["securityContext"]["runAsNonRoot"] is True
        for c in pod.containers():
            assert not UNSET & set(c["securityContext"]), pod.name
    # Everything else of the hardening stays: the only rule that fails is the fixed UID's.
    problems = k.security_problems(objects)
    assert problems
    assert all(p.endswith("no numeric non-root runAsUser") for p in problems), problems
    for version in k.KUBE_VERSIONS:
        assert k.schema_errors(objects, version) == []


@pytest.mark.parametrize("helm", ["helm", "helm4"])
def test_openshift_values_of_the_readme_leave_uid_and_fsgroup_to_the_platform(
    tmp_path: Path, helm: str
) -> None:
    values = tmp_path / "openshift.yaml"
    values.write_text(openshift_values())
    assert yaml.safe_load(values.read_text())["podSecurityContext"] == dict.fromkeys(UNSET)
    assert_left_to_the_platform(k.render_chart(values=[values], helm=helm))
    k.run([k.tool(helm), "lint", "--strict", str(CHART), "--values", str(values)])


def test_null_on_the_command_line_unsets_too() -> None:
    sets = [
        f"{prefix}podSecurityContext.{key}=null"
        for prefix in ("", "influxdb.")
        for key in sorted(UNSET)
    ] + [f"gateway.podSecurityContext.{key}=null" for key in ("runAsGroup", "runAsUser")]
    assert_left_to_the_platform(k.render_chart(sets=sets))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"podSecurityContext": {"runAsUser": "10001"}}, "/podSecurityContext/runAsUser"),
        ({"podSecurityContext": {"runAsUsr": 10001}}, "runAsUsr"),
        ({"containerSecurityContext": {"capabilities": {"drop": "ALL"}}}, "drop"),
        ({"containerSecurityContext": {"privileged": "false"}}, "privileged"),
        ({"influxdb": {"podSecurityContext": {"fsGroup": -1}}}, "/influxdb/podSecurityContext"),
        (
            {"influxdb": {"podSecurityContext": {"fsGroupChangePolicy": "Sometimes"}}},
            "fsGroupChangePolicy",
        ),
        ({"influxdb": {"containerSecurityContext": {"seccompProfile": {"type": "x"}}}}, "type"),
    ],
)
def test_bad_security_contexts_fail_the_render(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        render(tmp_path, values)


# ---- the e2e's values ---------------------------------------------------------------------------


def test_e2e_values_are_valid() -> None:
    objects = k.render_chart(values=[ROOT / "tests" / "e2e" / "values.yaml"])
    for version in k.KUBE_VERSIONS:
        assert k.schema_errors(objects, version) == []
    assert k.problems(objects, External(claims={"exports"})) == []


@pytest.mark.parametrize("size", [None, "512KiB", "1GiB"])
def test_influxd_cache_snapshot_size(tmp_path: Path, size: str | None) -> None:
    """influxd's write cache goes to a TSM file at influxdb.cacheSnapshotSize (ADR 0019); the
    default is the one the tests and benchmarks run influxd with (tests/test_influxdb.py checks
    the real influxd honours it)."""
    values = {} if size is None else {"influxdb": {"cacheSnapshotSize": size}}
    c = container(render(tmp_path, values), "StatefulSet", "-influxdb")
    expected = influxdb_local.CACHE_SNAPSHOT_SIZE if size is None else size
    assert plain_env(c)["INFLUXD_STORAGE_CACHE_SNAPSHOT_MEMORY_SIZE"] == expected


@pytest.mark.parametrize(
    ("profiling", "disabled"), [(None, "true"), (False, "true"), (True, "false")]
)
def test_influxd_profiling_is_off_unless_asked_for(
    tmp_path: Path, profiling: bool | None, disabled: str
) -> None:
    """influxd's Go profiling costs it 10 to 20 % of its CPU per query: off by default, on
    with influxdb.profiling (tests/test_influxdb.py: the real influxd refuses its profiles)."""
    values = {} if profiling is None else {"influxdb": {"profiling": profiling}}
    c = container(render(tmp_path, values), "StatefulSet", "-influxdb")
    assert plain_env(c)["INFLUXD_PPROF_DISABLED"] == disabled
