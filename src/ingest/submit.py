"""``python -m ingest submit``: start an ingest Job on Kubernetes and follow its logs.

The Job is what ``kubectl create job --from=cronjob/<release>-gridts-ingest`` would make: a copy
of the Helm release's suspended CronJob template (image, token Secret, volumes, security
context, failure policy) with the container's arguments replaced by ``ingest load SOURCE...``.
With ``--from-args`` the Job is built from the arguments alone, mirroring the chart's template,
for clusters where the CronJob cannot be read.

Exit status: 0 the Job completed; 1 the cluster was unreachable or the Job failed (the ingest's
own status 1: InfluxDB unreachable); 2 bad usage, or the ingest exited 2 (bad input).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from gridts.tiers import DEFAULT_TIERS

Manifest = dict[str, Any]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CHART_NAME = "gridts"
CONTAINER = "ingest"
IMAGE_USER = 10001  # the Dockerfile's USER
INDEX_ENV = "JOB_INDEX"
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def fullname(release: str) -> str:
    """The chart's resource-name prefix (charts/gridts/templates/_helpers.tpl, gridts.fullname)."""
    name = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return name[:63].rstrip("-")


def cronjob_name(release: str) -> str:
    return f"{fullname(release)}-ingest"[:63].rstrip("-")


def load_args(
    sources: Sequence[str], series: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """The container arguments: the image's ENTRYPOINT ends in ``python -m``."""
    if not sources:
        raise ValueError("at least one SOURCE is needed")
    args = ["ingest", "load", *sources]
    if series:
        args += ["--series", series]
    return [*args, *extra]


def default_job_name() -> str:
    return f"ingest-{int(time.time())}"


def _labels(release: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": CHART_NAME,
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": "ingest",
        "app.kubernetes.io/part-of": CHART_NAME,
        "app.kubernetes.io/managed-by": "gridts-ingest-submit",
    }


def token_scope_key(action: str, bucket: str, tiers: str) -> str:
    """The key of the token Secret that names the token's scope, as the chart derives it
    (gridts.tokenScopeKey): the chart's tokens Job writes it next to the token."""
    digest = hashlib.sha256(f"{action} {bucket} {tiers}".encode()).hexdigest()
    return f"scope-{digest[:16]}"


def _job_spec_from_args(release: str, image: str, org: str, bucket: str) -> Manifest:
    """A Job spec equal in substance to the chart's ingest template with default values.

    Long: one manifest literal mirroring the template key for key (issue 12, item 6 replaces it
    with the chart's own template)."""
    prefix = fullname(release)
    hardened = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container: Manifest = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [],
        "env": [
            {"name": "INFLUX_URL", "value": f"http://{prefix}-influxdb:8086"},
            {"name": "INFLUX_ORG", "value": org},
            {"name": "INFLUX_BUCKET", "value": bucket},
            {
                "name": "INFLUX_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": f"{prefix}-ingest-influx-token", "key": "token"}
                },
            },
            {
                # the pod starts once the Secret holds a token for the raw and tier buckets
                "name": "INFLUX_TOKEN_SCOPE",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": f"{prefix}-ingest-influx-token",
                        "key": token_scope_key("read-write", bucket, DEFAULT_TIERS),
                    }
                },
            },
            {"name": "INGEST_TIERS", "value": DEFAULT_TIERS},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": hardened,
        # The root filesystem is read-only; /tmp is a pod-private emptyDir.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    return {
        "backoffLimit": 3,
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 86400,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [2]},
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": {
            "metadata": {"labels": _labels(release)},
            "spec": {
                "serviceAccountName": f"{prefix}-ingest",
                "automountServiceAccountToken": False,
                "restartPolicy": "Never",
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": IMAGE_USER,
                    "runAsGroup": IMAGE_USER,
                    "fsGroup": IMAGE_USER,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
            },
        },
    }


