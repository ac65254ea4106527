"""The chart's gateway (HAProxy, ADR 0020) in front of local API processes: the configuration
the chart renders, with its one change for loopback (the API pods found by DNS become the given
addresses), so that the load test and the tests run the very queue the chart deploys.

Needs `haproxy` (Debian's package: `scripts/install-test-packages` installs it), `helm` (the
gridts cache's, as the chart tests use it) and PyYAML (the project's virtualenv).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import influxdb_local as il

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "gridts"
CONFIG_DIR = "/usr/local/etc/haproxy/"  # where the chart mounts the ConfigMap


def helm() -> str:
    found = shutil.which("helm") or shutil.which("helm", path=str(il.cache_dir() / "bin"))
    if found is None:
        raise SystemExit("helm is not installed: run scripts/install-tools (make tools)")
    return found


def chart_files(values: dict[str, Any] | None = None) -> dict[str, str]:
    """The gateway ConfigMap's files (`haproxy.cfg`, `error-<status>.http`) as the chart
    renders them with ``values`` (JSON values, as `--set-json`)."""
    command = [helm(), "template", "gw", str(CHART), "--show-only",
               "templates/gateway-configmap.yaml"]  # fmt: skip
    for key, value in (values or {}).items():
        command += ["--set-json", f"{key}={json.dumps(value)}"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"helm template failed: {out.stderr.strip()}")
    data: dict[str, str] = yaml.safe_load(out.stdout)["data"]
    return data


_TEMPLATE = re.compile(r'^(\s*)server-template (\S+) \d+ "[^"]+" (.*)$', re.MULTILINE)
_DNS_ONLY = re.compile(r"\s*(resolvers \S+|resolve-prefer \S+|init-addr \S+)")


def for_loopback(
    files: dict[str, str], work: Path, port: int, stats_port: int, backends: Sequence[int]
) -> str:
    """The chart's `haproxy.cfg` on loopback: its frontends bound to ``port`` and
    ``stats_port``, its files read from ``work``, and its `server-template` (the API pods by
    DNS) made one `server` per port of ``backends`` with the same options."""
    cfg = files["haproxy.cfg"].replace(CONFIG_DIR, str(work) + "/")
    cfg, bound = re.subn(
        r"(frontend stats\n\s*)bind :\d+", rf"\g<1>bind 127.0.0.1:{stats_port}", cfg
    )
    cfg, api = re.subn(r"(frontend api\n\s*)bind :\d+", rf"\g<1>bind 127.0.0.1:{port}", cfg)
    found = _TEMPLATE.search(cfg)
    if (bound, api) != (1, 1) or found is None:
        raise RuntimeError(
            "the chart's haproxy.cfg no longer has the frontends and template this expects"
        )
    indent, name, options = found.groups()
    options = _DNS_ONLY.sub("", options)
    servers = "\n".join(
        f"{indent}server {name}{i} 127.0.0.1:{p} {options}" for i, p in enumerate(backends)
    )
    return cfg[: found.start()] + servers + cfg[found.end() :]


def error_pages(files: dict[str, str]) -> dict[int, str]:
    """The gateway's own answers (`error-<status>.http`), by status."""
    return {
        int(name[len("error-") : -len(".http")]): text
        for name, text in files.items()
        if name.startswith("error-") and name.endswith(".http")
    }


def write_error_pages(files: dict[str, str], work: Path) -> None:
    """The error pages into ``work``, where ``for_loopback``'s configuration reads them."""
    for status, text in error_pages(files).items():
        (work / f"error-{status}.http").write_text(text)


def binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
    )
    if found is None:
        raise SystemExit("haproxy is not installed: run scripts/install-test-packages (as root)")
    return found


def spawn(
    work: Path,
    port: int,
    backends: Sequence[int],
    *,
    values: dict[str, Any] | None = None,
    stats_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground with the chart's configuration (rendered with ``values``) in
    front of the API processes on loopback ports ``backends``; its files in ``work``. The
    configuration is checked first (`-c`): a bad one fails here with HAProxy's own message. Its
    log (what the chart's gateway prints to the pod's stdout) goes to ``work``/haproxy.log."""
    work.mkdir(parents=True, exist_ok=True)
    files = chart_files(values)
    write_error_pages(files, work)
    cfg = work / "haproxy.cfg"
    stats = stats_port if stats_port is not None else il.free_port()
    cfg.write_text(for_loopback(files, work, port, stats, backends))
    subprocess.run([binary(), "-c", "-q", "-f", str(cfg)], check=True)
    with (work / "haproxy.log").open("ab") as log:
        return subprocess.Popen(
            [binary(), "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
