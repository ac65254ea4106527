"""The platform on a real Kubernetes, as an operator runs it from the README.

One story, in order: images from the Dockerfile; `helm install --wait`; ingest Jobs from the
CronJob, from `python -m ops submit` and as an Indexed Job, each checked through the API's
Service against the source file (exact count, sum); `helm test`; the InfluxDB pod deleted in the
middle of an ingest; an API pod deleted, a `helm upgrade` of the API and one that rolls the
gateways, each under a steady client (zero failed requests); uninstall and reinstall (data
kept); a backup, the InfluxDB volume lost and the release reinstalled, the restore Job bringing
everything back; the kustomize overlay applied twice.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests import prometheus_text
from tests.e2e.conftest import NAMESPACE
from tests.e2e.kube import (
    ROOT,
    SteadyClient,
    helm_binaries,
    job_finished,
    kjson,
    kubectl,
    service_url,
    sh,
    wait_job,
    wait_until,
)

RELEASE = "gridts"
VALUES = ROOT / "tests" / "e2e" / "values.yaml"
SHARED = ROOT.parent / "shared" / "data"
DATA_DIR = "/srv/ingest/data"  # where the chart mounts ingest.data.existingClaim
WORK = ROOT / ".local" / "e2e"
PY = sys.executable


@dataclass(frozen=True)
class Source:
    """A file of the scenario and what the API must return for it."""

    name: str  # file name on the exports volume
    series: str
    count: int
    total: float
    start: str  # an RFC 3339 range that holds every point
    end: str


def swissgrid(path: Path, series: str, header_rows: int, sep: str) -> Source:
    frame = pd.read_csv(path, sep=sep, skiprows=header_rows, header=None, names=["t", "v"])
    return Source(
        path.name, series, len(frame), float(frame["v"].sum()), "2018-12-31T00:00:00Z",
        "2022-01-02T00:00:00Z",
    )  # fmt: skip


def generated(name: str, series: str, start: str, end: str, seed: int) -> tuple[Path, Source]:
    """The operator's dialect from `ingest generate`; expected values read back from the file."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    if not path.exists():
        sh([PY, "-m", "ingest", "generate", "--start", start, "--end", end, "--step", "1s",
            "--seed", str(seed), "--series", series, "--quiet", "--out", str(path)])  # fmt: skip
    frame = pd.read_csv(path, sep=";", decimal=",", skiprows=1, header=None, names=["t", "v"])
    return path, Source(
        name, series, len(frame), float(frame["v"].sum()), f"{start}T00:00:00+02:00",
        f"{end}T00:00:00+02:00",
    )  # fmt: skip


@dataclass
class State:
    api: str = ""
    files: dict[str, Source] | None = None


state = State()


def api_totals(source: Source, timeout: float = 30) -> tuple[int, float] | None:
    """Count and sum of a series through the API, from daily windows added up; None while the
    API does not know the series."""
    totals = []
    for agg in ("count", "sum"):
        resp = httpx.get(
            f"{state.api}/v1/series/{source.series}/data",
            params={"start": source.start, "end": source.end, "resolution": "1d", "agg": agg},
            timeout=timeout,
        )
        if resp.status_code == 404 and resp.json().get("error") == "unknown_series":
            return None
        assert resp.status_code == 200, resp.text
        totals.append(sum(p["value"] for p in resp.json()["points"] if p["value"] is not None))
    return int(totals[0]), float(totals[1])


def assert_exact(source: Source) -> None:
    # A series the API has not seen yet appears with its catalog's next refresh (30 s).
    count, total = wait_until(f"{source.series} in the catalog", lambda: api_totals(source), 60)
    assert count == source.count, f"{source.series}: {count} points, the file has {source.count}"
    assert math.isclose(total, source.total, rel_tol=1e-12), (
        f"{source.series}: sum {total!r}, the file's {source.total!r}"
    )


def helm(*args: str, binary: str = "helm", timeout: float = 900) -> str:
    return sh([binary, *args], timeout=timeout).stdout


def install(binary: str = "helm") -> None:
    helm("install", RELEASE, "charts/gridts", "-n", NAMESPACE, "-f", str(VALUES),
         "--wait", "--timeout", "10m", binary=binary)  # fmt: skip
    wait_until("the setup Job", setup_job_done, 300, 2)
    state.api = service_url(NAMESPACE, f"{RELEASE}-api")


def uninstall(*extra: str) -> None:
    """`helm uninstall` as the README says to before installing the same release again: with
    `--cascade foreground`, `--wait` returns only once the release's pods are gone. With Helm's
    default (background), its Deployments are deleted at once and their pods a few seconds
    later, and meanwhile the new release's Services (the same labels) select the old pods: the
    gateways of the new release sent requests to the old API pods as they stopped (a 503 in the
    reinstall step on a slower machine)."""
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--cascade", "foreground", "--wait",
         "--timeout", "5m", *extra)  # fmt: skip
    left = kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE}",
                   "-o", "name")  # fmt: skip
    assert left.strip() == "", left