def build_job(
    *,
    namespace: str,
    release: str,
    sources: Sequence[str],
    series: str | None = None,
    extra_args: Sequence[str] = (),
    cronjob: Manifest | None = None,
    image: str | None = None,
    name: str | None = None,
    completions: int | None = None,
    parallelism: int | None = None,
    shards: int | None = None,
    org: str = "grid",
    bucket: str = "grid",
) -> Manifest:
    """The Job manifest (a plain dict, as the API server takes it).

    From ``cronjob`` (the release's CronJob as a dict) when given, like ``kubectl create job
    --from``; otherwise from the arguments, which then need ``image``. ``image`` also overrides
    the template's image. ``completions`` > 1 makes an Indexed Job: ``$(JOB_INDEX)`` in a source
    is replaced by each pod's index (0..completions-1). ``shards`` N splits each (wide) source
    by its columns: an Indexed Job of N pods, pod K loading with ``--shard K/N``.
    """
    if shards is not None:
        completions, extra_args = _sharded(shards, completions, sources, extra_args)
    if cronjob is not None:
        spec, labels, annotations, owners = _from_cronjob(cronjob)
    elif image:
        spec = _job_spec_from_args(release, image, org, bucket)
        labels, annotations, owners = _labels(release), {}, []
    else:
        raise ValueError("without the CronJob template an image is needed")
    container = _set_container(spec, load_args(sources, series, extra_args), image)
    _set_completions(spec, container, completions, parallelism, [*sources, *extra_args])
    metadata: Manifest = {"name": name or default_job_name(), "namespace": namespace}
    metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    if owners:
        metadata["ownerReferences"] = owners
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _sharded(
    shards: int, completions: int | None, sources: Sequence[str], extra_args: Sequence[str]
) -> tuple[int, list[str]]:
    """``--shards N``: N completions, pod K loading with ``--shard K/N``; ValueError when the
    other arguments contradict it."""
    if shards < 2:
        raise ValueError("--shards wants 2 or more pods (one pod loads the whole file)")
    if completions is not None and completions != shards:
        raise ValueError("--shards N makes N completions: leave out --completions")
    if any(f"$({INDEX_ENV})" in s for s in sources):
        raise ValueError(
            f"--shards splits every source by its columns; $({INDEX_ENV}) in a source "
            "gives each pod its own file: use one or the other"
        )
    if "--shard" in extra_args or any(a.startswith("--shard=") for a in extra_args):
        raise ValueError("--shards passes --shard to the load itself")
    return shards, [*extra_args, "--shard", f"$({INDEX_ENV})/{shards}"]


def _from_cronjob(
    cronjob: Manifest,
) -> tuple[Manifest, dict[str, str], dict[str, str], list[Manifest]]:
    """A copy of the CronJob's Job spec, its labels, and the annotation and owner reference
    ``kubectl create job --from`` adds."""
    template = cronjob["spec"]["jobTemplate"]
    spec = copy.deepcopy(template["spec"])
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    owner = cronjob.get("metadata") or {}
    owners = (
        [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": owner["name"],
                "uid": owner["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        if owner.get("uid")
        else []
    )
    return spec, labels, {"cronjob.kubernetes.io/instantiate": "manual"}, owners


def _set_container(spec: Manifest, args: list[str], image: str | None) -> Manifest:
    """The ingest container (else the first), set to run ``args`` (with ``image`` when given)."""
    containers = spec["template"]["spec"]["containers"]
    matching = [c for c in containers if c["name"] == CONTAINER] or containers[:1]
    if not matching:
        raise ValueError("the template has no container")
    container: Manifest = matching[0]
    container["args"] = args
    container.pop("command", None)
    if image:
        container["image"] = image
    return container


def _set_completions(
    spec: Manifest,
    container: Manifest,
    completions: int | None,
    parallelism: int | None,
    args: Sequence[str],
) -> None:
    """More than one completion makes an Indexed Job whose pods see their index in JOB_INDEX;
    ``$(JOB_INDEX)`` in ``args`` needs one."""
    env = [e for e in container.get("env") or [] if e["name"] != INDEX_ENV]
    for key in ("completionMode", "completions", "parallelism"):
        spec.pop(key, None)
    if completions is not None and completions > 1:
        spec["completionMode"] = "Indexed"
        spec["completions"] = completions
        spec["parallelism"] = min(parallelism or completions, completions)
        env.append({"name": INDEX_ENV, "valueFrom": {"fieldRef": {"fieldPath": INDEX_FIELD}}})
    elif any(f"$({INDEX_ENV})" in s for s in args):
        raise ValueError(f"$({INDEX_ENV}) in a source or argument needs --completions > 1")
    container["env"] = env


# ---- the cluster ------------------------------------------------------------------------------


def _clients(context: str | None) -> tuple[Any, Any]:
    import kubernetes

    k8s: Any = kubernetes  # the client is untyped
    try:
        k8s.config.load_kube_config(context=context)
    except Exception:
        k8s.config.load_incluster_config()
    return k8s.client.BatchV1Api(), k8s.client.CoreV1Api()


def read_cronjob(batch: Any, namespace: str, name: str) -> Manifest:
    cronjob = batch.read_namespaced_cron_job(name, namespace)
    serialized: Manifest = batch.api_client.sanitize_for_serialization(cronjob)
    return serialized


def _finished(job: Any) -> str | None:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return str(condition.type)
    return None


def _exit_code(pod: Any) -> int | None:
    for status in (pod.status.container_statuses or []) if pod.status else []:
        if status.name == CONTAINER and status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


# A container waiting for one of these will not start by itself: report it instead of waiting.
STUCK_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
    }
)


