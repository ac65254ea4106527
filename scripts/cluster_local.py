"""A real one-node Kubernetes on this machine, for the end-to-end test: up, down, status, env.

Everything runs as plain host processes started here, with their PIDs, logs, PKI, configuration
and data under one state folder (default /var/lib/gridts-cluster):

  etcd -> kube-apiserver -> controller-manager, scheduler -> containerd -> kubelet, kube-proxy
  then in the cluster: CoreDNS (a pod, from an image made of its static binary), a local
  StorageClass with pre-created PersistentVolumes.

The node's address is the bridge's own (10.244.0.1 on `gridts0`), so nothing depends on the host's
network. `down` stops every process by PID (and what runs in the pods' cgroups), unmounts, deletes
the bridge, the iptables chains and the state folder, and restores the sysctls it changed; `up`
first does the same for whatever an earlier, killed run left behind.

Standard library only: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import cluster_build as build
from cluster_build import log

STATE = Path(os.environ.get("GRIDTS_CLUSTER_DIR", "/var/lib/gridts-cluster"))
NODE = "gridts-node"
BRIDGE = "gridts0"
NODE_IP = "10.244.0.1"
# Not 10.88.0.0/16: podman's and buildah's default CNI network takes that one.
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
CHAIN = "GRIDTS-CLUSTER"
ETCD_PORTS = (12379, 12380)
API_PORT = 6443
# Ports the components listen on (apiserver, kubelet, controller-manager, scheduler, kube-proxy).
# Ports the components listen on (apiserver, kubelet, controller-manager, scheduler, kube-proxy,
# kube-router's health port).
PORTS = (*ETCD_PORTS, API_PORT, 10248, 10250, 10257, 10259, 10249, 10256, 20244)
PAUSE_IMAGE = "registry.k8s.io/pause:3.6"  # containerd 1.6's sandbox image
COREDNS_IMAGE = f"gridts.local/coredns:{build.COREDNS_VERSION}"
METRICS_SERVER_IMAGE = f"gridts.local/metrics-server:{build.METRICS_SERVER_VERSION}"
PV_COUNT = 12
PV_SIZE = "20Gi"
DEBIAN_PACKAGES = {
    # command -> Debian package
    "etcd": "etcd-server",
    "containerd": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "socat": "socat",
    "openssl": "openssl",
    "mmdebstrap": "mmdebstrap",
    "umoci": "umoci",
    "skopeo": "skopeo",
    "buildah": "buildah",
    "ipset": "ipset",
}
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}
# Started in this order; stopped in the reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "kube-router",
)


def kubeconfig() -> Path:
    return STATE / "admin.kubeconfig"


def bin_dir() -> Path:
    return build.kubernetes_dir()


def containerd_socket() -> Path:
    return STATE / "containerd" / "containerd.sock"


# ---- small helpers --------------------------------------------------------------------------


def run(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc  # type: ignore[no-any-return]


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def ensure_packages() -> None:
    missing = sorted(
        {
            pkg
            for cmd, pkg in DEBIAN_PACKAGES.items()
            if not (Path(cmd).exists() if cmd.startswith("/") else shutil.which(cmd))
        }
    )
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise SystemExit(f"missing Debian packages {missing} and no apt-get to install them")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
    # Debian's containerd package may start a daemon of its own where an init system runs it;
    # this cluster runs its own containerd with its own socket and state, so that one is harmless.


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - a probe, closed at once
        except OSError:
            return True
    return False


def pid_of(name: str) -> int | None:
    try:
        pid = int((STATE / "pids" / f"{name}.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def spawn(name: str, argv: list[str]) -> None:
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    (STATE / "pids").mkdir(parents=True, exist_ok=True)
    with open(STATE / "logs" / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this script; stopped by `down` through its PID
            cwd=STATE,
        )
    (STATE / "pids" / f"{name}.pid").write_text(str(proc.pid))
    time.sleep(0.3)
    if proc.poll() is not None:
        raise SystemExit(f"{name} exited at once ({proc.returncode}):\n{tail_log(name)}")


def tail_log(name: str, lines: int = 30) -> str:
    path = STATE / "logs" / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, check: object, timeout: float, component: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        if component and pid_of(component) is None:
            raise SystemExit(f"{component} died while waiting for {what}:\n{tail_log(component)}")
        time.sleep(0.5)
    detail = f"\n{tail_log(component)}" if component else ""
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what} ({last}){detail}")


# ---- PKI and configuration --------------------------------------------------------------------


def openssl(*args: str) -> None:
    run(["openssl", *args])


def make_pki() -> None:
    pki = STATE / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    openssl("genrsa", "-out", f"{pki}/ca.key", "2048")
    openssl(
        "req", "-x509", "-new", "-key", f"{pki}/ca.key", "-subj", "/CN=gridts-test-ca",
        "-days", "30", "-out", f"{pki}/ca.crt",
    )  # fmt: skip
    sans = ",".join(
        [
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
            "DNS:localhost",
            f"DNS:{NODE}",
            "IP:127.0.0.1",
            f"IP:{NODE_IP}",
            f"IP:{API_SERVICE_IP}",
        ]
    )
    certs = {
        "apiserver": ("/CN=kube-apiserver", sans, "serverAuth"),
        "admin": ("/O=system:masters/CN=gridts-admin", None, "clientAuth"),
        "apiserver-kubelet-client": (
            "/O=system:masters/CN=kube-apiserver-kubelet",
            None,
            "clientAuth",
        ),
        "controller-manager": ("/CN=system:kube-controller-manager", None, "clientAuth"),
        "scheduler": ("/CN=system:kube-scheduler", None, "clientAuth"),
        "kubelet": (f"/O=system:nodes/CN=system:node:{NODE}", None, "clientAuth"),
        "kube-proxy": ("/CN=system:kube-proxy", None, "clientAuth"),
        # The aggregation layer (metrics-server): the apiserver's client certificate towards
        # extension apiservers, signed by the same CA for simplicity.
        "front-proxy-client": ("/CN=front-proxy-client", None, "clientAuth"),
    }  # fmt: skip
    for name, (subject, alt, usage) in certs.items():
        ext = pki / f"{name}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n" + (f"subjectAltName={alt}\n" if alt else "")
        )
        openssl("genrsa", "-out", f"{pki}/{name}.key", "2048")
        openssl(
            "req",
            "-new",
            "-key",
            f"{pki}/{name}.key",
            "-subj",
            subject,
            "-out",
            f"{pki}/{name}.csr",
        )
        openssl(
            "x509", "-req", "-in", f"{pki}/{name}.csr", "-CA", f"{pki}/ca.crt",
            "-CAkey", f"{pki}/ca.key", "-CAcreateserial", "-days", "30",
            "-extfile", str(ext), "-out", f"{pki}/{name}.crt",
        )  # fmt: skip
    openssl("genrsa", "-out", f"{pki}/sa.key", "2048")
    openssl("rsa", "-in", f"{pki}/sa.key", "-pubout", "-out", f"{pki}/sa.pub")
    for p in pki.iterdir():
        p.chmod(0o600)


def write_kubeconfig(path: Path, user: str, server: str = f"https://127.0.0.1:{API_PORT}") -> None:
    pki = STATE / "pki"

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "gridts",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki / f"{user}.crt"),
                    "client-key-data": b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "gridts", "context": {"cluster": "gridts", "user": user}}],
        "current-context": "gridts",
    }
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)


def write_configs() -> None:
    for user in ("admin", "controller-manager", "scheduler", "kubelet", "kube-proxy"):
        write_kubeconfig(STATE / f"{user}.kubeconfig", user)
    cni = STATE / "cni" / "net.d"
    cni.mkdir(parents=True, exist_ok=True)
    (cni / "10-gridts.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "gridts",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(STATE / "cni" / "ipam"),
                            "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    }
                ],
            },
            indent=1,
        )
    )
    cd = STATE / "containerd"
    cd.mkdir(parents=True, exist_ok=True)
    (cd / "config.toml").write_text(
        f"""version = 2
