"""The checks have teeth: each test breaks a copy of the chart in one way and shows that the
same checks test_chart.py applies to the real chart report it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.chart import k8scheck as k


def broken_chart(tmp_path: Path, template: str, old: str, new: str) -> Path:
    """A copy of the chart with the first `old` in `template` (a file under templates/, or
    values.yaml) replaced by `new`."""
    chart = tmp_path / "gridts"
    shutil.copytree(k.CHART, chart)
    path = chart / template if template == "values.yaml" else chart / "templates" / template
    text = path.read_text()
    assert old in text, f"mutation target {old!r} not in {template}: update this test"
    path.write_text(text.replace(old, new, 1))
    return chart


def all_findings(chart: Path) -> list[str]:
    """What the real tests would report: render errors, schema errors and rule problems."""
    try:
        objects = k.render_chart(chart)
    except k.ToolError as exc:
        return [f"render failed: {exc}"]
    return [
        *k.schema_errors(objects, k.KUBE_VERSIONS[0]),
        *k.problems(objects),
    ]


def test_the_unbroken_copy_is_clean(tmp_path: Path) -> None:
    chart = broken_chart(tmp_path, "api-service.yaml", "kind: Service", "kind: Service")
    assert all_findings(chart) == []


def test_template_syntax_error_fails_render_and_lint(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path, "api-deployment.yaml", "{{- if $v.shutdownDelaySeconds }}", "{{- if }}"
    )
    findings = all_findings(chart)
    assert findings
    assert findings[0].startswith("render failed")
    with pytest.raises(k.ToolError):
        k.run([k.tool("helm"), "lint", "--strict", str(chart)])


def test_misindented_template_fails_schema_validation(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "api-deployment.yaml",
        "{{- toYaml $v.resources | nindent 12 }}",
        "{{- toYaml $v.resources | nindent 10 }}",
    )
    assert any("Deployment/grid-gridts-api" in f for f in all_findings(chart))


def test_service_selector_mismatch_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "api-service.yaml",
        'selectorLabels" (list . $behind)',
        'selectorLabels" (list . "apl")',
    )
    findings = all_findings(chart)
    assert any("Service/grid-gridts-api: selector" in f for f in findings), findings


def test_deployment_selector_mismatch_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "api-deployment.yaml",
        'matchLabels:\n      {{- include "gridts.selectorLabels" (list . "api")',
        'matchLabels:\n      {{- include "gridts.selectorLabels" (list . "web")',
    )
    findings = all_findings(chart)
    assert any("does not match its template" in f for f in findings), findings


def test_network_policy_selecting_nothing_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "networkpolicy-influxdb.yaml",
        'range list "api" "ingest" "tokens"',
        'range list "api" "ingester" "tokens"',
    )
    findings = all_findings(chart)
    assert any("peer podSelector" in f for f in findings), findings


def test_missing_secret_reference_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "_helpers.tpl",
        'name: {{ include "gridts.apiTokenSecretName" . }}',
        "name: grid-gridts-api-token",
    )
    findings = all_findings(chart)
    assert any("Secret 'grid-gridts-api-token' is neither rendered" in f for f in findings), (
        findings
    )


def test_wrong_secret_key_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "tokens-job.yaml",
        'key: {{ include "gridts.influxdb.adminSecretKey" . }}',
        "key: password",
    )
    findings = all_findings(chart)
    assert any("has no key 'password'" in f for f in findings), findings


def test_missing_configmap_and_service_account_are_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "tokens-job.yaml",
        "        - name: tmp\n          emptyDir:",
        "        - name: scripts\n          configMap:\n            name: hook-scripts\n"
        "        - name: tmp\n          emptyDir:",
    )
    assert any("ConfigMap 'hook-scripts'" in f for f in all_findings(chart))
    chart = broken_chart(
        tmp_path / "sa",
        "api-deployment.yaml",
        'serviceAccountName: {{ include "gridts.componentName" (list . "api") }}',
        "serviceAccountName: api",
    )
    assert any("ServiceAccount 'api' not rendered" in f for f in all_findings(chart))


def test_privileged_container_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path,
        "influxdb-statefulset.yaml",
        "{{- toYaml ($v.containerSecurityContext | default dict) | nindent 12 }}",
        "privileged: true",
    )
    findings = all_findings(chart)
    assert any("container influxdb: privileged" in f for f in findings), findings
    assert any("allowPrivilegeEscalation is not false" in f for f in findings), findings


def test_root_user_and_writable_root_fs_are_reported(tmp_path: Path) -> None:
    # The security contexts are values (defaults in values.yaml): a wrong default is caught.
    chart = broken_chart(
        tmp_path, "values.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"
    )
    assert any("readOnlyRootFilesystem is not true" in f for f in all_findings(chart))
    chart = broken_chart(tmp_path / "root", "values.yaml", "runAsUser: 1000\n", "runAsUser: 0\n")
    assert any("no numeric non-root runAsUser" in f for f in all_findings(chart))


def test_missing_probe_and_resources_are_reported(tmp_path: Path) -> None:
    chart = broken_chart(
        tmp_path, "api-deployment.yaml", "          readinessProbe:", "          startupProbeX:"
    )
    findings = all_findings(chart)
    assert findings, "a renamed probe must at least fail schema validation"
    chart = broken_chart(
        tmp_path / "res", "api-deployment.yaml", "{{- toYaml $v.resources | nindent 12 }}", "{}"
    )
    assert any("no resources.requests.cpu" in f for f in all_findings(chart))


def test_command_not_matching_the_image_entrypoint_is_reported(tmp_path: Path) -> None:
    chart = broken_chart(tmp_path, "api-deployment.yaml", "args: [app]", 'command: ["uvicorn"]')
    assert any("overrides the image ENTRYPOINT" in f for f in all_findings(chart))
    chart = broken_chart(tmp_path / "mod", "api-deployment.yaml", "args: [app]", "args: [api]")
    assert any("`python -m api` is not a runnable module of src/" in f for f in all_findings(chart))
    # a module of a package: it must exist and run something when run as a script
    for module in ("ops.token_job", "ops.errors", "ops.tokens_job.main"):
        chart = broken_chart(
            tmp_path / module, "tokens-job.yaml", "args: [ops.tokens_job]", f"args: [{module}]"
        )
        assert any(
            f"`python -m {module}` is not a runnable module of src/" in f
            for f in all_findings(chart)
        ), module