def stuck_reason(pod: Any) -> str | None:
    for status in (pod.status.container_statuses or []) if pod.status else []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason in STUCK_REASONS:
            return f"{waiting.reason}: {waiting.message or ''}".strip()
    return None


def prefixed_lines(prefix: str, chunks: Iterable[bytes]) -> Iterator[str]:
    """Complete lines of a byte stream whose chunks may split lines (and UTF-8 characters)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield f"[{prefix}] {line.decode(errors='replace')}\n"
    if buffer:
        yield f"[{prefix}] {buffer.decode(errors='replace')}\n"


def follow(
    batch: Any,
    core: Any,
    namespace: str,
    name: str,
    timeout: float,
    write: Callable[[str], object] = sys.stdout.write,
) -> int:
    """Stream each pod's log as it starts; return the exit status for the finished Job."""
    deadline = time.monotonic() + timeout
    followed: set[str] = set()
    codes: list[int] = []
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
        ).items
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            if pod.metadata.name in followed:
                continue
            if pod.status.phase == "Pending":
                reason = stuck_reason(pod)
                if reason:
                    print(f"ingest submit: pod {pod.metadata.name}: {reason}", file=sys.stderr)
                    return EXIT_FAILED
                continue
            followed.add(pod.metadata.name)
            stream = core.read_namespaced_pod_log(
                pod.metadata.name,
                namespace,
                container=CONTAINER,
                follow=True,
                _preload_content=False,
            )
            for line in prefixed_lines(pod.metadata.name, stream.stream()):
                write(line)
            latest = core.read_namespaced_pod(pod.metadata.name, namespace)
            code = _exit_code(latest)
            if code is not None:
                codes.append(code)
        state = _finished(batch.read_namespaced_job(name, namespace))
        if state == "Complete":
            return EXIT_OK
        if state == "Failed":
            return EXIT_USAGE if EXIT_USAGE in codes else EXIT_FAILED
        time.sleep(2)
    print(f"ingest submit: timed out after {timeout:.0f}s; job/{name} goes on", file=sys.stderr)
    return EXIT_FAILED


def submit(
    job: Manifest, *, context: str | None = None, wait: bool = True, timeout: float = 3600
) -> int:
    """Create the Job and, with ``wait``, follow its pods' logs until it finishes."""
    batch, core = _clients(context)
    namespace = job["metadata"]["namespace"]
    batch.create_namespaced_job(namespace, job)
    name = job["metadata"]["name"]
    print(f"job.batch/{name} created in {namespace}", file=sys.stderr, flush=True)
    if not wait:
        return EXIT_OK
    return follow(batch, core, namespace, name, timeout)


# ---- command line -----------------------------------------------------------------------------

