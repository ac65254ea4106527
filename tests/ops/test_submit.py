"""`python -m ops submit`: the Job it would create from the release's own CronJob, validated like
the chart's objects. (Reading the CronJob from a cluster and following the Job: tests/e2e.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops import submit
from tests.chart import k8scheck as k
from tests.chart.k8scheck import CHART, ROOT, External, Obj, one


@cache
def release(name: str = "grid", values: str = "default") -> list[Obj]:
    return k.render_chart(values=[CHART / "ci" / f"{values}-values.yaml"], release=name)


def with_job(objects: list[Obj], job: Obj) -> list[Obj]:
    """The release as it is once the Job exists (the CronJob itself left out)."""
    return [o for o in objects if o["kind"] != "CronJob"] + [job]


def assert_valid(objects: list[Obj], job: Obj, external: External | None = None) -> None:
    for version in k.KUBE_VERSIONS:
        assert k.schema_errors([job], version) == []
    assert k.problems(with_job(objects, job), external) == []


@pytest.mark.parametrize(
    ("name", "sets"),
    [
        ("grid", []),
        ("gridts", []),
        ("prod-gridts-eu", []),
        ("grid", ["nameOverride=tsdb"]),
        ("grid", ["fullnameOverride=platform"]),
    ],
)
def test_the_release_cronjob_is_found_by_its_labels(name: str, sets: list[str]) -> None:
    """Whatever the chart names it (nameOverride, fullnameOverride): nothing here restates the
    chart's naming."""
    objects = k.render_chart(sets=sets, release=name)
    text = yaml.safe_dump_all(objects)
    expected = one(objects, "CronJob", "-ingest")
    assert submit.template_from_text(text, name) == expected
    with pytest.raises(submit.NoTemplate, match="no ingest CronJob of release 'other'"):
        submit.template_from_text(text, "other")


def test_a_template_with_two_releases_needs_one_named() -> None:
    text = yaml.safe_dump_all([*release("a"), *release("b")])
    assert submit.template_from_text(text, "b")["metadata"]["name"] == "b-gridts-ingest"
    with pytest.raises(submit.NoTemplate, match="more than one ingest CronJob"):
        submit.template_from_text(text)
    with pytest.raises(submit.NoTemplate, match="not YAML"):
        submit.template_from_text("kind: [CronJob")


def test_job_from_the_cronjob_template() -> None:
    objects = release()
    cronjob = one(objects, "CronJob", "-ingest")
    job = submit.build_job(
        {**cronjob, "metadata": {**cronjob["metadata"], "uid": "0b7e-uid"}},
        namespace="gridts",
        sources=["https://example.com/a.csv", "https://example.com/b.csv"],
        series="load",
        extra_args=["--label", "end", "--step", "15m"],
        name="ingest-1",
    )
    assert_valid(objects, job)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "ingest",
        "load",
        "https://example.com/a.csv",
        "https://example.com/b.csv",
        "--series",
        "load",
        "--label",
        "end",
        "--step",
        "15m",
    ]
    template = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["spec"]["podFailurePolicy"] == template["podFailurePolicy"]
    assert container["image"] == template["template"]["spec"]["containers"][0]["image"]
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    # The network policy lets the Job's pods reach InfluxDB.
    policy = one(objects, "NetworkPolicy", "-influxdb")
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert any(
        k.selector_matches(p["podSelector"], labels) for p in policy["spec"]["ingress"][0]["from"]
    )
    # The template itself is left as it was.
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "ingest",
        "load",
    ]


