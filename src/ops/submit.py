"""``python -m ops submit``: start an ingest Job on Kubernetes and follow its logs.

The Job is what ``kubectl create job --from=cronjob/<release>-ingest`` makes: a copy of the Helm
release's ingest CronJob template (image, token Secret, volumes, security context, failure
policy) with the container's arguments replaced by ``ingest load SOURCE...``. The template is
the release's CronJob in the cluster, found by its labels, or one given with ``--template`` (e.g.
``helm template ... -s templates/ingest-cronjob.yaml``): the chart is the one source of the Job,
nothing here restates it.

Exit status: 0 the Job completed; 1 the cluster was unreachable or the Job failed (the ingest's
own status 1: InfluxDB unreachable); 2 bad usage, no ingest CronJob for the release, or the
ingest exited 2 (bad input).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONTAINER = "ingest"
# The chart's labels of its ingest CronJob (charts/gridts/templates/_helpers.tpl, gridts.labels).
COMPONENT_LABEL = "app.kubernetes.io/component=ingest"
RELEASE_LABEL = "app.kubernetes.io/instance"
INDEX_ENV = "JOB_INDEX"
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


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


def build_job(
    cronjob: Manifest,
    *,
    namespace: str,
    sources: Sequence[str],
    series: str | None = None,
    extra_args: Sequence[str] = (),
    image: str | None = None,
    name: str | None = None,
    completions: int | None = None,
    parallelism: int | None = None,
    shards: int | None = None,
) -> Manifest:
    """The Job manifest (a plain dict, as the API server takes it): the ``cronjob``'s template
    (the release's CronJob as a dict), as ``kubectl create job --from`` copies it, running
    ``ingest load`` on ``sources``.

    ``image`` overrides the template's image. ``completions`` > 1 makes an Indexed Job:
    ``$(JOB_INDEX)`` in a source is replaced by each pod's index (0..completions-1). ``shards`` N
    splits each (wide) source by its columns: an Indexed Job of N pods, pod K loading with
    ``--shard K/N``.
    """
    if shards is not None:
        completions, extra_args = _sharded(shards, completions, sources, extra_args)
    spec, labels, annotations, owners = _from_cronjob(cronjob)
    container = _set_container(spec, load_args(sources, series, extra_args), image)
    _set_completions(spec, container, completions, parallelism, [*sources, *extra_args])
    metadata: Manifest = {"name": name or default_job_name(), "namespace": namespace}
    metadata["labels"] = labels
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


class NoTemplate(Exception):
    """No ingest CronJob to copy, or more than one where one is needed (exit 2)."""


def find_cronjob(batch: Any, namespace: str, release: str, name: str | None = None) -> Manifest:
    """The release's ingest CronJob: ``name`` when given, else the one CronJob in ``namespace``
    that the chart labelled as the ingest of ``release``."""
    if name:
        found = [batch.read_namespaced_cron_job(name, namespace)]
    else:
        selector = f"{RELEASE_LABEL}={release},{COMPONENT_LABEL}"
        found = batch.list_namespaced_cron_job(namespace, label_selector=selector).items
    cronjobs: list[Manifest] = [batch.api_client.sanitize_for_serialization(c) for c in found]
    return _the_one(
        cronjobs,
        f"release {release!r} in namespace {namespace!r}",
        "is the release installed there (helm list -A)? Else name it with --cronjob",
    )


def template_from_text(text: str, release: str | None = None) -> Manifest:
    """The ingest CronJob among YAML or JSON documents (``helm template`` output, or a
    CronJob saved with ``kubectl get -o yaml``), of ``release`` when given."""
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise NoTemplate(f"the template is not YAML: {exc}") from None
    cronjobs = [
        d
        for d in documents
        if d.get("kind") == "CronJob"
        and _label(d, "app.kubernetes.io/component") == "ingest"
        and (release is None or _label(d, RELEASE_LABEL) == release)
    ]
    return _the_one(
        cronjobs,
        f"release {release!r} in the template" if release else "the template",
        "render the chart's templates/ingest-cronjob.yaml (helm template RELEASE CHART -s "
        "templates/ingest-cronjob.yaml), with --release RELEASE",
    )


def _label(manifest: Manifest, key: str) -> str | None:
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    value = labels.get(key)
    return str(value) if value is not None else None


def _the_one(cronjobs: list[Manifest], where: str, hint: str) -> Manifest:
    if not cronjobs:
        raise NoTemplate(
            f"no ingest CronJob of {where} (labels {RELEASE_LABEL}, {COMPONENT_LABEL}): {hint}"
        )
    if len(cronjobs) > 1:
        names = ", ".join(sorted(c["metadata"]["name"] for c in cronjobs))
        raise NoTemplate(f"more than one ingest CronJob for {where} ({names}): pass --cronjob")
    return cronjobs[0]


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
                    print(f"ops submit: pod {pod.metadata.name}: {reason}", file=sys.stderr)
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
    print(f"ops submit: timed out after {timeout:.0f}s; job/{name} goes on", file=sys.stderr)
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
  python -m ops submit https://host/export.csv.gz --series load -- --label end
  python -m ops submit /srv/ingest/data/day-0.csv --release prod -n grid -- --label end
  python -m ops submit https://host/enduse.tsv --series enduse -- --label end --step 15m
  python -m ops submit '/srv/ingest/data/day-$(JOB_INDEX).csv' --completions 7 -- --label end
  python -m ops submit /srv/ingest/data/wide.csv --shards 4 -- --label end   # 4 pods, 1 file
  python -m ops submit a.csv --dry-run -- --label end    # print the Job, create nothing
  helm template gridts charts/gridts -s templates/ingest-cronjob.yaml |
    python -m ops submit a.csv --template - --dry-run -- --label end    # no cluster at all

--shards N: an Indexed Job of N pods that load the same wide file(s) between them, pod K
the value columns j with j mod N == K (`ingest load --shard '$(JOB_INDEX)/N'`; rejected rows
are listed in pod 0's log).

Arguments after `--` go to `ingest load` unchanged (`-- --label end --existing refuse`: exit 2,
nothing written, if a stored value would change). The Job is a copy of the release's ingest
CronJob (what `kubectl create job --from=cronjob/<release>-ingest` makes; found by the labels
app.kubernetes.io/instance=<release> and app.kubernetes.io/component=ingest), so it runs with
the release's image, token, volumes and limits. A token that may only write loads with a
warning and no count of stored points (`ingest load --help`, --existing).
"""


def build_parser() -> argparse.ArgumentParser:
    """Long: one declaration per option; nothing else happens here."""
    parser = argparse.ArgumentParser(
        prog="python -m ops submit",
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
    parser.add_argument(
        "--cronjob", help="CronJob to copy (default: the release's ingest CronJob, by its labels)"
    )
    parser.add_argument(
        "--template",
        metavar="FILE",
        help="take the CronJob from this YAML file (- for stdin: helm template output) instead "
        "of the cluster",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--name", help="Job name (default ingest-<unix time>)")
    parser.add_argument("--image", help="override the template's image")
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
        help="print the Job as JSON instead of creating it (with --template: touch no cluster)",
    )
    parser.add_argument("--no-wait", action="store_true", help="create the Job and return")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to follow (default 3600)"
    )
    return parser


def _template(args: argparse.Namespace) -> Manifest:
    """The CronJob to copy: from --template, else from the cluster. NoTemplate, OSError or the
    client's errors when there is none to be had."""
    if args.template:
        text = sys.stdin.read() if args.template == "-" else Path(args.template).read_text()
        return template_from_text(text, None if args.cronjob else args.release)
    batch, _ = _clients(args.context)
    return find_cronjob(batch, args.namespace, args.release, args.cronjob)


def main(argv: list[str]) -> int:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help exits 0, a usage error 2
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        cronjob = _template(args)
    except (NoTemplate, OSError) as exc:
        print(f"ops submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the cluster: unreachable, refused, no such CronJob
        print(f"ops submit: cannot read the CronJob: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        job = build_job(
            cronjob,
            namespace=args.namespace,
            sources=args.sources,
            series=args.series,
            extra_args=extra,
            image=args.image,
            name=args.name,
            completions=args.completions,
            parallelism=args.parallelism,
            shards=args.shards,
        )
    except ValueError as exc:
        print(f"ops submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        print(json.dumps(job, indent=2))
        return EXIT_OK
    try:
        return submit(job, context=args.context, wait=not args.no_wait, timeout=args.timeout)
    except Exception as exc:
        print(f"ops submit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