root = "{cd}/root"
state = "{cd}/state"
[grpc]
  address = "{containerd_socket()}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{cd}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM takes CAP_SYS_RESOURCE from every process: a sandbox's oom_score_adj of -998 would
  # fail with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{cd}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"""
    )
    kubelet = STATE / "kubelet"
    kubelet.mkdir(parents=True, exist_ok=True)
    (kubelet / "config.json").write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(STATE / "pki" / "ca.crt")},
                },
                "authorization": {"mode": "Webhook"},
                "cgroupDriver": "cgroupfs",
                "failSwapOn": False,
                "failCgroupV1": False,
                "clusterDNS": [DNS_IP],
                "clusterDomain": "cluster.local",
                "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
                "podLogsDir": str(STATE / "pod-logs"),
                "resolvConf": str(STATE / "resolv.conf"),
                "serializeImagePulls": False,
                # Test images are imported, never pulled: keep them whatever the disk says.
                "imageGCHighThresholdPercent": 100,
                "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%"},
                "maxPods": 60,
                "address": NODE_IP,
                "healthzBindAddress": "127.0.0.1",
                "protectKernelDefaults": False,
                "rotateCertificates": False,
                "serverTLSBootstrap": False,
            },
            indent=1,
        )
    )
    # Pods resolve cluster names only: the host's resolver is of no use inside this network.
    (STATE / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (STATE / "kube-proxy.json").write_text(
        json.dumps(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "iptables",
                "clusterCIDR": POD_CIDR,
                "clientConnection": {"kubeconfig": str(STATE / "kube-proxy.kubeconfig")},
                "hostnameOverride": NODE,
                "bindAddress": NODE_IP,
                "healthzBindAddress": "127.0.0.1:10256",
                "metricsBindAddress": "127.0.0.1:10249",
                # Leave the machine's conntrack limits alone.
                "conntrack": {"maxPerCore": 0},
            },
            indent=1,
        )
    )


