"""The pure parts of scripts/cluster; the cluster itself is exercised by `make e2e`."""

from __future__ import annotations

import socket
import subprocess
import sys

import cluster_build
import cluster_local
from tests.conftest import ROOT

GO_MOD = """module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tsigs.k8s.io/yaml v1.4.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-client => ./staging/src/k8s.io/cri-client
)
"""


def test_staging_replaces_point_at_the_published_modules() -> None:
    out = cluster_build._published_staging(GO_MOD, "v1.34.4")
    assert "./staging" not in out
    assert "\tk8s.io/api => k8s.io/api v0.34.4\n" in out
    assert "\tk8s.io/client-go => k8s.io/client-go v0.34.4\n" in out
    assert "\tk8s.io/cri-client => k8s.io/cri-client v0.34.4\n" in out
    # Everything else is left as it was.
    assert out.split("replace (")[0] == GO_MOD.split("replace (")[0]
    assert cluster_build._published_staging(GO_MOD, "v1.35.0").count("v0.35.0") == 3


def test_service_traffic_that_kube_proxy_did_not_translate_is_refused() -> None:
    rules = cluster_local.iptables_rules()
    rejects = [r for r in rules if "REJECT" in r]
    assert len(rejects) == 2
    for rule in rejects:
        assert rule[:2] == ["-d", cluster_local.SERVICE_CIDR]
        # Only connections kube-proxy did not DNAT: real services still work.
        assert rule[rule.index("--ctstate") - 1 : rule.index("--ctstate") + 2] == [
            "!",
            "--ctstate",
            "DNAT",
        ]
    assert rejects[0][-6:] == ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]


def test_port_check_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert cluster_local.port_taken(s.getsockname()[1])
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert not cluster_local.port_taken(port)


def test_cluster_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cluster"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("up", "down", "status", "env", "build", "images", "recycle-volumes"):
        assert f"\n  {command} " in out or f"|{command}|" in out or f"|{command}\n" in out, command
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cluster"), "bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2


def test_down_removes_chains_whose_jumps_carry_quoted_comments() -> None:
    """kube-router's jumps carry comments with spaces (`--comment "kube-router netpol - X"`);
    `down` once left its chains behind because it split those rules on whitespace."""
    parent, chain = "gridts-test-parent", "GRIDTSTEST-NETPOL"
    ipt = ["iptables", "-w"]
    subprocess.run([*ipt, "-N", parent], check=True)
    try:
        subprocess.run([*ipt, "-N", chain], check=True)
        subprocess.run([*ipt, "-A", chain, "-j", "RETURN"], check=True)
        subprocess.run(
            [*ipt, "-A", parent, "-m", "comment", "--comment", "kube-router netpol - ABC",
             "-j", chain],
            check=True,
        )  # fmt: skip
        cluster_local._remove_chains("iptables", ("GRIDTSTEST-",))
        listing = subprocess.run([*ipt, "-S"], capture_output=True, text=True, check=True).stdout
        assert chain not in listing
    finally:
        subprocess.run([*ipt, "-F", parent], check=False)
        subprocess.run([*ipt, "-X", parent], check=False)
        subprocess.run([*ipt, "-F", chain], check=False)
        subprocess.run([*ipt, "-X", chain], check=False)
