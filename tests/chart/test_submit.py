"""`python -m ingest submit`: the Job it would create, validated like the chart's objects."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache

import pytest

from ingest import submit
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


@pytest.mark.parametrize("name", ["grid", "gridts", "prod-gridts-eu"])
def test_cronjob_name_matches_the_chart(name: str) -> None:
    objects = release(name)
    assert one(objects, "CronJob", "-ingest")["metadata"]["name"] == submit.cronjob_name(name)


def test_job_from_the_cronjob_template() -> None:
    objects = release()
    cronjob = one(objects, "CronJob", "-ingest")
    job = submit.build_job(
        namespace="gridts",
        release="grid",
        sources=["https://example.com/a.csv", "https://example.com/b.csv"],
        series="load",
        extra_args=["--label", "end", "--step", "15m"],
        cronjob={**cronjob, "metadata": {**cronjob["metadata"], "uid": "0b7e-uid"}},
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
    # The template itself is left as it was.
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "ingest",
        "load",
    ]


def test_job_from_arguments_mirrors_the_chart() -> None:
    objects = release()
    job = submit.build_job(
        namespace="gridts",
        release="grid",
        sources=["https://example.com/a.csv"],
        image="registry.example.com/gridts:0.1.0",
        name="ingest-2",
    )
    assert_valid(objects, job)
    pod = job["spec"]["template"]["spec"]
    cron_pod = one(objects, "CronJob", "-ingest")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == cron_pod["securityContext"]
    assert pod["containers"][0]["env"] == cron_pod["containers"][0]["env"]
    assert pod["containers"][0]["securityContext"] == cron_pod["containers"][0]["securityContext"]
    # The network policy lets the Job's pods reach InfluxDB.
    policy = one(objects, "NetworkPolicy", "-influxdb")
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert any(
        k.selector_matches(p["podSelector"], labels) for p in policy["spec"]["ingress"][0]["from"]
    )


def test_indexed_job_and_image_override() -> None:
    objects = release("grid", "production")
    job = submit.build_job(
        namespace="gridts",
        release="grid",
        sources=["/srv/ingest/data/day-$(JOB_INDEX).csv.gz"],
        cronjob=one(objects, "CronJob", "-ingest"),
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
    with pytest.raises(ValueError, match="SOURCE"):
        submit.build_job(namespace="n", release="r", sources=[], image="i")
    with pytest.raises(ValueError, match="image"):
        submit.build_job(namespace="n", release="r", sources=["a"])
    with pytest.raises(ValueError, match="completions"):
        submit.build_job(namespace="n", release="r", sources=["a-$(JOB_INDEX)"], image="i")


def test_main_dry_run_prints_a_valid_job(capsys: pytest.CaptureFixture[str]) -> None:
    code = submit.main(
        ["a.csv", "--dry-run", "--name", "ingest-4", "--series", "x", "--", "--label", "end"]
    )
    assert code == 0
    job = json.loads(capsys.readouterr().out)
    assert k.schema_errors([job], k.KUBE_VERSIONS[-1]) == []
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "ingest",
        "load",
        "a.csv",
        "--series",
        "x",
        "--label",
        "end",
    ]


def test_main_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert submit.main([]) == 2
    assert submit.main(["a.csv", "--from-args"]) == 2
    assert submit.main(["--help"]) == 0
    assert "kubectl create job --from" in capsys.readouterr().out


def test_the_ingest_cli_dispatches_submit() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "submit", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "python -m ingest submit" in proc.stdout


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
        namespace="gridts",
        release="grid",
        sources=["/srv/ingest/data/w.csv"],
        extra_args=["--label", "end"],
        cronjob=one(objects, "CronJob", "-ingest"),
        shards=3,
        parallelism=2,
    )
    assert_valid(objects, job)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 2)
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--shard", "$(JOB_INDEX)/3"]
    assert [e["name"] for e in container["env"]].count("JOB_INDEX") == 1
    for bad, says in [
        ({"shards": 1}, "2 or more"),
        ({"shards": 3, "completions": 4}, "leave out --completions"),
        ({"shards": 2, "sources": ["d-$(JOB_INDEX).csv"]}, "use one or the other"),
        ({"shards": 2, "extra_args": ["--shard", "0/2"]}, "passes --shard"),
        ({"extra_args": ["--shard", "$(JOB_INDEX)/2"]}, "needs --completions > 1"),
    ]:
        kwargs = {"sources": ["w.csv"], **bad}
        with pytest.raises(ValueError, match=re.escape(says)):
            submit.build_job(namespace="n", release="r", image="i", **kwargs)  # type: ignore[arg-type]