def setup_job_done() -> bool:
    jobs = kjson("-n", NAMESPACE, "get", "jobs", "-l", "app.kubernetes.io/component=tokens")
    names = sorted(
        (j for j in jobs["items"]),
        key=lambda j: j["metadata"]["creationTimestamp"],
    )
    if not names:
        return False
    latest = names[-1]["metadata"]["name"]
    result = job_finished(NAMESPACE, latest)
    assert result != "Failed", kubectl("-n", NAMESPACE, "logs", f"job/{latest}", check=False)
    return result == "Complete"


def pods_ready(selector: str = "") -> bool:
    pods = kjson("-n", NAMESPACE, "get", "pods", *(["-l", selector] if selector else []))["items"]
    running = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
    return bool(running) and all(
        all(s.get("ready") for s in p["status"].get("containerStatuses", [])) for p in running
    )


def copy_to_exports(path: Path) -> None:
    kubectl("-n", NAMESPACE, "cp", str(path), f"exports-loader:/data/{path.name}", timeout=600)


def loader_manifest() -> str:
    """A PVC of export files and a pod to copy files into it, as an operator would fill one."""
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "exports"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "exports-loader"},
        "spec": {
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
            "containers": [
                {
                    "name": "loader",
                    "image": "gridts.local/gridts:e2e",
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "infinity"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "exports"}}],
        },
    }
    return json.dumps(pvc) + "\n---\n" + json.dumps(pod)


def clean_slate() -> None:
    for ns in (NAMESPACE, "gridts-dev"):
        kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", timeout=300)
    sh([PY, "scripts/cluster", "recycle-volumes"])


# ---- the story ---------------------------------------------------------------------------------


def test_images() -> None:
    """images: Dockerfile (buildah) and influxd, imported into containerd"""
    sh([PY, "scripts/cluster", "images", "e2e", "e2e-2"], timeout=1800)
    listed = sh(["ctr", "--address", str(Path(_cluster_dir(), "containerd", "containerd.sock")),
                 "-n", "k8s.io", "images", "ls", "-q"]).stdout  # fmt: skip
    for image in (
        "gridts.local/gridts:e2e",
        "gridts.local/gridts:e2e-2",
        "gridts.local/influxdb:2.9.1",
        "gridts.local/haproxy:e2e",
    ):
        assert image in listed


def _cluster_dir() -> str:
    import cluster_local

    return str(cluster_local.STATE)


def test_install() -> None:
    """helm install --wait: setup Job complete, every pod Ready, influxd set by extraEnv"""
    clean_slate()
    kubectl("create", "namespace", NAMESPACE)
    kubectl("-n", NAMESPACE, "apply", "-f", "-", input=loader_manifest())
    start = time.monotonic()
    install()
    print(f"helm install --wait took {time.monotonic() - start:.0f}s")
    assert pods_ready(), kubectl("-n", NAMESPACE, "get", "pods")
    deploy = kjson("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-api")
    assert deploy["status"].get("readyReplicas", 0) >= 2
    resp = httpx.get(f"{state.api}/readyz", timeout=10)
    assert resp.status_code == 200, resp.text
    assert_gateway_serves(replicas=deploy["status"]["readyReplicas"])
    # influxdb.extraEnv reached influxd, its Go profiling is off (influxdb.profiling) and its
    # write cache goes to TSM files at 2 MiB (influxdb.cacheSnapshotSize, ADR 0019): its
    # own running configuration (GET /api/v2/config, operator token) says so, asked from an API
    # pod as the API reaches InfluxDB
    secret = kjson("-n", NAMESPACE, "get", "secret", f"{RELEASE}-influxdb-admin")
    token = base64.b64decode(secret["data"]["admin-token"]).decode()
    script = (
        "import json, os, urllib.request\n"
        "r = urllib.request.Request(os.environ['INFLUX_URL'] + '/api/v2/config', "
        f"headers={{'Authorization': 'Token {token}'}})\n"
        "c = json.load(urllib.request.urlopen(r))['config']\n"
        "print(c['storage-cache-snapshot-write-cold-duration'], c['pprof-disabled'], "
        "c['storage-cache-snapshot-memory-size'])"
    )
    out = kubectl("-n", NAMESPACE, "exec", f"deploy/{RELEASE}-api", "--", "python", "-c", script)
    assert out.split() == ["1m0s", "True", str(2 * 1024 * 1024)], out


GATEWAY_PODS = "app.kubernetes.io/component=gateway"


def gateway_pods() -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kjson("-n", NAMESPACE, "get", "pods", "-l", GATEWAY_PODS)["items"]
    return pods


def gateway_metric(name: str, **labels: str) -> list[float]:
    """The values of ``name`` with ``labels`` from every gateway pod's own exporter (its stats
    port, 8404), pod after pod."""
    found = []
    for pod in gateway_pods():
        resp = httpx.get(f"http://{pod['status']['podIP']}:8404/metrics", timeout=10)
        resp.raise_for_status()
        found += prometheus_text.values(resp.text, name, **labels)
    return found


def assert_gateway_serves(replicas: int) -> None:
    """The API Service's requests go through the gateway (ADR 0020): both gateway pods ready,
    each with every ready API pod as a server of its backend (found by the headless Service's
    DNS name), and the requests asked so far answered by them."""
    gateway = kjson("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-gateway")
    assert gateway["status"].get("readyReplicas", 0) == 2, gateway["status"]

    def servers() -> bool:
        active = gateway_metric("haproxy_backend_active_servers", proxy="api")
        return active == [replicas, replicas]

    wait_until("every API pod a server of both gateways", servers, 60, 2)
    before = sum(gateway_metric("haproxy_backend_http_responses_total", proxy="api"))
    for _ in range(4):
        assert httpx.get(f"{state.api}/v1/series", timeout=10).status_code == 200
    after = sum(gateway_metric("haproxy_backend_http_responses_total", proxy="api"))
    assert after - before == 4, (before, after)