EXAMPLES = """\
examples (the operator's exports label each value with the END of its interval: pass
-- --label end, or every point is stored one step late):
  python -m ingest submit https://host/export.csv.gz --series load -- --label end
  python -m ingest submit /srv/ingest/data/day-0.csv --release prod -n grid -- --label end
  python -m ingest submit https://host/enduse.tsv --series enduse -- --label end --step 15m
  python -m ingest submit '/srv/ingest/data/day-$(JOB_INDEX).csv' --completions 7 -- --label end
  python -m ingest submit /srv/ingest/data/wide.csv --shards 4 -- --label end   # 4 pods, 1 file
  python -m ingest submit a.csv --dry-run -- --label end     # print the Job, touch no cluster

--shards N: an Indexed Job of N pods that load the same wide file(s) between them, pod K
the value columns j with j mod N == K (`ingest load --shard '$(JOB_INDEX)/N'`; rejected rows
are listed in pod 0's log).

Arguments after `--` go to `ingest load` unchanged (`-- --label end --existing refuse`: exit 2,
nothing written, if a stored value would change). The Job is a copy of the release's CronJob
template (what `kubectl create job --from=cronjob/<release>-gridts-ingest` makes), so it runs
with the release's image, token, volumes and limits. A token that may only write loads with a
warning and no count of stored points (`ingest load --help`, --existing).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest submit",
        description="Start an ingest Job on Kubernetes from the Helm release's CronJob template "
        "and follow its logs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="URL, or a path inside the pod (/srv/ingest/data on the PVC, /srv/ingest/files)",
    )
    parser.add_argument("--series", help="series name, passed to ingest load")
    parser.add_argument("-n", "--namespace", default="gridts", help="namespace (default gridts)")
    parser.add_argument("--release", default="gridts", help="Helm release name (default gridts)")
    parser.add_argument("--cronjob", help="CronJob to copy (default <release fullname>-ingest)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--name", help="Job name (default ingest-<unix time>)")
    parser.add_argument("--image", help="override the image (required with --from-args)")
    parser.add_argument(
        "--from-args",
        action="store_true",
        help="build the Job from arguments instead of reading the CronJob",
    )
    parser.add_argument("--org", default="grid", help="with --from-args: INFLUX_ORG")
    parser.add_argument("--bucket", default="grid", help="with --from-args: INFLUX_BUCKET")
    parser.add_argument(
        "--completions", type=int, help="Indexed Job with this many pods; see $(JOB_INDEX)"
    )
    parser.add_argument("--parallelism", type=int, help="pods of an Indexed Job at once")
    parser.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="Indexed Job of N pods that split each wide source by its columns "
        "(ingest load --shard '$(JOB_INDEX)/N')",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the Job as JSON, built from the arguments; touch no cluster",
    )
    parser.add_argument("--no-wait", action="store_true", help="create the Job and return")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to follow (default 3600)"
    )
    return parser


def main(argv: list[str]) -> int:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help exits 0, a usage error 2
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    if args.from_args and not args.image:
        parser.print_usage(sys.stderr)
        print("ingest submit: --from-args needs --image", file=sys.stderr)
        return EXIT_USAGE
    cronjob: Manifest | None = None
    if not args.from_args and not args.dry_run:
        try:
            batch, _ = _clients(args.context)
            name = args.cronjob or cronjob_name(args.release)
            cronjob = read_cronjob(batch, args.namespace, name)
        except Exception as exc:
            print(f"ingest submit: cannot read the CronJob: {exc}", file=sys.stderr)
            return EXIT_FAILED
    try:
        job = build_job(
            namespace=args.namespace,
            release=args.release,
            sources=args.sources,
            series=args.series,
            extra_args=extra,
            cronjob=cronjob,
            image=args.image or ("gridts:latest" if args.dry_run and cronjob is None else None),
            name=args.name,
            completions=args.completions,
            parallelism=args.parallelism,
            shards=args.shards,
            org=args.org,
            bucket=args.bucket,
        )
    except ValueError as exc:
        print(f"ingest submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        print(json.dumps(job, indent=2))
        return EXIT_OK
    try:
        return submit(job, context=args.context, wait=not args.no_wait, timeout=args.timeout)
    except Exception as exc:
        print(f"ingest submit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
