"""Build and cache what the local test cluster runs: Kubernetes, CoreDNS and a pause binary.

Kubernetes comes from the `k8s.io/kubernetes` Go module, CoreDNS from `github.com/coredns/coredns`,
the pause binary from the C source inside the Kubernetes module. Each lands in a per-version folder
of the gridts cache (next to the influxd build), built once under a file lock with progress lines.

Standard library only: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from influxdb_local import _lock, _run_logged, cache_dir

# Stay on 1.34 while the runtime is Debian's containerd 1.6 on cgroup v1 (kubelet >= 1.35 refuses
# cgroup v1 unless failCgroupV1 is false); see adr/0011.
K8S_VERSION = os.environ.get("GRIDTS_K8S_VERSION", "v1.34.4")
COREDNS_VERSION = os.environ.get("GRIDTS_COREDNS_VERSION", "v1.12.4")
K8S_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
    "kube-proxy",
)


def log(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "auto")
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-mod=mod -buildvcs=false -trimpath"
    return env


def _module_dir(module: str, version: str, env: dict[str, str]) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    info = json.loads(out or "{}")
    if info.get("Error") or not info.get("Dir"):
        raise SystemExit(f"go mod download {module}@{version} failed: {info.get('Error', out)}")
    return Path(info["Dir"])


def _writable_copy(src: Path, dst: Path) -> None:
    """The module cache is read-only; builds that edit go.mod need their own copy."""
    shutil.copytree(src, dst, symlinks=True)
    for p in [dst, *dst.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)


def _published_staging(gomod: str, version: str) -> str:
    """Point every `./staging/src/k8s.io/X` replace at the published `k8s.io/X v0.<minor>.<patch>`.

    The module as served still carries its monorepo replaces; the staging folders are published as
    their own modules with the same code, versioned v0.34.4 for Kubernetes v1.34.4.
    """
    staging = "v0." + version.removeprefix("v").split(".", 1)[1]
    return re.sub(
        r"(?m)^(\s*)(k8s\.io/[\w.-]+) => \./staging/src/k8s\.io/[\w.-]+\s*$",
        lambda m: f"{m.group(1)}{m.group(2)} => {m.group(2)} {staging}",
        gomod,
    )


def kubernetes_dir() -> Path:
    return cache_dir() / f"kubernetes-{K8S_VERSION}"


def build_kubernetes() -> Path:
    """kube-apiserver, controller-manager, scheduler, kubelet, kubectl, kube-proxy and pause."""
    target = kubernetes_dir()
    wanted = [target / c for c in (*K8S_COMMANDS, "pause")]
    if all(p.exists() for p in wanted):
        return target
    with _lock(cache_dir() / f"kubernetes-{K8S_VERSION}.lock"):
        if all(p.exists() for p in wanted):
            return target
        for tool in ("go", "gcc"):
            if not shutil.which(tool):
                raise SystemExit(f"building Kubernetes needs `{tool}` on PATH")
        log(
            f"building Kubernetes {K8S_VERSION} from its Go module (one time: about 6 minutes "
            "on 2 free cores, 2 GB of memory; later runs reuse it)"
        )
        target.mkdir(parents=True, exist_ok=True)
        logfile = target / "build.log"
        logfile.write_text("")
        env = _go_env()
        log("1/3 downloading the k8s.io/kubernetes module")
        module = _module_dir("k8s.io/kubernetes", K8S_VERSION, env)
        with tempfile.TemporaryDirectory(prefix="k8s-build-", dir=target) as work:
            src = Path(work) / "src"
            _writable_copy(module, src)
            # The workspace and the vendor folder (an OWNERS file only) would force their modes.
            for name in ("go.work", "go.work.sum"):
                (src / name).unlink(missing_ok=True)
            shutil.rmtree(src / "vendor", ignore_errors=True)
            gomod = src / "go.mod"
            gomod.write_text(_published_staging(gomod.read_text(), K8S_VERSION))
            major, minor = K8S_VERSION.removeprefix("v").split(".")[:2]
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ldflags = ["-s", "-w"]
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
                ldflags += [
                    f"-X {pkg}.gitVersion={K8S_VERSION}",
                    f"-X {pkg}.gitMajor={major}",
                    f"-X {pkg}.gitMinor={minor}",
                    f"-X {pkg}.gitTreeState=clean",
                    f"-X {pkg}.buildDate={stamp}",
                ]
            out = Path(work) / "bin"
            out.mkdir()
            log("2/3 building " + ", ".join(K8S_COMMANDS) + " (the long step)")
            _run_logged(
                [
                    "go",
                    "build",
                    "-ldflags",
                    " ".join(ldflags),
                    "-o",
                    f"{out}/",
                    *(f"./cmd/{c}" for c in K8S_COMMANDS),
                ],
                env,
                src,
                logfile,
                log,
            )
            log("3/3 compiling the pause binary (static C, from build/pause/linux/pause.c)")
            _run_logged(
                [
                    "gcc",
                    "-Os",
                    "-static",
                    "-Wall",
                    f"-DVERSION={K8S_VERSION}",
                    "-o",
                    str(out / "pause"),
                    str(src / "build/pause/linux/pause.c"),
                ],
                env,
                src,
                logfile,
                log,
            )
            for p in out.iterdir():
                os.replace(p, target / p.name)
        log(f"Kubernetes {K8S_VERSION} built into {target}")
        return target


METRICS_SERVER_VERSION = os.environ.get("GRIDTS_METRICS_SERVER_VERSION", "v0.8.0")
# The NetworkPolicy engine (its firewall only: pod networking stays the bridge CNI's, services
# kube-proxy's). A test-cluster tool, never shipped: v2.1.0 is what the module proxy serves.
KUBE_ROUTER_VERSION = os.environ.get("GRIDTS_KUBE_ROUTER_VERSION", "v2.1.0")
# name -> (module path of the command, version)
GO_PROGRAMS = {
    "coredns": ("github.com/coredns/coredns", COREDNS_VERSION),
    "metrics-server": ("sigs.k8s.io/metrics-server/cmd/metrics-server", METRICS_SERVER_VERSION),
    "kube-router": (
        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
        KUBE_ROUTER_VERSION,
    ),
}


def program_binary(name: str) -> Path:
    return cache_dir() / f"{name}-{GO_PROGRAMS[name][1]}" / name


def build_program(name: str) -> Path:
    """A cluster add-on's static binary, by `go install` of its module at the pinned version."""
    package, version = GO_PROGRAMS[name]
    target = program_binary(name)
    if target.exists():
        return target
    with _lock(cache_dir() / f"{name}-{version}.lock"):
        if target.exists():
            return target
        log(f"building {name} {version} from its Go module (one time, about 3 minutes)")
        target.parent.mkdir(parents=True, exist_ok=True)
        env = _go_env()
        with tempfile.TemporaryDirectory(prefix="gobin-", dir=target.parent) as gobin:
            env["GOBIN"] = gobin
            _run_logged(
                ["go", "install", "-ldflags=-s -w", f"{package}@{version}"],
                env,
                target.parent,
                target.parent / "build.log",
                log,
            )
            os.replace(Path(gobin) / name, target)
        log(f"{name} {version} built: {target}")
        return target


def build_all() -> None:
    build_kubernetes()
    for name in GO_PROGRAMS:
        build_program(name)