def test_containers_as_claimed() -> None:
    """every container runs as non-root on a read-only root filesystem"""
    wait_until("the exports loader", lambda: pods_ready("!job-name"), 120)
    pods = kjson("-n", NAMESPACE, "get", "pods", "--field-selector=status.phase=Running")["items"]
    checked = 0
    for pod in pods:
        if pod["metadata"]["name"] == "exports-loader":
            continue
        for container in pod["spec"]["containers"]:
            out = kubectl(
                "-n", NAMESPACE, "exec", pod["metadata"]["name"], "-c", container["name"], "--",
                "sh", "-c", "id -u; touch /probe 2>&1 || true",
            )  # fmt: skip
            uid, _, touch = out.partition("\n")
            assert uid.strip() != "0", f"{pod['metadata']['name']}/{container['name']} runs as root"
            assert "Read-only file system" in touch, (
                f"{pod['metadata']['name']}/{container['name']} can write /: {touch!r}"
            )
            checked += 1
    assert checked >= 5  # influxdb, two API replicas and two gateways at least


def test_ingest_job_from_cronjob() -> None:
    """kubectl create job --from=cronjob: Swissgrid end-use file exact through the Service"""
    enduse = swissgrid(SHARED / "swissgrid-enduse-2019-15min.tsv", "enduse", 1, "\t")
    losses = swissgrid(
        SHARED / "swissgrid-active-losses-2019-2021-15min.csv", "active_losses", 2, ","
    )
    state.files = {"enduse": enduse, "losses": losses}
    for path in (SHARED / enduse.name, SHARED / losses.name):
        copy_to_exports(path)
    helm("upgrade", RELEASE, "charts/gridts", "-n", NAMESPACE, "--reuse-values",
         "--set", f"ingest.sources={{{DATA_DIR}/{enduse.name}}}", "--set", "ingest.series=enduse",
         "--set", "ingest.extraArgs={--label,end,--step,15m}", "--wait")  # fmt: skip
    kubectl(
        "-n", NAMESPACE, "create", "job", "--from", f"cronjob/{RELEASE}-ingest", "ingest-enduse"
    )
    wait_job(NAMESPACE, "ingest-enduse")
    logs = kubectl("-n", NAMESPACE, "logs", "job/ingest-enduse")
    assert f"{enduse.count:,}" in logs or str(enduse.count) in logs, logs
    assert_exact(enduse)


def test_ingest_submit() -> None:
    """python -m ops submit: Swissgrid losses file, logs followed, exact"""
    assert state.files
    losses = state.files["losses"]
    out = sh([PY, "-m", "ops", "submit", "-n", NAMESPACE, "--release", RELEASE,
              "--name", "ingest-losses", f"{DATA_DIR}/{losses.name}", "--series", losses.series,
              "--", "--label", "end", "--step", "15m"], timeout=900).stdout  # fmt: skip
    assert "ingest-losses" in out
    assert re.search(r"\b(105,216|105216)\b", out), out[-3000:]
    assert_exact(losses)


def test_indexed_job() -> None:
    """Indexed Job: 3 completions, parallelism 2, one generated 1 s day each"""
    days = []
    for i in range(3):
        path, src = generated(
            f"day-{i}.csv", "freq_days", f"2021-06-0{i + 1}", f"2021-06-0{i + 2}", i
        )
        copy_to_exports(path)
        days.append(src)
    sh([PY, "-m", "ops", "submit", "-n", NAMESPACE, "--release", RELEASE,
        "--name", "ingest-days", f"{DATA_DIR}/day-$(JOB_INDEX).csv", "--series", "freq_days",
        "--completions", "3", "--parallelism", "2", "--", "--label", "end"],
       timeout=900)  # fmt: skip
    job = kjson("-n", NAMESPACE, "get", "job", "ingest-days")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == 2
    assert job["status"].get("succeeded") == 3
    whole = Source("", "freq_days", sum(d.count for d in days), sum(d.total for d in days),
                   days[0].start, days[-1].end)  # fmt: skip
    assert whole.count == 3 * 86400
    assert_exact(whole)


def series_points(series: str, **params: str) -> tuple[str, dict[str, float]]:
    """One /v1 data request: the data source it names (header; JSON `source` must agree) and
    the points by time."""
    resp = httpx.get(f"{state.api}/v1/series/{series}/data", params=params, timeout=60)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    source = resp.headers["X-Data-Source"]
    assert body["source"] == source, (body["source"], source)
    return source, {p["time"]: p["value"] for p in body["points"] if p["value"] is not None}