# ---- host network -----------------------------------------------------------------------------


def read_sysctl(key: str) -> str | None:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError:
        return None


def set_sysctls() -> None:
    saved = STATE / "sysctls.json"
    before = {k: read_sysctl(k) for k in SYSCTLS}
    saved.write_text(json.dumps(before))
    for key, value in SYSCTLS.items():
        if before[key] is None:
            raise SystemExit(f"/proc/sys/{key} is missing: this kernel lacks what the CNI needs")
        Path("/proc/sys", key).write_text(value)


def restore_sysctls() -> None:
    saved = STATE / "sysctls.json"
    if not saved.exists():
        return
    for key, value in json.loads(saved.read_text()).items():
        if value is not None:
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value)


def check_routes() -> None:
    """Refuse to start when another interface already routes the pod range (the bridge would
    get it too, and traffic would go to whichever route the kernel picks)."""
    prefix = POD_CIDR.split("/")[0].rsplit(".", 2)[0] + "."
    for line in run(["ip", "-4", "route", "show"]).stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith(prefix) and "dev" in parts:
            dev = parts[parts.index("dev") + 1]
            if dev != BRIDGE:
                raise SystemExit(
                    f"{dev} already routes {parts[0]}, which overlaps the cluster's pod range "
                    f"{POD_CIDR}: remove it (ip link delete {dev}) or set another range"
                )


