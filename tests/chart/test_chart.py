"""The Helm chart: lint, render every ci value set, validate strictly, apply the project's rules."""

from __future__ import annotations

import json
import re
import shutil
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART, CI_VALUES, External, Obj, one

IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]


@cache
def rendered(values_name: str) -> list[Obj]:
    return k.render_chart(values=[CHART / "ci" / f"{values_name}-values.yaml"])


def external_for(values_name: str) -> External:
    """What each ci value set says the operator supplies (existingSecret, existingClaim, ...)."""
    values = yaml.safe_load((CHART / "ci" / f"{values_name}-values.yaml").read_text()) or {}
    ext = External()

    def get(path: str) -> str:
        node = values
        for key in path.split("."):
            node = node.get(key) or {} if isinstance(node, dict) else {}
        return node if isinstance(node, str) else ""

    for path in (
        "influxdb.admin.existingSecret",
        "externalInfluxdb.adminTokenSecret.name",
        "tokens.api.existingSecret",
        "tokens.ingest.existingSecret",
        "api.auth.existingSecret",
    ):
        if get(path):
            ext.secrets.add(get(path))
    ext.secrets.update(values.get("imagePullSecrets") or [])
    for tls in (values.get("api", {}).get("ingress", {}) or {}).get("tls") or []:
        ext.secrets.add(tls["secretName"])
    if get("ingest.data.existingClaim"):
        ext.claims.add(get("ingest.data.existingClaim"))
    if get("influxdb.persistence.existingClaim"):
        ext.claims.add(get("influxdb.persistence.existingClaim"))
    return ext


def test_ci_value_sets_cover_the_issue() -> None:
    assert set(IDS) >= {
        "default",
        "external-influxdb",
        "ingress-tls",
        "autoscaling-off",
        "production",
    }


HELMS = ["helm", "helm4"]  # Helm 3 and Helm 4, both installed by scripts/install-tools


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_helm_lint_strict(values: Path, helm: str) -> None:
    out = k.run([k.tool(helm), "lint", "--strict", str(CHART), "--values", str(values)])
    assert "0 chart(s) failed" in out


def without_random_data(objects: list[Obj]) -> list[Obj]:
    """Generated Secrets differ per render (randAlphaNum); everything else must not."""
    return [
        {**o, "data": sorted(o.get("data") or {})} if o["kind"] == "Secret" else o for o in objects
    ]


@pytest.mark.parametrize("values_name", IDS)
def test_helm_3_and_4_render_the_same_objects(values_name: str) -> None:
    helm4 = k.render_chart(values=[CHART / "ci" / f"{values_name}-values.yaml"], helm="helm4")
    assert without_random_data(helm4) == without_random_data(rendered(values_name))


@pytest.mark.parametrize("kube_version", k.KUBE_VERSIONS)
@pytest.mark.parametrize("values_name", IDS)
def test_rendered_objects_validate_strictly(values_name: str, kube_version: str) -> None:
    objects = rendered(values_name)
    assert len(objects) >= 9  # the smallest release (external InfluxDB) renders 9
    assert k.schema_errors(objects, kube_version) == []


@pytest.mark.parametrize("values_name", IDS)
def test_rendered_objects_follow_the_rules(values_name: str) -> None:
    assert k.problems(rendered(values_name), external_for(values_name)) == []


