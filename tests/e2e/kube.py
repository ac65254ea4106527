"""Small helpers of the end-to-end test: kubectl and helm as a user runs them, a steady client."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
CACHE_BIN = Path(os.environ.get("GRIDTS_CACHE", Path.home() / ".cache" / "gridts")) / "bin"


class CommandFailed(AssertionError):
    pass


def sh(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 900,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command the way the README does; on failure the exception carries its output."""
    print(f"$ {shlex.join(argv)}", flush=True)
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env=env,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{shlex.join(argv)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def kubectl(*args: str, **kw: Any) -> str:
    return sh(["kubectl", *args], **kw).stdout


def kjson(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def helm_binaries() -> list[str]:
    """Helm 3, and Helm 4 when `make setup` built it too."""
    found = ["helm"]
    if (CACHE_BIN / "helm4").exists():
        found.append("helm4")
    return found


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except (CommandFailed, httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def job_finished(namespace: str, name: str) -> str | None:
    """ "Complete", "Failed" or None while it runs."""
    status = kjson("-n", namespace, "get", "job", name).get("status", {})
    for cond in status.get("conditions", []):
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def wait_job(namespace: str, name: str, timeout: float = 600) -> None:
    result = wait_until(f"job {name}", lambda: job_finished(namespace, name), timeout, 2)
    if result != "Complete":
        logs = kubectl("-n", namespace, "logs", f"job/{name}", "--tail=60", check=False)
        raise AssertionError(f"job {name} {result}:\n{logs}")


def service_url(namespace: str, name: str) -> str:
    svc = kjson("-n", namespace, "get", "service", name)
    port = svc["spec"]["ports"][0]["port"]
    return f"http://{svc['spec']['clusterIP']}:{port}"


def diagnostics(namespace: str) -> str:
    """What a person debugging a failed step looks at first: pods, events, logs of the unwell
    and of the gateways."""
    parts = [
        kubectl("-n", namespace, "get", "all,pvc,secrets", "-o", "wide", check=False),
        kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False)[-8000:],
    ]
    try:
        pods = kjson("-n", namespace, "get", "pods")["items"]
    except (CommandFailed, json.JSONDecodeError):
        pods = []
    for pod in pods:
        statuses = pod.get("status", {}).get("containerStatuses", []) or []
        if pod["status"].get("phase") == "Succeeded" and all(
            s.get("state", {}).get("terminated", {}).get("exitCode") == 0 for s in statuses
        ):
            continue
        ready = statuses and all(s.get("ready") for s in statuses)
        name = pod["metadata"]["name"]
        labels = pod["metadata"].get("labels", {})
        well = ready and pod["status"].get("phase") == "Running"
        # the gateways, well or not: their log holds only what went wrong (failed requests,
        # API pods lost, down or up)
        gateway = labels.get("app.kubernetes.io/component") == "gateway"
        if well and not gateway:
            continue
        parts.append(f"--- logs of {name} ({pod['status'].get('phase')})")
        parts.append(
            kubectl("-n", namespace, "logs", name, "--all-containers", "--tail=80", check=False)
        )
        if not well:
            parts.append(kubectl("-n", namespace, "describe", "pod", name, check=False)[-3000:])
    return "\n".join(parts)


@dataclass
class SteadyClient:
    """Requests in a loop against a Service while something disruptive happens; every request
    must succeed with the expected body. Each request opens its own connection, as a load
    balancer's health-checked pool would, so a closed keep-alive socket is not counted."""

    url: str
    check: Callable[[httpx.Response], bool]
    interval: float = 0.05
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SteadyClient:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=limits) as client:
            while not self._stop.is_set():
                try:
                    resp = client.get(self.url)
                    if resp.status_code == 200 and self.check(resp):
                        self.ok += 1
                    else:
                        self.failures.append(f"{resp.status_code}: {resp.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(self.interval)