def make_bridge() -> None:
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{NODE_IP}/16", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def iptables_rules() -> list[list[str]]:
    """A real cluster refuses connections to a service address that kube-proxy has not (yet)
    translated; this machine's network would answer them with an HTTP 404 instead. Reject them.
    Pod traffic itself is accepted in case the host's FORWARD policy drops."""
    not_translated = ["-d", SERVICE_CIDR, "-m", "conntrack", "!", "--ctstate", "DNAT"]
    return [
        [*not_translated, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        [*not_translated, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"],
        ["-s", POD_CIDR, "-j", "RETURN"],
    ]


def add_iptables() -> None:
    run(["iptables", "-w", "-N", CHAIN])
    for rule in iptables_rules():
        run(["iptables", "-w", "-A", CHAIN, *rule])
    for hook in ("FORWARD", "OUTPUT"):
        run(["iptables", "-w", "-I", hook, "1", "-j", CHAIN])
    run(["iptables", "-w", "-I", "FORWARD", "2", "-s", POD_CIDR, "-j", "ACCEPT"])
    run(["iptables", "-w", "-I", "FORWARD", "3", "-d", POD_CIDR, "-j", "ACCEPT"])


def _remove_chains(binary: str, prefixes: tuple[str, ...]) -> None:
    """Delete every chain whose name starts with one of ``prefixes`` from each table, with the
    rules elsewhere that jump to them. kube-proxy --cleanup removes its own chains, but not the
    kubelet's (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) nor those of a killed
    kube-proxy of another mode."""
    if not shutil.which(binary):
        return
    for table in ("filter", "nat", "mangle", "raw"):
        listing = run([binary, "-w", "-t", table, "-S"], check=False).stdout.splitlines()
        chains = [line.split()[1] for line in listing if line.startswith("-N ")]
        ours = [c for c in chains if c.startswith(prefixes)]
        if not ours:
            continue
        for line in listing:
            parts = shlex.split(line)  # comments are quoted and hold spaces
            if (
                parts[0] == "-A"
                and not parts[1].startswith(prefixes)
                and ("-j" in parts and parts[parts.index("-j") + 1].startswith(prefixes))
            ):
                run([binary, "-w", "-t", table, "-D", *parts[1:]], check=False)
        for chain in ours:
            run([binary, "-w", "-t", table, "-F", chain], check=False)
        for chain in ours:
            run([binary, "-w", "-t", table, "-X", chain], check=False)


def remove_iptables() -> None:
    for hook, rule in (
        ("FORWARD", ["-j", CHAIN]),
        ("OUTPUT", ["-j", CHAIN]),
        ("FORWARD", ["-s", POD_CIDR, "-j", "ACCEPT"]),
        ("FORWARD", ["-d", POD_CIDR, "-j", "ACCEPT"]),
    ):
        while run(["iptables", "-w", "-D", hook, *rule], check=False).returncode == 0:
            pass
    run(["iptables", "-w", "-F", CHAIN], check=False)
    run(["iptables", "-w", "-X", CHAIN], check=False)
    proxy = bin_dir() / "kube-proxy"
    if proxy.exists():
        # Removes every KUBE-* chain and rule kube-proxy made (iptables and nftables modes).
        run([str(proxy), "--cleanup"], check=False)
    for binary in ("iptables", "ip6tables"):
        _remove_chains(binary, ("KUBE-", CHAIN))


# ---- processes --------------------------------------------------------------------------------


def start_control_plane() -> None:
    pki = STATE / "pki"
    b = bin_dir()
    spawn(
        "etcd",
        [
            "etcd",
            "--name=gridts",
            f"--data-dir={STATE / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_PORTS[0]}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORTS[0]}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORTS[1]}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORTS[1]}",
            f"--initial-cluster=gridts=http://127.0.0.1:{ETCD_PORTS[1]}",
            "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
        ],
    )
    wait_for("etcd", lambda: http_ok(f"http://127.0.0.1:{ETCD_PORTS[0]}/health"), 60, "etcd")
    spawn(
        "kube-apiserver",
        [
            str(b / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORTS[0]}",
            f"--advertise-address={NODE_IP}",
            "--bind-address=0.0.0.0",
            f"--secure-port={API_PORT}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--enable-aggregator-routing=true",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
        ],
    )
    wait_for("kube-apiserver /readyz", lambda: api_ready(), 120, "kube-apiserver")
    spawn(
        "kube-controller-manager",
        [
            str(b / "kube-controller-manager"),
            f"--kubeconfig={STATE / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={STATE / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={STATE / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={POD_CIDR}",
            "--node-cidr-mask-size=16",
            "--controllers=*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
        ],
    )
    spawn(
        "kube-scheduler",
        [
            str(b / "kube-scheduler"),
            f"--kubeconfig={STATE / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={STATE / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={STATE / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ],
    )


def start_node() -> None:
    spawn("containerd", ["containerd", "--config", str(STATE / "containerd" / "config.toml")])
    wait_for("containerd", lambda: ctr("version").returncode == 0, 60, "containerd")
    import_pause_image()
    spawn(
        "kubelet",
        [
            str(bin_dir() / "kubelet"),
            f"--config={STATE / 'kubelet' / 'config.json'}",
            f"--kubeconfig={STATE / 'kubelet.kubeconfig'}",
            f"--root-dir={STATE / 'kubelet'}",
            f"--cert-dir={STATE / 'kubelet' / 'pki'}",
            f"--hostname-override={NODE}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ],
    )
    spawn(
        "kube-proxy",
        [str(bin_dir() / "kube-proxy"), f"--config={STATE / 'kube-proxy.json'}"],
    )


def start_policy_engine() -> None:
    """NetworkPolicy enforcement (iptables and ipsets on the pods' traffic through the bridge).
    Only once the node is registered: kube-router exits when it cannot find its Node."""
    spawn(
        "kube-router",
        [
            str(build.program_binary("kube-router")),
            f"--kubeconfig={STATE / 'admin.kubeconfig'}",
            f"--hostname-override={NODE}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--run-loadbalancer=false",
        ],
    )


def ctr(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["ctr", "--address", str(containerd_socket()), "-n", "k8s.io", *args], check=False)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback only
        return bool(resp.status == 200)


def api_ready() -> bool:
    pki = STATE / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(
        f"https://127.0.0.1:{API_PORT}/readyz", timeout=3, context=ctx
    ) as resp:
        return bool(resp.status == 200)


# ---- images -----------------------------------------------------------------------------------


def oci_image_from_binary(binary: Path, name: str, entrypoint: list[str], out: Path) -> None:
    """A one-file image (a static binary, root-owned, numeric non-root user) as a docker-archive."""
    with tempfile.TemporaryDirectory(prefix="img-", dir=STATE) as work:
        layout = f"{work}/oci"
        run(["umoci", "init", "--layout", layout])
        run(["umoci", "new", "--image", f"{layout}:img"])
        bundle = f"{work}/bundle"
        run(["umoci", "unpack", "--image", f"{layout}:img", bundle])
        dest = Path(bundle) / "rootfs" / Path(entrypoint[0]).relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, dest)
        dest.chmod(0o755)
        run(["umoci", "repack", "--image", f"{layout}:img", bundle])
        run(
            [
                "umoci", "config", "--image", f"{layout}:img", "--config.user", "65532:65532",
                *(f"--config.entrypoint={part}" for part in entrypoint),
            ]
        )  # fmt: skip
        out.unlink(missing_ok=True)
        run(["skopeo", "copy", "--quiet", f"oci:{layout}:img", f"docker-archive:{out}:{name}"])


def import_image(archive: Path) -> None:
    proc = ctr("images", "import", "--no-unpack", str(archive))
    if proc.returncode != 0:
        raise SystemExit(f"ctr images import {archive} failed: {proc.stderr.strip()}")


def import_pause_image() -> None:
    archive = STATE / "images" / "pause.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    oci_image_from_binary(bin_dir() / "pause", PAUSE_IMAGE, ["/pause"], archive)
    import_image(archive)


def import_addon_images() -> None:
    images = STATE / "images"
    images.mkdir(parents=True, exist_ok=True)
    oci_image_from_binary(
        build.program_binary("coredns"),
        COREDNS_IMAGE,
        ["/coredns", "-conf", "/etc/coredns/Corefile"],
        images / "coredns.tar",
    )
    import_image(images / "coredns.tar")
    oci_image_from_binary(
        build.program_binary("metrics-server"),
        METRICS_SERVER_IMAGE,
        ["/metrics-server"],
        images / "metrics-server.tar",
    )
    import_image(images / "metrics-server.tar")


# ---- in-cluster add-ons -----------------------------------------------------------------------


def addons_manifest() -> str:
    docs: list[dict[str, object]] = []
    labels = {"k8s-app": "kube-dns"}
    docs += [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {
                "Corefile": (
                    ".:1053 {\n    errors\n    health :8080\n    ready :8181\n"
                    "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                    "        pods insecure\n        ttl 5\n    }\n    cache 5\n}\n"
                )
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "ports": [
                                    # Unprivileged port: the pod runs as non-root, no caps.
                                    {"containerPort": 1053, "protocol": "UDP", "name": "dns"},
                                    {"containerPort": 1053, "protocol": "TCP", "name": "dns-tcp"},
                                ],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "local",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain",
        },
    ]
    return "\n---\n".join(json.dumps(d) for d in docs)


def metrics_server_manifest() -> str:
    """metrics-server: the resource metrics API the API's HorizontalPodAutoscaler reads."""
    ns = "kube-system"
    labels = {"k8s-app": "metrics-server"}
    sa = {"kind": "ServiceAccount", "name": "metrics-server", "namespace": ns}
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "metrics-server", "namespace": ns},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "system:aggregated-metrics-reader",
                "labels": {
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    "rbac.authorization.k8s.io/aggregate-to-view": "true",
                },
            },
            "rules": [
                {
                    "apiGroups": ["metrics.k8s.io"],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:metrics-server"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {
                    "apiGroups": [""],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:metrics-server"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:metrics-server",
            },
            "subjects": [sa],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metrics-server:system:auth-delegator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [sa],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "metrics-server-auth-reader", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": [sa],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "metrics-server", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "metrics-server",
                        "containers": [
                            {
                                "name": "metrics-server",
                                "image": METRICS_SERVER_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": [
                                    "--cert-dir=/tmp",
                                    "--secure-port=10250",
                                    "--kubelet-preferred-address-types=InternalIP",
                                    "--kubelet-use-node-status-port",
                                    # The kubelet's serving certificate is self-signed here.
                                    "--kubelet-insecure-tls",
                                    "--metric-resolution=15s",
                                ],
                                "ports": [{"containerPort": 10250, "name": "https"}],
                                "readinessProbe": {
                                    "httpGet": {
                                        "path": "/readyz",
                                        "port": "https",
                                        "scheme": "HTTPS",
                                    },
                                    "periodSeconds": 5,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "metrics-server", "namespace": ns, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "https", "port": 443, "targetPort": "https"}],
            },
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": "metrics-server", "namespace": ns},
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]
    return "\n---\n".join(json.dumps(d) for d in docs)


