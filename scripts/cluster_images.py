"""Images for the local test cluster, built without a Docker daemon and imported into containerd.

  base      Debian bookworm minbase with python3 (3.11), python3-venv, python3-pip and
            ca-certificates, made by mmdebstrap: it stands in for the official python:3.11-slim
            image, which no registry here serves. Cached by package list in the gridts cache.
  gridts    the repo's own Dockerfile, unchanged, built by `buildah bud` on that base
            (`--build-arg PYTHON_IMAGE=`); this machine's CA bundle is mounted into the build's
            RUN steps only (its network re-signs TLS), never into a layer.
  influxdb  the base plus the very `influxd` the test suite runs (scripts/influxdb_local).
  haproxy   the base plus Debian's haproxy package, laid out as the official haproxy image the
            chart's gateway defaults to: `haproxy` on PATH, user `haproxy` uid/gid 99, the
            configuration in /usr/local/etc/haproxy, stop signal SIGUSR1 (a soft stop).

Each is pushed to a docker-archive and imported with `ctr -n k8s.io images import`; pods run them
with imagePullPolicy Never.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import influxdb_local as il
from cluster_build import log
from cluster_local import STATE, import_image, run
from influxdb_local import _lock, cache_dir

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_IMAGE = "localhost/gridts-base:bookworm-python"
GRIDTS_IMAGE = "gridts.local/gridts"
INFLUXDB_IMAGE = "gridts.local/influxdb"
HAPROXY_IMAGE = "gridts.local/haproxy:e2e"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def base_rootfs() -> Path:
    key = hashlib.sha256("\n".join((SUITE, *BASE_PACKAGES, *MIRRORS)).encode()).hexdigest()[:12]
    target = cache_dir() / "images" / f"debian-{SUITE}-python-{key}.tar"
    if target.exists():
        return target
    with _lock(target.with_suffix(".lock")):
        if target.exists():
            return target
        log(f"making the Debian {SUITE} base with mmdebstrap (one time, about a minute)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp.tar")
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--quiet",
                f"--include={','.join(BASE_PACKAGES)}",
                # No apt lists or caches in the image.
                "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/*",
                SUITE,
                str(tmp),
                *MIRRORS,
            ]
        )
        os.replace(tmp, target)
        return target


def buildah(*args: str) -> str:
    return run(["buildah", *args]).stdout.strip()


def image_exists(name: str) -> bool:
    return run(["buildah", "inspect", "--type", "image", name], check=False).returncode == 0


def ensure_base() -> str:
    rootfs = base_rootfs()
    label = f"gridts.base={rootfs.name}"
    if image_exists(BASE_IMAGE):
        labels = buildah(
            "inspect",
            "--type",
            "image",
            "--format",
            "{{.ImageAnnotations}}{{.Docker.Config.Labels}}",
            BASE_IMAGE,
        )
        if rootfs.name in labels:
            return BASE_IMAGE
    ctr = buildah("from", "scratch")
    try:
        buildah("add", ctr, str(rootfs), "/")
        buildah(
            "config",
            "--label", label,
            "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env", "LANG=C.UTF-8",
            "--cmd", "python3",
            ctr,
        )  # fmt: skip
        buildah("commit", "--quiet", ctr, BASE_IMAGE)
    finally:
        run(["buildah", "rm", ctr], check=False)
    return BASE_IMAGE


def export_and_import(name: str) -> None:
    archive = STATE / "images" / (name.replace("/", "_").replace(":", "_") + ".tar")
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    buildah("push", "--quiet", name, f"docker-archive:{archive}:{name}")
    import_image(archive)
    archive.unlink()


def build_gridts(tags: list[str]) -> list[str]:
    """The repo's Dockerfile, as is, on the Debian base; tagged with every tag given."""
    base = ensure_base()
    names = [f"{GRIDTS_IMAGE}:{t}" for t in tags]
    log(f"building {names[0]} from the Dockerfile with buildah")
    start = time.monotonic()
    volumes = [f"--volume={HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"]
    if Path("/etc/pip.conf").exists():
        volumes.append("--volume=/etc/pip.conf:/etc/pip.conf:ro")
    proc = subprocess.run(
        [
            "buildah",
            "bud",
            "--quiet",
            "--layers",
            "--network=host",
            *volumes,
            f"--build-arg=PYTHON_IMAGE={base}",
            *(f"--tag={n}" for n in names),
            "--file",
            str(ROOT / "Dockerfile"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"buildah bud failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    log(f"built in {time.monotonic() - start:.0f}s")
    for name in names:
        export_and_import(name)
    return names


def image_on_base(
    name: str,
    script: str,
    config: list[str],
    *,
    copy: tuple[Path, str] | None = None,
    volumes: tuple[str, ...] = (),
) -> str:
    """The Debian base with ``copy`` (a file and where it goes, executable) added and
    ``script`` run in it, configured by ``config`` (`buildah config` arguments), committed as
    ``name`` and imported into containerd."""
    ctr = buildah("from", ensure_base())
    try:
        if copy is not None:
            buildah("copy", "--chmod", "0755", ctr, str(copy[0]), copy[1])
        # Host network: buildah's default CNI network would add a bridge and iptables chains
        # (cni-podman0, 10.88.0.0/16) to the machine.
        buildah("run", "--network=host", *volumes, ctr, "--", "sh", "-c", script)
        buildah("config", *config, ctr)
        buildah("commit", "--quiet", ctr, name)
    finally:
        run(["buildah", "rm", ctr], check=False)
    export_and_import(name)
    return name


def build_influxdb() -> str:
    version = il.INFLUXDB_VERSION.removeprefix("v")
    return image_on_base(
        f"{INFLUXDB_IMAGE}:{version}",
        "groupadd --system --gid 1000 influxdb && useradd --system --uid 1000 --gid 1000 "
        "--home-dir /var/lib/influxdb2 --no-create-home --shell /usr/sbin/nologin influxdb "
        "&& mkdir -p /var/lib/influxdb2 /etc/influxdb2 "
        "&& chown influxdb:influxdb /var/lib/influxdb2 /etc/influxdb2",
        [
            "--user", "1000:1000",
            "--port", "8086",
            "--entrypoint", '["/usr/local/bin/influxd"]',
            "--cmd", "",
            "--label", f"org.opencontainers.image.version={version}",
        ],
        copy=(il.ensure_binary(), "/usr/local/bin/influxd"),
    )  # fmt: skip


def build_haproxy() -> str:
    return image_on_base(
        HAPROXY_IMAGE,
        # no service started by the install (policy-rc.d), then the package's `haproxy` user
        # given uid/gid 99 as in the official image (its adduser refuses a user made beforehand
        # with a uid below the system range)
        "printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d "
        "&& chmod 0755 /usr/sbin/policy-rc.d "
        "&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "--no-install-recommends haproxy >/dev/null "
        "&& groupmod --gid 99 haproxy && usermod --uid 99 --gid 99 haproxy "
        "&& rm -rf /var/lib/apt/lists/* /var/cache/apt/* /etc/haproxy /usr/sbin/policy-rc.d "
        "&& mkdir -p /usr/local/etc/haproxy && haproxy -v",
        [
            "--user", "99:99",
            "--port", "8080",
            "--stop-signal", "SIGUSR1",
            "--entrypoint", "[]",
            "--cmd", '["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
        ],
        volumes=(f"--volume={HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro",),
    )  # fmt: skip


def main(tags: list[str]) -> None:
    for tool in ("buildah", "mmdebstrap", "skopeo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run `scripts/cluster up` first")
    build_gridts(tags)
    build_influxdb()
    build_haproxy()