@pytest.mark.parametrize("values_name", IDS)
def test_names_and_labels(values_name: str) -> None:
    for obj in rendered(values_name):
        labels = obj["metadata"].get("labels") or {}
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        assert obj["metadata"]["name"].startswith("grid-gridts-"), what
        assert len(obj["metadata"]["name"]) <= 63, what
        for key in ("name", "instance", "component", "part-of", "version", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels, f"{what} lacks app.kubernetes.io/{key}"


def test_release_name_containing_the_chart_name_is_not_repeated() -> None:
    objects = k.render_chart(release="gridts")
    assert one(objects, "CronJob", "-ingest")["metadata"]["name"] == "gridts-ingest"


# ---- InfluxDB -------------------------------------------------------------------------------


def test_influxdb_statefulset() -> None:
    objects = rendered("default")
    sts = one(objects, "StatefulSet", "-influxdb")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    repo, tag = container["image"].split(":")
    assert repo == "influxdb"
    assert tag.startswith("2.")
    # Plain influxd: no image-specific onboarding, and no credentials in the InfluxDB pod.
    env = {e["name"]: e for e in container["env"]}
    assert not [name for name in env if name.startswith("DOCKER_INFLUXDB_INIT_")]
    assert not [e for e in env.values() if "valueFrom" in e]
    assert "command" not in container
    assert "args" not in container
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    # Ready means onboarded (tests/chart/test_tokens_live.py runs this probe against influxd).
    command = container["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["bash", "-c"]
    assert "/api/v2/setup" in command[2]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/influxdb2"] == "data"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    # The image's influxdb user, not root.
    assert pod["securityContext"]["runAsUser"] == 1000


def test_admin_secret_is_kept_on_uninstall_and_stable() -> None:
    admin = one(rendered("default"), "Secret", "-influxdb-admin")
    assert admin["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    template = (CHART / "templates" / "influxdb-secret.yaml").read_text()
    assert 'lookup "v1" "Secret"' in template
    assert len(admin["data"]["admin-token"]) >= 64


def test_existing_admin_secret_is_used_and_none_rendered() -> None:
    objects = k.render_chart(sets=["influxdb.admin.existingSecret=ops-admin"])
    assert not [o for o in objects if o["metadata"]["name"].endswith("-influxdb-admin")]
    assert k.problems(objects, External(secrets={"ops-admin"})) == []
    assert k.problems(objects) != [], "the reference to ops-admin must be reported as missing"


def test_external_influxdb_deploys_no_influxdb() -> None:
    objects = rendered("external-influxdb")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert not [n for _, n in kinds if "influxdb" in n]
    assert not [o for o in objects if o["kind"] == "Job"], "operator supplied both tokens"
    env = {
        e["name"]: e
        for e in one(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    assert env["INFLUX_URL"]["value"] == "https://influxdb.data.svc.cluster.local:8086"
    assert env["INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "gridts-api-read-token"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["influxdb.enabled=false"], "externalInfluxdb"),
        (
            ["influxdb.enabled=false", "externalInfluxdb.url=http://x:8086"],
            "tokens.api.existingSecret",
        ),
        (["tokens.job.enabled=false"], "nothing would onboard"),
        (
            [
                "influxdb.enabled=false",
                "externalInfluxdb.url=http://x:8086",
                "tokens.api.existingSecret=a",
                "tokens.ingest.existingSecret=b",
                "externalInfluxdb.onboard=true",
            ],
            "externalInfluxdb.adminTokenSecret.name",
        ),
        (["influxdb.retention=1 year"], "pattern"),
        (["api.ingress.enabled=true"], "api.ingress.hosts"),
        (["api.replicas=-1"], "minimum"),
        (["unknownKey=1"], "additional properties"),
        (["influxdb.image.tag=1.8.10"], "pattern"),
    ],
)
def test_impossible_values_fail_the_render(sets: list[str], message: str) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        k.render_chart(sets=sets)


# ---- tokens -----------------------------------------------------------------------------------


def test_token_split_read_for_api_read_write_for_ingest() -> None:
    objects = rendered("default")
    job = one(objects, "Job", "-tokens-1")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    specs = {s["action"]: s for s in json.loads(env["TOKEN_SPECS"]["value"])}
    # The ingest reads too: raw counts and edge windows for the tiers, stored points on reload.
    assert set(specs) == {"read", "read-write"}

    def token_secret(pod: Obj) -> str:
        (c,) = pod["containers"]
        (ref,) = [e for e in c["env"] if e["name"] == "INFLUX_TOKEN"]
        return str(ref["valueFrom"]["secretKeyRef"]["name"])

    def scope_ref(pod: Obj) -> tuple[str, str]:
        (c,) = pod["containers"]
        (ref,) = [e for e in c["env"] if e["name"] == "INFLUX_TOKEN_SCOPE"]
        key = ref["valueFrom"]["secretKeyRef"]
        return str(key["name"]), str(key["key"])

    api = one(objects, "Deployment", "-api")["spec"]["template"]["spec"]
    ingest = one(objects, "CronJob", "-ingest")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert token_secret(api) == specs["read"]["secret"]
    assert token_secret(ingest) == specs["read-write"]["secret"]
    assert specs["read"]["secret"] != specs["read-write"]["secret"]
    # Pods wait for the key the Job writes with a token of their scope (not an older token).
    assert scope_ref(api) == (specs["read"]["secret"], specs["read"]["scope_key"])
    assert scope_ref(ingest) == (specs["read-write"]["secret"], specs["read-write"]["scope_key"])
    # The admin token reaches only InfluxDB itself and the tokens Job.
    admin = one(objects, "Secret", "-influxdb-admin")["metadata"]["name"]
    users = {
        pod.name
        for pod in k.pod_templates(objects)
        for c in pod.containers()
        for e in c.get("env") or []
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == admin
    }
    assert users == {"Job/grid-gridts-tokens-1"}


def test_tokens_job_onboards_the_release_influxdb_through_the_headless_service() -> None:
    """The Job reaches the InfluxDB pod before it is ready (ready = onboarded, and onboarding
    is the Job's work): through the headless Service, which publishes not-ready addresses,
    not through the Service the API and ingest use."""
    objects = rendered("default")
    job = one(objects, "Job", "-tokens-1")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    sts = one(objects, "StatefulSet", "-influxdb")
    headless = k.by_kind(objects, "Service")[sts["spec"]["serviceName"]]
    assert headless["spec"]["publishNotReadyAddresses"] is True
    pod_address = f"{sts['metadata']['name']}-0.{headless['metadata']['name']}"
    assert env["INFLUX_URL"]["value"] == f"http://{pod_address}:8086"
    assert env["INFLUX_ONBOARD"]["value"] == "true"
    password = env["INFLUX_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    admin = one(objects, "Secret", "-influxdb-admin")["metadata"]["name"]
    assert (password["name"], password["key"]) == (admin, "admin-password")
    assert env["INFLUX_ADMIN_USERNAME"]["value"] == "admin"
    # The retention reaches the Job, and the ConfigError exit code 2 fails it at once.
    retention = {
        e["name"]: e.get("value")
        for e in one(k.render_chart(sets=["influxdb.retention=52w"]), "Job", "-tokens-1")["spec"][
            "template"
        ]["spec"]["containers"][0]["env"]
    }
    assert retention["INFLUX_RETENTION"] == "52w"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]


def test_external_influxdb_is_onboarded_only_when_asked() -> None:
    def job_env(objects: list[Obj]) -> dict[str, str | None]:
        job = one(objects, "Job", "-tokens-1")
        return {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }

    assert job_env(rendered("external-influxdb-admin"))["INFLUX_ONBOARD"] == "false"
    assert "INFLUX_ADMIN_PASSWORD" not in job_env(rendered("external-influxdb-admin"))
    asked = k.render_chart(
        values=[CHART / "ci" / "external-influxdb-admin-values.yaml"],
        sets=["externalInfluxdb.onboard=true"],
    )
    assert job_env(asked)["INFLUX_ONBOARD"] == "true"
    assert k.problems(asked, External(secrets={"shared-influxdb-operator"})) == []


def test_supplied_tokens_still_get_the_release_influxdb_onboarded() -> None:
    """Both token Secrets supplied: the Job still runs to onboard, without Role or API token."""
    objects = k.render_chart(
        sets=["tokens.api.existingSecret=api-read", "tokens.ingest.existingSecret=ingest-write"]
    )
    job = one(objects, "Job", "-tokens-1")
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert json.loads(str(env["TOKEN_SPECS"])) == []
    assert env["INFLUX_ONBOARD"] == "true"
    assert pod["automountServiceAccountToken"] is False
    assert not [o for o in objects if o["kind"] in {"Role", "RoleBinding"}]
    assert k.problems(objects, External(secrets={"api-read", "ingest-write"})) == []
    # One supplied: the Role names only the Secret the Job makes.
    objects = k.render_chart(sets=["tokens.api.existingSecret=api-read"])
    role = one(objects, "Role", "-tokens")
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named[0]["resourceNames"] == ["grid-gridts-ingest-influx-token"]


def test_tokens_job_rbac_is_limited_to_the_token_secrets() -> None:
    objects = rendered("default")
    role = one(objects, "Role", "-tokens")
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert {v for r in role["rules"] for v in r["verbs"]} <= {"create", "get", "update"}
    assert set(named[0]["resourceNames"]) == set(k.produced_by_jobs(objects))
    pods = {p.name: p.spec for p in k.pod_templates(objects)}
    mounting = {n for n, s in pods.items() if s.get("automountServiceAccountToken") is not False}
    assert mounting == {"Job/grid-gridts-tokens-1"}


def test_tokens_job_is_created_through_the_admin_token_of_an_external_influxdb() -> None:
    objects = rendered("external-influxdb-admin")
    env = {
        e["name"]: e
        for e in one(objects, "Job", "-tokens-1")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    ref = env["INFLUX_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("shared-influxdb-operator", "token")
    assert env["INFLUX_URL"]["value"] == "http://influxdb.shared.svc:8086"


# ---- API --------------------------------------------------------------------------------------


def test_api_deployment_probes_scrape_and_rollout() -> None:
    objects = rendered("default")
    deploy = one(objects, "Deployment", "-api")
    template = deploy["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["args"] == ["app"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = container["ports"][0]["containerPort"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["API_PORT"] == str(port)
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(port)
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert "replicas" not in deploy["spec"], "the HPA owns the replica count"
    one(objects, "HorizontalPodAutoscaler", "-api")
    one(objects, "PodDisruptionBudget", "-api")


def test_api_keeps_serving_until_its_endpoint_is_gone() -> None:
    """A terminating API pod sleeps in preStop before SIGTERM: kube-proxy and load balancers
    learn of the endpoint's removal asynchronously (the e2e saw refused connections during
    `helm upgrade` without it), and the grace period covers the delay plus the drain."""
    deploy = one(rendered("default"), "Deployment", "-api")
    spec = deploy["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert spec["terminationGracePeriodSeconds"] >= 5 + 30
    off = k.render_chart(sets=["api.shutdownDelaySeconds=0"])
    (container,) = one(off, "Deployment", "-api")["spec"]["template"]["spec"]["containers"]
    assert "lifecycle" not in container


def test_autoscaling_off_has_fixed_replicas_and_no_pdb_for_one_replica() -> None:
    objects = rendered("autoscaling-off")
    assert one(objects, "Deployment", "-api")["spec"]["replicas"] == 1
    assert not [
        o
        for o in objects
        if o["kind"] in {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
        and not o["metadata"]["name"].endswith("-gateway")
    ]


def test_ingress_with_tls_and_auth() -> None:
    objects = rendered("ingress-tls")
    ingress = one(objects, "Ingress", "-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "grid-example-com-tls", "hosts": ["grid.example.com"]}
    ]
    assert ingress["spec"]["rules"][0]["host"] == "grid.example.com"
    auth = one(objects, "Secret", "-api-auth")
    env = {
        e["name"]: e
        for e in one(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    assert env["API_TOKENS"]["valueFrom"]["secretKeyRef"]["name"] == auth["metadata"]["name"]


def test_production_servicemonitor_selects_the_api_service() -> None:
    objects = rendered("production")
    monitor = one(objects, "ServiceMonitor", "-api")
    # the API pods' headless Service, not the API Service, which fronts the gateway (ADR 0020):
    # scraped through it, /metrics would be whichever pod the gateway picked
    pods = one(objects, "Service", "-api-pods")
    assert k.matches(monitor["spec"]["selector"]["matchLabels"], pods["metadata"]["labels"])
    front = one(objects, "Service", "-api")
    assert not k.matches(monitor["spec"]["selector"]["matchLabels"], front["metadata"]["labels"])
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    image = one(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("@sha256:" + "0123456789abcdef" * 4)


def alert_rules(objects: list[Obj]) -> dict[str, Obj]:
    rule = one(objects, "PrometheusRule", "-api")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_production_alerts_read_the_series_the_api_exports_as_scraped() -> None:
    """Every alert of the PrometheusRule reads metrics the API exports (its own registry), by
    the labels they have, of the pods the ServiceMonitor scrapes: their headless Service in the
    release's namespace (the labels Prometheus gives a ServiceMonitor's targets). With the tiers
    off there is no tier alert."""
    from prometheus_client.metrics import MetricWrapperBase

    from app.metrics import Metrics

    # each series the API exports, with the labels its metric is declared with
    suffixes = {"counter": ["_total"], "histogram": ["_count", "_bucket", "_sum"]}
    labels: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in suffixes.get(str(metric._type), [""]):
                labels[metric._name + suffix] = set(metric._labelnames)
    assert labels["gridts_api_tier_pending_ranges"] == {"tier"}
    objects = rendered("production")
    pods = one(objects, "Service", "-api-pods")["metadata"]["name"]
    namespace = one(objects, "Deployment", "-api")["metadata"].get("namespace", "gridts")
    rules = alert_rules(objects)
    assert set(rules) == {"GridtsInfluxdbUnavailable", "GridtsApiServerErrors",
                          "GridtsTiersNotAnswering", "GridtsTierRollupPending",
                          "GridtsTierSeriesNotHeld"}  # fmt: skip
    for name, rule in rules.items():
        expr = " ".join(str(rule["expr"]).split())
        selectors = re.findall(r"([a-z_:][a-z0-9_:]*)\{([^}]*)\}", expr)
        assert selectors, name
        for metric, matchers in selectors:
            assert metric in labels, f"{name}: {metric} is not exported by the API"
            assert f'namespace="{namespace}"' in matchers, (name, matchers)
            assert f'service="{pods}"' in matchers, (name, matchers)
            own = set(re.findall(r"(\w+)=~?\"", matchers)) - {"namespace", "service"}
            assert own <= labels[metric], f"{name}: {metric} has no label {own - labels[metric]}"
        for grouped in re.findall(r"by \((\w+)\)", expr):
            assert all(grouped in labels[m] for m, _ in selectors), (name, grouped)
    assert rules["GridtsTierRollupPending"]["for"] == "6h"
    for off in ("tiers.list=", "tiers.answerQueries=false"):
        plain = k.render_chart(
            values=[CHART / "ci" / "production-values.yaml"], sets=[off], namespace=namespace
        )
        assert set(alert_rules(plain)) == {"GridtsInfluxdbUnavailable", "GridtsApiServerErrors"}


# ---- ingest -----------------------------------------------------------------------------------


def ingest_job_spec(objects: list[Obj]) -> Obj:
    cron = one(objects, "CronJob", "-ingest")
    return dict(cron["spec"]["jobTemplate"]["spec"])


def test_cronjob_is_a_suspended_template_without_schedule() -> None:
    cron = one(rendered("default"), "CronJob", "-ingest")
    assert cron["spec"]["suspend"] is True
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    cron = one(rendered("production"), "CronJob", "-ingest")
    assert cron["spec"]["suspend"] is False
    assert cron["spec"]["schedule"] == "30 2 * * *"


def test_ingest_runs_the_cli_and_fails_fast_on_bad_input() -> None:
    spec = ingest_job_spec(
        k.render_chart(sets=["ingest.sources={https://example.com/a.csv}", "ingest.series=load"])
    )
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"] == ["ingest", "load", "https://example.com/a.csv", "--series", "load"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"]["values"] == [2]


def test_ingest_sources_from_pvc_configmap_and_indexed() -> None:
    objects = k.render_chart(
        sets=[
            "ingest.data.existingClaim=exports",
            "ingest.inlineFiles.small\\.csv=a\\,b",
            "ingest.indexed.enabled=true",
            "ingest.indexed.completions=5",
            "ingest.indexed.parallelism=2",
            "ingest.sources={/srv/ingest/data/part-$(JOB_INDEX).csv}",
        ]
    )
    assert k.problems(objects, External(claims={"exports"})) == []
    spec = ingest_job_spec(objects)
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 5, 2)
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/srv/ingest/data"]["readOnly"] is True
    assert mounts["/srv/ingest/files"]["readOnly"] is True
    files = one(objects, "ConfigMap", "-ingest-files")
    assert files["data"] == {"small.csv": "a,b"}
    env = {e["name"]: e for e in container["env"]}
    assert "job-completion-index" in env["JOB_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    # $(JOB_INDEX) is expanded by the kubelet because JOB_INDEX is in the container's env.
    assert "/srv/ingest/data/part-$(JOB_INDEX).csv" in container["args"]


# ---- NetworkPolicy ------------------------------------------------------------------------------


def test_only_api_ingest_and_tokens_pods_reach_influxdb() -> None:
    objects = rendered("default")
    policy = one(objects, "NetworkPolicy", "-influxdb")
    pods = k.pod_templates(objects)
    selected = {p.name for p in pods if k.selector_matches(policy["spec"]["podSelector"], p.labels)}
    assert selected == {"StatefulSet/grid-gridts-influxdb"}
    (rule,) = policy["spec"]["ingress"]
    allowed = {
        p.name
        for p in pods
        for peer in rule["from"]
        if k.selector_matches(peer["podSelector"], p.labels)
    }
    assert allowed == {
        "Deployment/grid-gridts-api",
        "CronJob/grid-gridts-ingest",
        "Job/grid-gridts-tokens-1",
    }
    assert all(set(peer) == {"podSelector"} for peer in rule["from"]), "same namespace only"
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_api_network_policy_is_configurable() -> None:
    open_policy = one(rendered("default"), "NetworkPolicy", "-api")
    assert "from" not in open_policy["spec"]["ingress"][0]
    objects = rendered("ingress-tls")
    policy = one(objects, "NetworkPolicy", "-api")
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    test_pod = one(objects, "Pod", "-test")
    gateway = one(objects, "Deployment", "-gateway")["spec"]["template"]["metadata"]["labels"]
    assert k.selector_matches(peers[1]["podSelector"], test_pod["metadata"]["labels"])
    assert k.selector_matches(peers[2]["podSelector"], gateway)  # what the API Service fronts
    assert len(peers) == 3
    # the gateway: the same peers but itself, on its HTTP and stats ports
    front = one(objects, "NetworkPolicy", "-gateway")["spec"]["ingress"][0]
    assert front["from"] == peers[:2]
    assert [p["port"] for p in front["ports"]] == ["http", "stats"]


# ---- helm test, NOTES, values documentation ---------------------------------------------------


def test_helm_test_pod_checks_readyz_and_a_query() -> None:
    pod = one(rendered("ingress-tls"), "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["ops.smoke"]
    source = (k.ROOT / "src" / "ops" / "smoke.py").read_text()
    assert '"/readyz"' in source
    assert '"/v1/series"' in source
    env = {e["name"]: e for e in container["env"]}
    assert env["API_URL"]["value"] == "http://grid-gridts-api.gridts.svc:80"
    assert "API_TOKEN" in env


def render_notes(values_name: str, tmp_path: Path) -> str:
    """NOTES.txt, rendered by wrapping it in a define in a copy of the chart (helm template
    does not print NOTES and helm install --dry-run needs a cluster)."""
    chart = tmp_path / "gridts"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "notes" -}}' + notes + "{{- end -}}"
    )
    (chart / "templates" / "notes.yaml").write_text(
        "kind: Notes\napiVersion: v1\nmetadata: {name: notes}\n"
        'text: {{ include "notes" . | toJson }}\n'
    )
    objects = k.render_chart(
        chart, values=[CHART / "ci" / f"{values_name}-values.yaml"], release="prod"
    )
    return str(one(objects, "Notes", "notes")["text"])


def test_notes_give_exact_commands(tmp_path: Path) -> None:
    notes = render_notes("ingress-tls", tmp_path)
    assert (
        "kubectl -n gridts create job --from=cronjob/prod-gridts-ingest ingest-$(date +%s)" in notes
    )
    assert "helm test prod -n gridts" in notes
    assert "https://grid.example.com/v1/series" in notes
    assert "python -m ops submit --namespace gridts --release prod" in notes
    # the uninstall that returns once the pods are gone (a reinstall's Services select by label)
    assert "helm uninstall prod -n gridts --cascade foreground --wait" in notes


def values_keys(node: object, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            keys.append(path)
            if key not in {
                "nodeSelector",
                "annotations",
                "labels",
                "podAnnotations",
                "podLabels",
                "inlineFiles",
                "affinity",
                "resources",
            }:
                keys += values_keys(value, path + ".")
    return keys


def test_every_value_is_commented_and_in_the_schema() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z0-9_]+:", line):
            assert lines[i - 1].lstrip().startswith("#"), (
                f"values.yaml:{i + 1} {line.strip()!r} has no comment"
            )
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in values_keys(values):
        node = schema
        for key in path.split("."):
            node = node["properties"][key]
        assert node.get("description"), f"{path} has no description in values.schema.json"


def test_schema_rejects_unknown_keys_everywhere() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    free_form = {
        "affinity",
        "nodeSelector",
        "annotations",
        "labels",
        "podAnnotations",
        "podLabels",
        "inlineFiles",
        "requests",
        "limits",
    }

    def walk(node: Obj, path: str) -> None:
        if node.get("type") == "object" and path.rsplit(".", 1)[-1] not in free_form:
            assert node.get("additionalProperties") is False, (
                f"{path or '<root>'} allows unknown keys"
            )
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}".lstrip("."))

    walk(schema, "")
    for name, shared in schema.get("definitions", {}).items():  # what "$ref" points to
        walk(shared, f"definitions.{name}")


def test_existing_influxdb_claim_replaces_the_claim_template() -> None:
    objects = k.render_chart(sets=["influxdb.persistence.existingClaim=influx-data"])
    sts = one(objects, "StatefulSet", "-influxdb")
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "influx-data"
    assert k.problems(objects, External(claims={"influx-data"})) == []
    assert any("influx-data" in p for p in k.problems(objects))


# ---- PodDisruptionBudget -------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "rendered_pdb"), [(1, False), (2, True), (3, True)])
def test_gateway_pdb_keeps_one_gateway(replicas: int, rendered_pdb: bool) -> None:
    objects = k.render_chart(sets=[f"gateway.replicas={replicas}"])
    pdbs = [
        o
        for o in objects
        if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"].endswith("-gateway")
    ]
    assert bool(pdbs) == rendered_pdb
    for pdb in pdbs:
        assert pdb["spec"]["minAvailable"] == 1
        labels = one(objects, "Deployment", "-gateway")["spec"]["template"]["metadata"]["labels"]
        assert k.selector_matches(pdb["spec"]["selector"], labels)


@pytest.mark.parametrize(
    ("sets", "rendered_pdb"),
    [
        ([], True),  # HPA 2..6, minAvailable 1
        (["api.autoscaling.minReplicas=1"], False),  # the HPA may sit at one replica
        (["api.autoscaling.enabled=false", "api.replicas=1"], False),
        (["api.autoscaling.enabled=false", "api.replicas=2"], True),
        (["api.autoscaling.enabled=false", "api.replicas=2", "api.pdb.minAvailable=2"], False),
        (["api.autoscaling.minReplicas=3", "api.pdb.minAvailable=2"], True),
    ],
)
def test_pdb_only_where_it_lets_a_drain_evict_an_api_pod(
    sets: list[str], rendered_pdb: bool
) -> None:
    """A PDB whose minAvailable the fewest replicas cannot exceed allows no eviction at all:
    every node drain would hang on it. Then there is none (a drain briefly stops the API)."""
    objects = k.render_chart(sets=sets)
    pdbs = [
        o
        for o in objects
        if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"].endswith("-api")
    ]
    assert bool(pdbs) == rendered_pdb
    for pdb in pdbs:
        deploy = one(objects, "Deployment", "-api")
        hpa = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
        fewest = hpa[0]["spec"]["minReplicas"] if hpa else deploy["spec"]["replicas"]
        assert fewest > pdb["spec"]["minAvailable"]
        # Unready pods (every API pod while InfluxDB is down) never block a drain.
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_readme_delete_everything_tolerates_what_was_never_created() -> None:
    """The token Secrets exist only once the Job made them (not with existingSecret, not when
    it failed): deleting "everything" must not stop at the first one missing."""
    readme = (k.ROOT / "README.md").read_text()
    section = readme[readme.index("To delete everything") :]
    block = section[section.index("```") : section.index("```", section.index("```") + 3)]
    deletes = [line for line in block.splitlines() if " delete " in line]
    assert len(deletes) >= 2
    assert all("--ignore-not-found" in line for line in deletes), deletes


def test_readme_says_the_hpa_needs_metrics_server() -> None:
    readme = (k.ROOT / "README.md").read_text()
    section = readme[readme.index("### Scale the API") :]
    section = section[: section.index("\n### ", 5)]
    assert "metrics-server" in section
    assert "<unknown>" in section, "what an operator sees without it"


def test_default_influxdb_image_is_the_version_the_tests_run() -> None:
    """The chart deploys the InfluxDB release that `make test` and `make e2e` run (ADR 0011)."""
    import influxdb_local

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["influxdb"]["image"]["repository"] == "influxdb"
    assert values["influxdb"]["image"]["tag"] == influxdb_local.INFLUXDB_VERSION.removeprefix("v")


# ---- rollup tiers -------------------------------------------------------------------------------


def test_tiers_reach_the_api_the_ingest_and_the_tokens_job() -> None:
    def env(objects: list[Obj], kind: str, suffix: str) -> dict[str, str]:
        obj = one(objects, kind, suffix)
        spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
        (c,) = spec["template"]["spec"]["containers"]
        return {e["name"]: e["value"] for e in c["env"] if "value" in e}

    objects = rendered("default")
    assert env(objects, "Deployment", "-api")["API_TIERS"] == "1m,15m,1h"
    assert env(objects, "CronJob", "-ingest")["INGEST_TIERS"] == "1m,15m,1h"
    assert env(objects, "Job", "-tokens-1")["TIERS"] == "1m,15m,1h"
    off = k.render_chart(sets=["tiers.list="])
    assert env(off, "Deployment", "-api")["API_TIERS"] == ""
    assert env(off, "CronJob", "-ingest")["INGEST_TIERS"] == ""
    assert env(off, "Job", "-tokens-1")["TIERS"] == ""
    held = k.render_chart(sets=["tiers.answerQueries=false", "tiers.retention.1m=90d"])
    assert env(held, "Deployment", "-api")["API_TIERS"] == ""
    assert env(held, "CronJob", "-ingest")["INGEST_TIERS"] == "1m,15m,1h"
    assert env(held, "Job", "-tokens-1")["TIER_RETENTION"] == "1m=90d"

    # A new scope renames the key the pods wait for; the same scope keeps it.
    def scope_key(objects: list[Obj]) -> str:
        (c,) = one(objects, "Deployment", "-api")["spec"]["template"]["spec"]["containers"]
        (ref,) = [e for e in c["env"] if e["name"] == "INFLUX_TOKEN_SCOPE"]
        return str(ref["valueFrom"]["secretKeyRef"]["key"])

    key, other = scope_key(objects), scope_key(off)
    assert key.startswith("scope-")
    assert key != other


def test_supplied_tokens_have_no_scope_key_to_wait_for() -> None:
    objects = k.render_chart(
        sets=["tokens.api.existingSecret=api-read", "tokens.ingest.existingSecret=ingest-rw"]
    )
    for pod in k.pod_templates(objects):
        for c in pod.containers():
            assert "INFLUX_TOKEN_SCOPE" not in [e["name"] for e in c.get("env") or []]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["tiers.list=1m;15m"], "pattern"),
        (["tiers.list=1x"], "pattern"),
        (["tiers.retention.1m=1 year"], "pattern"),
        (["tiers.retention.minute=1d"], "additional properties"),
        (["tiers.retention.5m=1d"], "not in tiers.list"),
        (["tiers.unknown=1"], "additional properties"),
    ],
)
def test_bad_tiers_fail_the_render(sets: list[str], message: str) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        k.render_chart(sets=sets)