def test_tiers_answer_as_the_raw_points_do() -> None:
    """The tiers the Indexed Job refreshed answer 3 days of a 1 s series at 1h (X-Data-Source
    tier:1h) with the numbers the raw points give: hourly count, sum, min and max from raw 30 s
    windows (finer than every tier, so raw answers them) added up per hour; an hour at 1 s read
    as its points in InfluxQL (ADR 0018), with the same sum"""
    start, end = "2021-05-31T22:00:00Z", "2021-06-03T22:00:00Z"  # the three local days
    # A tier answers a series once an API pod's catalog reload has seen the tier hold all of it
    # (within API_CATALOG_TTL_SECONDS of the Job): until then raw answers, with the same numbers.
    wait_until(
        "every API pod answering from the tier",
        lambda: all(
            series_points("freq_days", start=start, end=end, resolution="1h", agg="count")[0]
            == "tier:1h"
            for _ in range(12)
        ),
        120,
        5,
    )
    # and the API says so (`GET /v1/tiers`, through its Service): every tier of the chart found,
    # kept forever (tiers.retention: {}), holding the series, no load left to roll up
    listed = httpx.get(f"{state.api}/v1/tiers", timeout=60).json()
    assert listed["answering"] is True, listed
    assert [t["window"] for t in listed["tiers"]] == ["1m", "15m", "1h"], listed
    for tier in listed["tiers"]:
        assert tier["found"] is True, tier
        assert tier["retention_seconds"] is None, tier
        assert "freq_days" not in tier["series_not_held"], tier
        assert tier["pending_total"] == 0, tier
    hourly: dict[str, dict[str, float]] = {}
    for agg in ("count", "sum", "min", "max", "mean"):
        source, hourly[agg] = series_points(
            "freq_days", start=start, end=end, resolution="1h", agg=agg
        )
        assert source == "tier:1h", f"{agg} at 1h answered by {source}"
    assert len(hourly["count"]) == 72
    assert sum(hourly["count"].values()) == 3 * 86400

    raw: dict[str, dict[str, list[float]]] = {}
    for agg in ("count", "sum", "min", "max"):
        source, points = series_points("freq_days", start=start, end=end, resolution="30s", agg=agg)
        assert source == "raw", f"{agg} at 30s answered by {source}"
        by_hour: dict[str, list[float]] = {}
        for t, v in points.items():
            by_hour.setdefault(t[:13] + ":00:00Z", []).append(v)
        raw[agg] = by_hour
    assert set(raw["count"]) == set(hourly["count"])
    for hour, counts in raw["count"].items():
        assert hourly["count"][hour] == sum(counts), hour
        assert hourly["min"][hour] == min(raw["min"][hour]), hour
        assert hourly["max"][hour] == max(raw["max"][hour]), hour
        total = math.fsum(raw["sum"][hour])
        assert math.isclose(hourly["sum"][hour], total, rel_tol=1e-9), hour
        assert math.isclose(hourly["mean"][hour], total / sum(counts), rel_tol=1e-9), hour

    # An hour at the series' own spacing: 3,600 windows of one point each, read as the points,
    # in InfluxQL (ADR 0018) with the chart's read-only token, every pod that answered saying
    # so in its metrics; the same sum as the raw 30 s windows'.
    hour = "2021-06-01T10:00:00Z"
    answered: list[float] = []
    for _ in range(12):  # (the Service picks a pod for each connection)
        source, seconds = series_points(
            "freq_days", start=hour, end="2021-06-01T11:00:00Z", resolution="1s", agg="mean"
        )
        assert source == "raw"
        assert len(seconds) == 3600
        assert math.isclose(math.fsum(seconds.values()), math.fsum(raw["sum"][hour]), rel_tol=1e-9)
        metrics = httpx.get(f"{state.api}/metrics", timeout=30).text
        assert 'gridts_api_influxql_reads_total{outcome="refused"}' not in metrics
        relayed = 'gridts_api_influxql_reads_total{outcome="answered"} '
        answered += [float(line[len(relayed) :]) for line in metrics.splitlines()
                     if line.startswith(relayed)]  # fmt: skip
    assert max(answered, default=0) >= 1, answered

    # An unaligned start (one second into the first hour): tiers answer the whole hours, and
    # the cut hour equals the raw points' own answer for it.
    source, cut = series_points(
        "freq_days", start="2021-05-31T22:00:01Z", end=end, resolution="1h", agg="count"
    )
    assert cut["2021-05-31T22:00:00Z"] == hourly["count"]["2021-05-31T22:00:00Z"] - 1, source
    assert {t: v for t, v in cut.items() if t != "2021-05-31T22:00:00Z"} == {
        t: v for t, v in hourly["count"].items() if t != "2021-05-31T22:00:00Z"
    }


def test_helm_test() -> None:
    """helm test passes"""
    out = helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m")
    assert "Phase:          Succeeded" in out or "Succeeded" in out, out