def test_indexed_job_and_image_override() -> None:
    objects = release("grid", "production")
    job = submit.build_job(
        one(objects, "CronJob", "-ingest"),
        namespace="gridts",
        sources=["/srv/ingest/data/day-$(JOB_INDEX).csv.gz"],
        image="registry.example.com/grid/gridts:0.2.0",
        completions=4,
        parallelism=8,
        name="ingest-3",
    )
    ext = External(
        secrets={
            "gridts-influxdb-admin",
            "gridts-api-bearer-tokens",
            "registry-example-com",
            "grid-example-com-tls",
        },
        claims={"grid-exports"},
    )
    assert_valid(objects, job, ext)
    assert (
        job["spec"]["completionMode"],
        job["spec"]["completions"],
        job["spec"]["parallelism"],
    ) == (
        "Indexed",
        4,
        4,
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/grid/gridts:0.2.0"
    assert [e["name"] for e in container["env"]].count("JOB_INDEX") == 1


def test_bad_requests_are_refused() -> None:
    cronjob = one(release(), "CronJob", "-ingest")
    with pytest.raises(ValueError, match="SOURCE"):
        submit.build_job(cronjob, namespace="n", sources=[])
    with pytest.raises(ValueError, match="completions"):
        submit.build_job(cronjob, namespace="n", sources=["a-$(JOB_INDEX)"])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart's ingest CronJob as `helm template -s templates/ingest-cronjob.yaml` prints it."""
    helm = [k.tool("helm"), "template", "gridts", str(CHART)]
    out = k.run([*helm, "-s", "templates/ingest-cronjob.yaml"], cwd=ROOT)
    path = tmp_path_factory.mktemp("template") / "ingest-cronjob.yaml"
    path.write_text(out)
    return path


def test_main_dry_run_prints_a_valid_job(
    template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["a.csv", "--template", str(template), "--dry-run", "--name", "ingest-4"]
    code = submit.main([*args, "--series", "x", "--", "--label", "end"])
    assert code == 0
    job = json.loads(capsys.readouterr().out)
    assert k.schema_errors([job], k.KUBE_VERSIONS[-1]) == []
    assert job["metadata"]["name"] == "ingest-4"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "ingest",
        "load",
        "a.csv",
        "--series",
        "x",
        "--label",
        "end",
    ]
    # the rest is the template's, unchanged
    spec = yaml.safe_load(template.read_text())["spec"]["jobTemplate"]["spec"]
    for key in ("podFailurePolicy", "backoffLimit", "activeDeadlineSeconds"):
        assert job["spec"][key] == spec[key]
    assert job["spec"]["template"]["spec"]["volumes"] == spec["template"]["spec"]["volumes"]


def test_main_usage_errors_exit_2(template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert submit.main([]) == 2
    assert submit.main(["--help"]) == 0
    assert "kubectl create job --from" in capsys.readouterr().out
    for args, says in [
        (["a.csv", "--template", str(template), "--release", "prod"], "no ingest CronJob"),
        (["a.csv", "--template", str(template.parent / "missing.yaml")], "No such file"),
        (
            ["a.csv", "--template", str(template), "--completions", "0", "--shards", "1"],
            "2 or more",
        ),
    ]:
        assert submit.main([*args, "--dry-run"]) == 2
        assert says in capsys.readouterr().err


def test_submit_is_a_command_of_ops_and_no_longer_of_ingest() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    proc = run("ops", "submit", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "python -m ops submit" in proc.stdout
    assert "submit" in run("ops", "--help").stdout
    moved = run("ingest", "submit", "a.csv")
    assert moved.returncode == 2
    assert "python -m ops submit" in moved.stderr


def test_log_lines_are_whole_even_when_chunks_split_them() -> None:
    chunks = [b"first li", b"ne\nsecond\nthi", "rd \u00e9".encode()[:-1], "rd \u00e9".encode()[-1:]]
    assert list(submit.prefixed_lines("pod-0", chunks)) == [
        "[pod-0] first line\n",
        "[pod-0] second\n",
        "[pod-0] third \u00e9\n",
    ]


def test_a_pod_that_cannot_start_is_reported() -> None:
    from kubernetes import client

    def pod(reason: str) -> object:
        waiting = client.V1ContainerStateWaiting(reason=reason, message='secret "x" not found')
        status = client.V1ContainerStatus(
            name="ingest",
            image="gridts",
            image_id="",
            ready=False,
            restart_count=0,
            state=client.V1ContainerState(waiting=waiting),
        )
        return client.V1Pod(status=client.V1PodStatus(phase="Pending", container_statuses=[status]))

    assert submit.stuck_reason(pod("CreateContainerConfigError")) == (
        'CreateContainerConfigError: secret "x" not found'
    )
    assert submit.stuck_reason(pod("ContainerCreating")) is None


def test_shards_make_an_indexed_job_whose_pods_split_one_file() -> None:
    objects = release()
    job = submit.build_job(
        one(objects, "CronJob", "-ingest"),
        namespace="gridts",
        sources=["/srv/ingest/data/w.csv"],
        extra_args=["--label", "end"],
        shards=3,
        parallelism=2,
    )
    assert_valid(objects, job)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 2)
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--shard", "$(JOB_INDEX)/3"]
    assert [e["name"] for e in container["env"]].count("JOB_INDEX") == 1
    cronjob = one(objects, "CronJob", "-ingest")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"shards": 1}, "2 or more"),
        ({"shards": 3, "completions": 4}, "leave out --completions"),
        ({"shards": 2, "sources": ["d-$(JOB_INDEX).csv"]}, "use one or the other"),
        ({"shards": 2, "extra_args": ["--shard", "0/2"]}, "passes --shard"),
        ({"extra_args": ["--shard", "$(JOB_INDEX)/2"]}, "needs --completions > 1"),
    ]
    for bad, says in cases:
        kwargs: dict[str, Any] = {"sources": ["w.csv"], **bad}
        with pytest.raises(ValueError, match=re.escape(says)):
            submit.build_job(cronjob, namespace="n", **kwargs)
