"""The chart's backup CronJob and restore template (issue 13): off by default with a NOTES line,
the operator token from the admin Secret, a volume kept on uninstall, a restore that is only a
suspended template, the tokens step of a full restore with the only ServiceAccount token, the
NetworkPolicy admitting both, and the schema and render refusing what cannot work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART, External, Obj, one
from tests.chart.test_chart import render_notes

ON = ["backup.enabled=true"]


def spec_of(cron: Obj) -> Obj:
    return dict(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env") or []}


def components(objects: list[Obj]) -> set[str]:
    return {o["metadata"].get("labels", {}).get("app.kubernetes.io/component") for o in objects}


def test_off_by_default_and_notes_say_so(tmp_path: Path) -> None:
    objects = k.render_chart()
    assert not components(objects) & {"backup", "restore"}
    notes = render_notes("default", tmp_path)
    assert "5. Backups:\n   OFF: nothing copies InfluxDB's data" in notes
    assert "--set backup.enabled=true" in notes


def test_backup_cronjob_runs_ops_backup_with_the_operator_token() -> None:
    objects = k.render_chart(sets=ON)
    cron = one(objects, "CronJob", "-backup")
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["suspend"] is False
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [2, 3]  # usage, damaged: retrying cannot help
    pod = spec_of(cron)
    (container,) = pod["containers"]
    assert container["args"] == [
        "ops", "backup", "--dir", "/backups", "--keep", "7", "--max-age", "30d",
    ]  # fmt: skip
    token = env(container)["INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"]
    admin = one(objects, "Secret", "-influxdb-admin")["metadata"]["name"]
    assert (token["name"], token["key"]) == (admin, "admin-token")
    assert env(container)["INFLUX_URL"]["value"] == "http://grid-gridts-influxdb:8086"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts["/backups"]["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = one(objects, "PersistentVolumeClaim", "-backup")
    assert claim == pvc["metadata"]["name"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["fsGroup"] == 10001  # the volume is writable by the image user


def test_backup_of_one_bucket_and_an_existing_claim() -> None:
    objects = k.render_chart(
        sets=[*ON, "backup.bucket=grid", "backup.persistence.existingClaim=nas-backups",
              "backup.retention.maxAge=", "backup.retention.count=3"]
    )  # fmt: skip
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    (container,) = spec_of(one(objects, "CronJob", "-backup"))["containers"]
    assert container["args"][-4:] == ["--keep", "3", "--bucket", "grid"]
    assert "--max-age" not in container["args"]
    assert k.problems(objects, External(claims={"nas-backups"})) == []
    assert any("nas-backups" in p for p in k.problems(objects))


def test_restore_is_a_suspended_template_full_with_a_tokens_step() -> None:
    objects = k.render_chart(sets=ON)
    cron = one(objects, "CronJob", "-restore")
    assert cron["spec"]["suspend"] is True
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "a restore is never retried"
    pod = spec_of(cron)
    (restore,) = pod["initContainers"]
    assert restore["args"] == ["ops", "restore", "/backups", "--full"]
    assert {m["mountPath"]: m.get("readOnly") for m in restore["volumeMounts"]}["/backups"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"]["readOnly"] is True
    (tokens,) = pod["containers"]
    assert tokens["args"] == ["ops.tokens_job"]
    tokens_job = one(objects, "Job", "-tokens-1")["spec"]["template"]["spec"]["containers"][0]
    assert env(tokens)["TOKEN_SPECS"] == env(tokens_job)["TOKEN_SPECS"], "the same Secrets"
    assert env(tokens)["INFLUX_ONBOARD"]["value"] == "false"
    assert env(tokens)["INFLUX_ADMIN_TOKEN"] == env(restore)["INFLUX_TOKEN"] | {
        "name": "INFLUX_ADMIN_TOKEN"
    }
    # The tokens ServiceAccount's token reaches the tokens step only, not the restore.
    assert (
        pod["serviceAccountName"] == one(objects, "ServiceAccount", "-tokens")["metadata"]["name"]
    )
    assert pod["automountServiceAccountToken"] is False
    api_access = [m for m in tokens["volumeMounts"] if m["name"] == "kube-api-access"]
    assert api_access[0]["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert "kube-api-access" not in {m["name"] for m in restore["volumeMounts"]}
    assert "serviceAccountToken" in volumes["kube-api-access"]["projected"]["sources"][0]


def test_restore_of_one_bucket_under_a_new_name() -> None:
    objects = k.render_chart(
        sets=[*ON, "backup.restore.bucket=grid", "backup.restore.newBucket=grid_check",
              "backup.restore.backup=20261130T030000Z-full"]
    )  # fmt: skip
    pod = spec_of(one(objects, "CronJob", "-restore"))
    assert "initContainers" not in pod
    (restore,) = pod["containers"]
    assert restore["args"] == [
        "ops", "restore", "/backups/20261130T030000Z-full", "--bucket", "grid",
        "--new-bucket", "grid_check",
    ]  # fmt: skip
    assert pod["serviceAccountName"].endswith("-backup")
    assert "kube-api-access" not in {v["name"] for v in pod["volumes"]}


def test_restore_without_tokens_to_make_has_no_tokens_step() -> None:
    objects = k.render_chart(
        sets=[*ON, "tokens.api.existingSecret=api-read", "tokens.ingest.existingSecret=ingest-w"]
    )
    pod = spec_of(one(objects, "CronJob", "-restore"))
    assert [c["name"] for c in pod["containers"]] == ["restore"]
    assert k.problems(objects, External(secrets={"api-read", "ingest-w"})) == []


def test_external_influxdb_backs_up_with_its_operator_token() -> None:
    objects = k.render_chart(values=[CHART / "ci" / "external-influxdb-admin-values.yaml"], sets=ON)
    (container,) = spec_of(one(objects, "CronJob", "-backup"))["containers"]
    token = env(container)["INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (token["name"], token["key"]) == ("shared-influxdb-operator", "token")
    own = k.render_chart(
        values=[CHART / "ci" / "external-influxdb-values.yaml"],
        sets=[*ON, "backup.token.existingSecret=influx-operator", "backup.token.key=t"],
    )
    (container,) = spec_of(one(own, "CronJob", "-backup"))["containers"]
    token = env(container)["INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (token["name"], token["key"]) == ("influx-operator", "t")


def test_network_policy_admits_backup_and_restore_only_when_on() -> None:
    def allowed(objects: list[Obj]) -> set[str]:
        policy = one(objects, "NetworkPolicy", "-influxdb")
        (rule,) = policy["spec"]["ingress"]
        return {
            p.name
            for p in k.pod_templates(objects)
            for peer in rule["from"]
            if k.selector_matches(peer["podSelector"], p.labels)
        }

    assert allowed(k.render_chart(sets=ON)) >= {
        "CronJob/grid-gridts-backup",
        "CronJob/grid-gridts-restore",
    }
    assert not {"CronJob/grid-gridts-backup", "CronJob/grid-gridts-restore"} & allowed(
        k.render_chart()
    )


@pytest.mark.parametrize("kube_version", k.KUBE_VERSIONS)
@pytest.mark.parametrize(
    "sets",
    [ON, [*ON, "backup.restore.bucket=grid", "backup.restore.newBucket=g2", "backup.suspend=true"]],
)
def test_rendered_objects_validate_and_follow_the_rules(sets: list[str], kube_version: str) -> None:
    objects = k.render_chart(sets=sets)
    assert k.schema_errors(objects, kube_version) == []
    assert k.problems(objects) == []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ([*ON, "backup.retention.count=0"], "minimum"),
        ([*ON, "backup.retention.maxAge=a month"], "pattern"),
        ([*ON, "backup.unknown=1"], "additional properties"),
        ([*ON, "backup.restore.newBucket=x"], "backup.restore.newBucket needs"),
        ([*ON, "backup.restore.backup=../etc"], "pattern"),
        (
            [*ON, "influxdb.enabled=false", "externalInfluxdb.url=http://x:8086",
             "tokens.api.existingSecret=a", "tokens.ingest.existingSecret=b"],
            "operator token",
        ),
        ([*ON, "backup.podLabels.app\\.kubernetes\\.io/component=x"], "sets itself"),
    ],
)  # fmt: skip
def test_impossible_backup_values_fail_the_render(sets: list[str], message: str) -> None:
    with pytest.raises(k.ToolError, match=re.escape(message)):
        k.render_chart(sets=sets)


def test_notes_give_the_backup_and_restore_commands(tmp_path: Path) -> None:
    notes = render_notes("backup", tmp_path)
    assert (
        "kubectl -n gridts create job --from=cronjob/prod-gridts-backup backup-$(date +%s)" in notes
    )
    assert (
        "kubectl -n gridts create job --from=cronjob/prod-gridts-restore restore-$(date +%s)"
        in notes
    )
    assert "kubectl -n gridts rollout restart deployment/prod-gridts-api" in notes
    assert '"15 2 * * *" (Europe/Zurich), full, keeping 14 and at most 60d' in notes
    assert "and the backup volume" in notes


def _claims_mounted(pod: Obj) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod.get("volumes") or []
        if "persistentVolumeClaim" in v
    }


def test_the_setup_job_is_the_backup_claims_first_consumer() -> None:
    """On a StorageClass that binds at first consumer (the e2e cluster's local volumes, many
    cloud defaults) the claim stayed Pending until the first backup, and `helm upgrade --wait`
    waited for it for its whole timeout. The setup Job, which runs on every install and
    upgrade, mounts it read-only; an existing claim is the user's to bind."""
    objects = k.render_chart(sets=ON)
    pvc = one(objects, "PersistentVolumeClaim", "-backup")["metadata"]["name"]
    setup = one(objects, "Job", "-tokens-1")["spec"]["template"]["spec"]
    assert pvc in _claims_mounted(setup)
    (container,) = setup["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/backups"]
    assert mount["readOnly"] is True
    existing = k.render_chart(sets=[*ON, "backup.persistence.existingClaim=nas-backups"])
    assert not _claims_mounted(one(existing, "Job", "-tokens-1")["spec"]["template"]["spec"])
    default = one(k.render_chart(), "Job", "-tokens-1")
    assert not _claims_mounted(default["spec"]["template"]["spec"])