def probe_pod(name: str, component: str | None) -> str:
    """Run a pod that connects to InfluxDB's Service; its log says connected or blocked."""
    labels = {"gridts.local/probe": "networkpolicy"}
    if component:
        labels |= {
            "app.kubernetes.io/name": "gridts",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": component,
        }
    # A policy engine admits a new pod's address a moment after the pod starts (kube-router
    # here, within seconds), so both probes try for 30 s: the allowed one gets through once
    # admitted, the other never does.
    code = (
        "import socket, time\n"
        "deadline, last = time.monotonic() + 30, None\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        f"        socket.create_connection(('{RELEASE}-influxdb', 8086), timeout=3).close()\n"
        "        print('connected'); break\n"
        "    except OSError as exc:\n"
        "        last = exc; time.sleep(1)\n"
        "else:\n"
        "    print('blocked:', last)\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "probe",
                    "image": "gridts.local/gridts:e2e",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", code],
                }
            ],
        },
    }
    kubectl("-n", NAMESPACE, "delete", "pod", name, "--ignore-not-found", "--wait=true")
    kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(pod))
    wait_until(
        f"pod {name} to finish",
        lambda: kjson("-n", NAMESPACE, "get", "pod", name)["status"]["phase"] == "Succeeded",
        180,
    )
    out = kubectl("-n", NAMESPACE, "logs", name).strip()
    kubectl("-n", NAMESPACE, "delete", "pod", name, "--wait=false")
    return out


def test_networkpolicy_is_enforced() -> None:
    """NetworkPolicy enforced: only the API, ingest and setup pods reach InfluxDB"""
    # The same image and port, only the labels differ: what blocks is the chart's policy.
    allowed = probe_pod("probe-ingest", "ingest")
    assert allowed == "connected", allowed
    denied = probe_pod("probe-stranger", None)
    assert denied.startswith("blocked:"), denied


def test_influxdb_pod_deleted_mid_ingest() -> None:
    """InfluxDB pod deleted mid-ingest: same PVC, Job completes, counts exact"""
    assert state.files
    path, big = generated("big.csv", "freq_big", "2021-07-01", "2021-08-30", 7)
    copy_to_exports(path)
    claim_before = kjson("-n", NAMESPACE, "get", "pvc", f"data-{RELEASE}-influxdb-0")["spec"][
        "volumeName"
    ]
    sh([PY, "-m", "ops", "submit", "-n", NAMESPACE, "--release", RELEASE, "--no-wait",
        "--name", "ingest-big", f"{DATA_DIR}/big.csv", "--series", big.series,
        "--", "--label", "end"])  # fmt: skip

    def ingest_running() -> bool:
        pods = kjson("-n", NAMESPACE, "get", "pods", "-l", "job-name=ingest-big")["items"]
        return any(
            "running" in c.get("state", {})
            for p in pods
            for c in p["status"].get("containerStatuses", [])
        )

    # 5 million rows take the ingest about 15 s here: 1 s into its run it is reading and writing.
    wait_until("the ingest pod to run", ingest_running, 300, 0.2)
    time.sleep(1)
    kubectl("-n", NAMESPACE, "delete", "pod", f"{RELEASE}-influxdb-0", "--wait=false")
    old_uid = kjson("-n", NAMESPACE, "get", "pod", f"{RELEASE}-influxdb-0")["metadata"]["uid"]
    wait_until(
        "a new InfluxDB pod, Ready",
        lambda: (
            kjson("-n", NAMESPACE, "get", "pod", f"{RELEASE}-influxdb-0")["metadata"]["uid"]
            != old_uid
            and pods_ready("app.kubernetes.io/component=influxdb")
        ),
        300,
    )
    wait_job(NAMESPACE, "ingest-big", timeout=900)
    claim_after = kjson("-n", NAMESPACE, "get", "pvc", f"data-{RELEASE}-influxdb-0")["spec"][
        "volumeName"
    ]
    assert claim_after == claim_before
    logs = kubectl("-n", NAMESPACE, "logs", "job/ingest-big", check=False)
    job = kjson("-n", NAMESPACE, "get", "job", "ingest-big")
    hit = job["status"].get("failed", 0) > 0 or re.search(r"retr|unreachable|refused", logs, re.I)
    assert hit, f"the ingest never saw InfluxDB go away; the fault did not happen:\n{logs[-2000:]}"
    wait_until(
        "the API to be Ready again", lambda: pods_ready("app.kubernetes.io/component=api"), 120
    )
    assert_exact(big)
    assert_exact(state.files["enduse"])  # written before the pod was deleted: still there


def steady_url() -> str:
    return (
        f"{state.api}/v1/series/enduse/data?start=2019-03-01T00:00:00Z"
        "&end=2019-03-02T00:00:00Z&resolution=1h&agg=sum"
    )


def day_of_hours(resp: httpx.Response) -> bool:
    return len(resp.json()["points"]) == 24


def test_api_pod_deleted_under_steady_client() -> None:
    """an API pod deleted under a steady client: zero failed requests"""
    pods = kjson("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")["items"]
    with SteadyClient(steady_url(), day_of_hours) as client:
        time.sleep(3)
        kubectl("-n", NAMESPACE, "delete", "pod", pods[0]["metadata"]["name"], "--wait=true")
        wait_until(
            "the API back at full strength",
            lambda: pods_ready("app.kubernetes.io/component=api"),
            180,
        )
        time.sleep(5)
    print(f"{client.ok} requests succeeded, {len(client.failures)} failed")
    assert client.ok > 50
    assert client.failures == [], client.failures[:10]


def token_of(secret: str) -> str:
    data: dict[str, str] = kjson("-n", NAMESPACE, "get", "secret", secret)["data"]
    return next(iter(data.values()))