def pv_manifest(index: int) -> dict[str, object]:
    path = STATE / "volumes" / f"pv{index:02d}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"local-pv{index:02d}", "labels": {"gridts.local/volume": "true"}},
        "spec": {
            "capacity": {"storage": PV_SIZE},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "local",
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [NODE],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def recycle_volumes() -> int:
    """Make every PersistentVolume whose claim is gone (Released) empty and Available again:
    a no-provisioner class cannot delete, so this does what a provisioner's cleaner would."""
    pvs = json.loads(kubectl("get", "pv", "-l", "gridts.local/volume=true", "-o", "json"))
    recycled = 0
    for pv in pvs["items"]:
        if pv["status"].get("phase") not in ("Released", "Failed"):
            continue
        index = int(pv["metadata"]["name"].removeprefix("local-pv"))
        kubectl("delete", "pv", pv["metadata"]["name"], "--wait=true")
        path = STATE / "volumes" / f"pv{index:02d}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        kubectl("create", "-f", "-", stdin=json.dumps(pv_manifest(index)))
        recycled += 1
    return recycled


def install_addons() -> None:
    kubectl("apply", "-f", "-", stdin=addons_manifest())
    kubectl("apply", "-f", "-", stdin=metrics_server_manifest())
    for i in range(PV_COUNT):
        (STATE / "volumes" / f"pv{i:02d}").mkdir(parents=True, exist_ok=True)
        kubectl("apply", "-f", "-", stdin=json.dumps(pv_manifest(i)))


def dns_query(name: str, server: str = DNS_IP) -> list[str]:
    """A minimal DNS A query over UDP; the answer's IPv4 addresses."""
    qid = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(packet, (server, 53))
        data = s.recv(4096)
    answers = struct.unpack(">H", data[6:8])[0]
    pos = 12 + len(question) + 4
    found = []
    for _ in range(answers):
        if data[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        rtype, _cls, _ttl, length = struct.unpack(">HHIH", data[pos : pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(data[pos : pos + 4]))
        pos += length
    return found


def node_ready() -> bool:
    out = kubectl(
        "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
    )  # fmt: skip
    return out.strip() == "True"


# ---- teardown ---------------------------------------------------------------------------------


def _cgroup_dirs() -> list[Path]:
    """Every cgroup folder the kubelet made (cgroupfs driver: `kubepods` under each hierarchy)."""
    found: list[Path] = []
    root = Path("/sys/fs/cgroup")
    for hierarchy in [root, *root.iterdir()] if root.exists() else []:
        top = hierarchy / "kubepods"
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def kill_pods() -> None:
    """SIGKILL whatever still runs in the pods' cgroups, then remove those cgroups."""
    for _ in range(10):
        pids = set()
        for d in _cgroup_dirs():
            with contextlib.suppress(OSError):
                pids |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()


def kill_shims() -> None:
    """containerd's shims outlive containerd; ours name our socket on their command line."""
    needle = str(containerd_socket()).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes()
            if b"containerd-shim" in cmd and needle in cmd:
                os.kill(int(proc.name), signal.SIGKILL)


def stop_pid(name: str, timeout: float = 15) -> None:
    pid_file = STATE / "pids" / f"{name}.pid"
    pid = pid_of(name)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_of(name) is not None:
            time.sleep(0.2)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)


def our_mounts() -> list[str]:
    """Mount points under the state folder, and the pods' network namespaces, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith((str(STATE) + "/", "/run/netns/cni-", "/var/run/netns/cni-")):
            points.append(point)
    return sorted(set(points), key=lambda p: -p.count("/"))


def unmount_all() -> None:
    for _ in range(3):
        points = our_mounts()
        if not points:
            return
        for point in points:
            run(["umount", "-l", point], check=False)
    left = our_mounts()
    if left:
        raise SystemExit(f"could not unmount: {left}")


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", name], check=False).returncode == 0


def leftovers() -> list[str]:
    """What of a cluster is still on this machine (empty after `down`)."""
    found = [f"process {n}" for n in COMPONENTS if pid_of(n) is not None]
    found += [f"mount {m}" for m in our_mounts()]
    if link_exists(BRIDGE):
        found.append(f"bridge {BRIDGE}")
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            if not shutil.which(binary):
                continue
            rules = run([binary, "-w", "-t", table, "-S"], check=False).stdout
            chains = {
                line.split()[1]
                for line in rules.splitlines()
                if line.startswith("-N ") and (line.split()[1].startswith(("KUBE-", CHAIN)))
            }
            found += [f"{binary} {table} chain {c}" for c in sorted(chains)]
    found += [f"cgroup {d}" for d in _cgroup_dirs()]
    found += [f"ipset {n}" for n in our_ipsets()]
    needle = str(containerd_socket()).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name} (containerd shim)")
    if STATE.exists():
        found.append(f"state folder {STATE}")
    return found


def our_ipsets() -> list[str]:
    if not shutil.which("ipset"):
        return []
    names = run(["ipset", "list", "-n"], check=False).stdout.split()
    return [n for n in names if n.startswith(("KUBE-", "kube-router"))]


def down() -> None:
    for name in ("kube-router", "kube-proxy", "kubelet"):
        stop_pid(name)
    kill_pods()
    kill_shims()
    for name in ("containerd", "kube-scheduler", "kube-controller-manager", "kube-apiserver"):
        stop_pid(name)
    stop_pid("etcd")
    unmount_all()
    for netns in Path("/run/netns").glob("cni-*") if Path("/run/netns").exists() else []:
        with contextlib.suppress(OSError):
            netns.unlink()
    if link_exists(BRIDGE):
        run(["ip", "link", "delete", BRIDGE])
    remove_iptables()
    for name in our_ipsets():  # after the rules that used them
        run(["ipset", "destroy", name], check=False)
    kill_pods()
    restore_sysctls()
    shutil.rmtree(STATE, ignore_errors=True)
    left = leftovers()
    if left:
        raise SystemExit("down left these behind:\n  " + "\n  ".join(left))


# ---- entry points -----------------------------------------------------------------------------


def healthy() -> bool:
    if any(pid_of(n) is None for n in COMPONENTS):
        return False
    try:
        return (
            api_ready() and node_ready() and bool(dns_query("kubernetes.default.svc.cluster.local"))
        )
    except (OSError, SystemExit, ValueError):
        return False


def up() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the test cluster needs root (containers, mounts, bridge, iptables)")
    if healthy():
        log(f"already up; KUBECONFIG={kubeconfig()}")
        return
    start = time.monotonic()
    ensure_packages()
    build.build_all()
    if STATE.exists() or leftovers():
        log("cleaning up what an earlier run left behind")
        down()
    taken = [p for p in PORTS if port_taken(p)]
    if taken:
        raise SystemExit(f"ports already taken by another process: {taken} (ss -ltnp shows which)")
    STATE.mkdir(parents=True)
    STATE.chmod(0o755)
    log("certificates and configuration")
    make_pki()
    write_configs()
    check_routes()
    set_sysctls()
    make_bridge()
    add_iptables()
    log("control plane: etcd, kube-apiserver, controller-manager, scheduler")
    start_control_plane()
    log("node: containerd, kubelet, kube-proxy")
    start_node()
    wait_for(f"node {NODE} Ready", node_ready, 120, "kubelet")
    start_policy_engine()
    log("add-ons: CoreDNS, local StorageClass and volumes")
    import_addon_images()
    install_addons()
    wait_for(
        "CoreDNS to answer kubernetes.default",
        lambda: dns_query("kubernetes.default.svc.cluster.local") == [API_SERVICE_IP],
        180,
        "kubelet",
    )
    log(f"up in {time.monotonic() - start:.0f}s; KUBECONFIG={kubeconfig()}")


def status() -> int:
    for name in COMPONENTS:
        pid = pid_of(name)
        print(f"{name:26} {'running, pid ' + str(pid) if pid else 'not running'}")
    ok = healthy()
    print(f"cluster                    {'healthy' if ok else 'not healthy'}")
    return 0 if ok else 1


def env() -> None:
    print(f"export KUBECONFIG={kubeconfig()}")
    print(f"export PATH={bin_dir()}:$PATH")


USAGE = """usage: scripts/cluster up|down|status|env|build|images|recycle-volumes

  up       build (once, cached) and start a one-node Kubernetes {version} on this machine;
           idempotent, and cleans up an earlier run that was killed first
  down     stop it and remove everything it put on the machine (processes, mounts, bridge,
           iptables chains, cgroups, state in {state})
  status   one line per component; exit 0 when the node is Ready and DNS answers
  env      export lines for KUBECONFIG and kubectl:  eval "$(scripts/cluster env)"
  build    only build and cache the binaries
  images [TAG...]  build the gridts image (tagged gridts.local/gridts:TAG, default e2e) from the
           Dockerfile and the InfluxDB test image with buildah, import both into the cluster
  recycle-volumes  empty and free the local PersistentVolumes whose claims were deleted
"""


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "--help"
    if cmd == "up":
        up()
    elif cmd == "down":
        down()
        log("down: nothing of the cluster is left on this machine")
    elif cmd == "status":
        return status()
    elif cmd == "env":
        env()
    elif cmd == "build":
        build.build_all()
    elif cmd == "images":
        import cluster_images

        cluster_images.main(argv[2:] or ["e2e"])
    elif cmd == "recycle-volumes":
        log(f"recycled {recycle_volumes()} volumes")
    else:
        print(USAGE.format(version=build.K8S_VERSION, state=STATE))
        return 0 if cmd in ("-h", "--help", "help") else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