def test_upgrade_under_steady_client() -> None:
    """helm upgrade to a new API image tag under a steady client: zero failed requests"""
    tokens_before = {
        s: token_of(s) for s in (f"{RELEASE}-api-influx-token", f"{RELEASE}-ingest-influx-token")
    }
    with SteadyClient(steady_url(), day_of_hours) as client:
        time.sleep(3)
        helm("upgrade", RELEASE, "charts/gridts", "-n", NAMESPACE, "--reuse-values",
             "--set", "image.tag=e2e-2", "--wait", "--timeout", "10m")  # fmt: skip
        wait_until("the new setup Job", setup_job_done, 300, 2)
        time.sleep(3)
    print(f"{client.ok} requests succeeded, {len(client.failures)} failed")
    assert client.ok > 50
    assert client.failures == [], client.failures[:10]
    assert {s: token_of(s) for s in tokens_before} == tokens_before, "the upgrade replaced tokens"
    images = {
        c["image"]
        for p in kjson("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")[
            "items"
        ]
        for c in p["spec"]["containers"]
        if "deletionTimestamp" not in p["metadata"]  # old pods still in their preStop delay
    }
    assert images == {"gridts.local/gridts:e2e-2"}
    assert state.files
    assert_exact(state.files["enduse"])


def test_gateway_rollout_under_steady_client() -> None:
    """helm upgrade of the gateway's configuration under a steady client: zero failed requests"""
    before = {p["metadata"]["name"] for p in gateway_pods()}
    with SteadyClient(steady_url(), day_of_hours) as client:
        time.sleep(3)
        # a changed haproxy.cfg (a longer queue wait) rolls both gateways, one after the other
        helm("upgrade", RELEASE, "charts/gridts", "-n", NAMESPACE, "--reuse-values",
             "--set", "gateway.queueSeconds=45", "--wait", "--timeout", "10m")  # fmt: skip
        wait_until("the new gateways alone", lambda: gateways_replaced(before), 120)
        wait_until("the new setup Job", setup_job_done, 300, 2)
        time.sleep(3)
    print(f"{client.ok} requests succeeded, {len(client.failures)} failed")
    assert client.ok > 50
    assert client.failures == [], client.failures[:10]
    config = kjson("-n", NAMESPACE, "get", "configmap", f"{RELEASE}-gateway")["data"]["haproxy.cfg"]
    assert "timeout queue 45000ms" in config
    deploy = kjson("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-api")
    assert_gateway_serves(replicas=deploy["status"]["readyReplicas"])


def gateways_replaced(before: set[str]) -> bool:
    """Only gateway pods other than ``before``, every one of them ready."""
    names = {p["metadata"]["name"] for p in gateway_pods()}
    return not names & before and pods_ready(GATEWAY_PODS)


def test_hpa_scales_the_api_under_load() -> None:
    """HPA with metrics-server: the API scales out under load"""
    hpa_name = f"{RELEASE}-api"

    def utilisation() -> int | None:
        status = kjson("-n", NAMESPACE, "get", "hpa", hpa_name).get("status", {})
        for metric in status.get("currentMetrics") or []:
            value = metric.get("resource", {}).get("current", {}).get("averageUtilization")
            if value is not None:
                return int(value) + 1  # 0 % is a reading too
        return None

    wait_until("the HPA to read CPU from metrics-server", utilisation, 180, 3)
    before = kjson("-n", NAMESPACE, "get", "hpa", hpa_name)["status"]["currentReplicas"]
    # One day at 1 s, every point: JSON for 86,400 points costs the API real CPU per request.
    heavy = (
        f"{state.api}/v1/series/freq_big/data?start=2021-07-02T00:00:00Z"
        "&end=2021-07-03T00:00:00Z&resolution=raw"
    )
    clients = [SteadyClient(heavy, lambda r: len(r.json()["points"]) == 86400, 0) for _ in range(4)]
    for client in clients:
        client.__enter__()
    try:
        wait_until(
            "the HPA to add API replicas",
            lambda: (
                kjson("-n", NAMESPACE, "get", "hpa", hpa_name)["status"].get("desiredReplicas", 0)
                > before
            ),
            300,
            5,
        )
        # Ready as the Deployment counts them: the HPA's wish reaches the Deployment, and its
        # new pod exists, a moment after `desiredReplicas` rises; until then every API pod that
        # exists may be Ready while none of them is new.
        wait_until(
            "the new replicas Ready",
            lambda: (
                kjson("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-api")["status"].get(
                    "readyReplicas", 0
                )
                > before
            ),
            180,
        )
    finally:
        for client in clients:
            client.__exit__()
    replicas = kjson("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-api")["status"]
    print(f"API replicas {before} -> {replicas.get('readyReplicas')} under load")
    assert replicas.get("readyReplicas", 0) > before
    failures = [f for c in clients for f in c.failures]
    assert sum(c.ok for c in clients) > 0
    assert [f for f in failures if not f.startswith("429")] == [], failures[:5]


def test_uninstall_keeps_data_and_reinstall_serves_it() -> None:
    """helm uninstall keeps PVC and Secrets; reinstalling serves the old data"""
    assert state.files
    uninstall()
    pvc = kjson("-n", NAMESPACE, "get", "pvc", f"data-{RELEASE}-influxdb-0")
    assert pvc["status"]["phase"] == "Bound"
    for secret in (
        f"{RELEASE}-influxdb-admin",
        f"{RELEASE}-api-influx-token",
        f"{RELEASE}-ingest-influx-token",
    ):
        kjson("-n", NAMESPACE, "get", "secret", secret)
    gone = kubectl("-n", NAMESPACE, "get", "deploy,sts,cronjob,svc", "-o", "name")
    assert gone.strip() == "", gone
    install()
    for source in state.files.values():
        assert_exact(source)


def test_helm4_install_and_test() -> None:
    """Helm 4: upgrade and helm test of the same release"""
    if "helm4" not in helm_binaries():
        pytest.skip("helm4 is not built (make setup builds it)")
    helm("upgrade", RELEASE, "charts/gridts", "-n", NAMESPACE, "--reuse-values", "--wait",
         "--timeout", "10m", binary="helm4")  # fmt: skip
    wait_until("the setup Job", setup_job_done, 300, 2)
    out = helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m", binary="helm4")
    assert "Succeeded" in out, out


# Backups on, the schedule suspended (it must not fire mid-story; Jobs created from it still run).
BACKUP_SETS = ["--set", "backup.enabled=true", "--set", "backup.suspend=true",
               "--set", "backup.persistence.size=5Gi"]  # fmt: skip
SNAPSHOT_RANGE = {"start": "2018-12-31T00:00:00Z", "end": "2021-09-01T00:00:00Z"}


def api_snapshot() -> dict[str, Any]:
    """Everything the API serves, summed up: the catalog, and every series' daily count and
    sum over the whole story's range, and one hour of the 1 s series at full resolution."""
    catalog = httpx.get(f"{state.api}/v1/series", timeout=30)
    assert catalog.status_code == 200, catalog.text
    snapshot: dict[str, Any] = {"catalog": catalog.json()}
    for series in sorted(s["name"] for s in catalog.json()["series"]):
        for agg in ("count", "sum"):
            resp = httpx.get(
                f"{state.api}/v1/series/{series}/data",
                params={**SNAPSHOT_RANGE, "resolution": "1d", "agg": agg},
                timeout=60,
            )
            assert resp.status_code == 200, resp.text
            snapshot[f"{series} {agg}"] = resp.json()
    raw = httpx.get(
        f"{state.api}/v1/series/freq_big/data",
        params={"start": "2021-07-02T00:00:00Z", "end": "2021-07-02T01:00:00Z",
                "resolution": "raw"},
        timeout=60,
    )  # fmt: skip
    assert raw.status_code == 200, raw.text
    snapshot["freq_big raw hour"] = raw.json()
    return snapshot


def old_api_pods_gone() -> bool:
    pods = kjson("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")["items"]
    return not any("deletionTimestamp" in p["metadata"] for p in pods)


def summary_of(logs: str) -> dict[str, Any]:
    """The JSON summary `python -m ops` prints last."""
    lines = [line for line in logs.splitlines() if line.startswith("{")]
    assert lines, f"no summary in the logs:\n{logs[-3000:]}"
    return dict(json.loads(lines[-1]))


def test_backup_and_restore_onto_a_new_volume() -> None:
    """backup Job; InfluxDB StatefulSet and PVC deleted, reinstall; restore Job: API identical"""
    assert state.files
    helm("upgrade", RELEASE, "charts/gridts", "-n", NAMESPACE, "--reuse-values", *BACKUP_SETS,
         "--wait", "--timeout", "10m")  # fmt: skip
    wait_until("the setup Job", setup_job_done, 300, 2)
    before = api_snapshot()
    assert len(before["catalog"]["series"]) >= 4, before["catalog"]

    # The backup, as the schedule would run it.
    kubectl("-n", NAMESPACE, "create", "job", "--from", f"cronjob/{RELEASE}-backup", "backup-e2e")
    wait_job(NAMESPACE, "backup-e2e", timeout=1200)
    backup = summary_of(kubectl("-n", NAMESPACE, "logs", "job/backup-e2e"))
    assert backup["ok"] is True, backup
    assert backup["scope"] == {"kind": "full"}
    assert backup["counts"]["shards"] > 10, backup

    # The volume is lost: StatefulSet and claim deleted, then the release reinstalled.
    claim = f"data-{RELEASE}-influxdb-0"
    lost_volume = kjson("-n", NAMESPACE, "get", "pvc", claim)["spec"]["volumeName"]
    kubectl("-n", NAMESPACE, "delete", "statefulset", f"{RELEASE}-influxdb", "--wait=true")
    kubectl("-n", NAMESPACE, "delete", "pod", f"{RELEASE}-influxdb-0", "--ignore-not-found",
            "--wait=true", timeout=300)  # fmt: skip
    kubectl("-n", NAMESPACE, "delete", "pvc", claim, "--wait=true", timeout=300)
    sh([PY, "scripts/cluster", "recycle-volumes"])
    uninstall()
    kjson("-n", NAMESPACE, "get", "pvc", f"{RELEASE}-backup")  # kept by helm uninstall
    helm("install", RELEASE, "charts/gridts", "-n", NAMESPACE, "-f", str(VALUES), *BACKUP_SETS,
         "--wait", "--timeout", "10m")  # fmt: skip
    wait_until("the setup Job", setup_job_done, 300, 2)
    state.api = service_url(NAMESPACE, f"{RELEASE}-api")
    new_volume = kjson("-n", NAMESPACE, "get", "pvc", claim)["spec"]["volumeName"]
    print(f"InfluxDB's claim lost (volume {lost_volume}), a new one bound ({new_volume}, wiped)")
    # (The API pods started with the kept token Secret, whose token the new InfluxDB does not
    # know; the restore refuses an InfluxDB holding data, so its success below also proves that
    # this one started empty.)

    # The restore Job, from its template: verify, metadata, shards, then new API/ingest tokens.
    kubectl("-n", NAMESPACE, "create", "job", "--from", f"cronjob/{RELEASE}-restore",
            "restore-e2e")  # fmt: skip
    wait_job(NAMESPACE, "restore-e2e", timeout=1800)
    restore = summary_of(kubectl("-n", NAMESPACE, "logs", "job/restore-e2e", "-c", "restore"))
    assert restore["ok"] is True, restore
    assert restore["mode"] == "full"
    assert restore["shards"] == backup["counts"]["shards"]
    assert restore["operatorTokenChanged"] is False  # the admin Secret was kept
    tokens_log = kubectl("-n", NAMESPACE, "logs", "job/restore-e2e", "-c", "tokens")
    # the API's new token reads the raw bucket and its tiers, and nothing writes with it
    assert re.search(r"api-influx-token: created a token \(read grid[,\w]*\)", tokens_log), (
        tokens_log
    )
    kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{RELEASE}-api")
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{RELEASE}-api", "--timeout=5m",
            timeout=400)  # fmt: skip
    # `rollout status` returns while the old pods serve out their preStop delay, still behind the
    # Service for a moment and still holding the token the new InfluxDB refuses (401): wait for
    # them to be gone, as the runbook's `helm test` after the restart does.
    wait_until("the API's old pods gone", old_api_pods_gone, 180, 2)
    wait_until(
        "the API answering with the restored data",
        lambda: httpx.get(f"{state.api}/v1/series", timeout=10).json()["series"],
        180,
        2,
    )
    after = api_snapshot()
    differing = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert differing == [], f"the API answers differently after the restore: {differing}"
    for source in state.files.values():
        assert_exact(source)
    # The ingest's new token writes: re-running an ingest of before the backup changes nothing.
    enduse = state.files["enduse"]
    sh([PY, "-m", "ops", "submit", "-n", NAMESPACE, "--release", RELEASE,
        "--name", "ingest-after-restore", f"{DATA_DIR}/{enduse.name}", "--series", enduse.series,
        "--", "--label", "end", "--step", "15m"], timeout=900)  # fmt: skip
    assert_exact(enduse)


def test_kustomize_dev_overlay_twice() -> None:
    """kubectl apply -k of the dev overlay, then again with a new image tag"""
    # Frees the node for the overlay's own InfluxDB and API (the release's PVC stays).
    uninstall("--ignore-not-found")
    overlay = WORK / "overlay"
    for tag in ("e2e", "e2e-2"):
        overlay.mkdir(parents=True, exist_ok=True)
        # The README's overlay as it is, with only the image names of this cluster.
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n  - {os.path.relpath(ROOT / 'k8s' / 'overlays' / 'dev', overlay)}\n"
            "images:\n"
            f"  - name: gridts\n    newName: gridts.local/gridts\n    newTag: {tag}\n"
            "  - name: influxdb\n    newName: gridts.local/influxdb\n"
            "  - name: haproxy\n    newName: gridts.local/haproxy\n    newTag: e2e\n"
        )
        kubectl("apply", "-k", str(overlay), timeout=300)
        wait_until(
            f"the dev overlay ({tag}) rolled out",
            partial(dev_rolled_out, tag),
            600,
            3,
        )


def dev_rolled_out(tag: str) -> bool:
    deploy = kjson("-n", "gridts-dev", "get", "deployment", "gridts-api")
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    status = deploy.get("status", {})
    return (
        image.endswith(f":{tag}")
        and status.get("updatedReplicas") == status.get("replicas") == status.get("readyReplicas")
        and status.get("observedGeneration") == deploy["metadata"]["generation"]
        and httpx.get(f"{service_url('gridts-dev', 'gridts-api')}/readyz", timeout=5).status_code
        == 200
    )


def test_cleanup() -> None:
    """clean up: namespaces deleted, volumes recycled"""
    clean_slate()
    left = subprocess.run(
        ["kubectl", "get", "pv", "-o", "jsonpath={.items[*].status.phase}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert left, "no PersistentVolumes"
    assert set(left) == {"Available"}, left


def test_killed_cluster_comes_back_up() -> None:
    """every cluster process SIGKILLed: scripts/cluster up cleans up and recovers"""
    import cluster_local as cl

    pids = [pid for name in cl.COMPONENTS if (pid := cl.pid_of(name)) is not None]
    assert len(pids) == len(cl.COMPONENTS)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # What a killed run leaves: containers, mounts, the bridge, iptables chains, PID files.
    assert cl.leftovers(), "nothing left behind: the kill did not happen"
    out = sh([PY, "scripts/cluster", "up"], timeout=900).stdout
    assert "cleaning up what an earlier run left behind" in out, out
    assert cl.healthy()
    assert kubectl("get", "pods", "-A", "--no-headers").count("Running") >= 1
