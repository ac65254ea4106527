"""A real InfluxDB 2.x for development and tests, without containers.

Finds an ``influxd`` 2.x (``$INFLUXD``, then ``PATH``, then a per-version cache outside the repo),
building it from the official Go module when there is none, and runs it on loopback with its data
in a given folder, onboarded through the setup API.

Standard library only: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# v2.10.0 is newer, but its Flux dependency (v0.201.0) is not served by the module proxy here;
# v2.9.1 is the newest 2.x whose whole dependency graph is. See adr/0004.
INFLUXDB_VERSION = os.environ.get("INFLUXDB_VERSION", "v2.9.1")
MODULE = "github.com/influxdata/influxdb/v2"

# influxd writes a shard's write cache to a TSM file once it holds this much, as the chart runs
# it (influxdb.cacheSnapshotSize, ADR 0019), not at InfluxDB's 25 MB: every query of a series
# copies and sorts all of that series' points in the cache, whatever its range.
CACHE_SNAPSHOT_SIZE = "2MiB"

ORG = "grid"
BUCKET = "grid"
USERNAME = "admin"
PASSWORD = "admin-password-local-only"  # noqa: S105 - a loopback-only dev instance


def log(msg: str) -> None:
    print(f"[influxdb-local] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    base = os.environ.get("GRIDTS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gridts"
    )
    return Path(base)


def _is_influxd_2x(path: str) -> bool:
    try:
        out = subprocess.run(
            [path, "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return False
    return out.startswith("InfluxDB v2.")


def find_binary() -> Path | None:
    """An influxd 2.x the user already has, or the cached build; None when neither exists."""
    explicit = os.environ.get("INFLUXD")
    if explicit:
        if not _is_influxd_2x(explicit):
            raise SystemExit(f"INFLUXD={explicit} is not an influxd 2.x binary")
        return Path(explicit)
    on_path = shutil.which("influxd")
    if on_path and _is_influxd_2x(on_path):
        return Path(on_path)
    cached = cache_dir() / f"influxd-{INFLUXDB_VERSION}" / "influxd"
    return cached if cached.exists() else None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_logged(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    logfile: Path,
    say: Callable[[str], None] | None = None,
) -> None:
    """Run a long build step, echoing a heartbeat so a first-time user sees it is alive."""
    say = say or log
    start = time.monotonic()
    with open(logfile, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        last = 0.0
        while proc.poll() is None:
            time.sleep(1)
            elapsed = time.monotonic() - start
            if elapsed - last >= 30:
                last = elapsed
                say(f"  ... still building ({elapsed / 60:.1f} min; log: {logfile})")
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-40:]
        raise SystemExit(
            f"build step failed ({proc.returncode}): {' '.join(cmd)}\n" + "\n".join(tail)
        )


def build_binary() -> Path:
    """Build influxd from its Go module (Flux's Rust library via cargo); cache it by version."""
    target_dir = cache_dir() / f"influxd-{INFLUXDB_VERSION}"
    target = target_dir / "influxd"
    with _lock(cache_dir() / f"influxd-{INFLUXDB_VERSION}.lock"):
        if target.exists():
            return target
        for tool in ("go", "cargo"):
            if not shutil.which(tool):
                raise SystemExit(f"building influxd needs `{tool}` on PATH")
        log(
            f"building influxd {INFLUXDB_VERSION} from its Go module; the first build takes "
            "10-20 minutes on 2 cores (Go code plus Flux's Rust library), later runs reuse it"
        )
        target_dir.mkdir(parents=True, exist_ok=True)
        logfile = target_dir / "build.log"
        logfile.write_text("")
        env = dict(os.environ)
        # The module's go.mod asks for a newer patch release than the machine may have; Go fetches
        # that toolchain from the module proxy.
        env.setdefault("GOTOOLCHAIN", "auto")
        env["GOFLAGS"] = "-mod=mod"
        # Flux's rust-toolchain.toml pins an old Rust that rustup would try to download.
        if shutil.which("rustup"):
            env["RUSTUP_TOOLCHAIN"] = env.get("GRIDTS_RUST_TOOLCHAIN", "stable")
        # Newer rustc turns old lints into errors in Flux's pinned crates.
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + " --cap-lints=warn").strip()
        env.setdefault("CARGO_BUILD_JOBS", str(os.cpu_count() or 2))

        log("1/4 downloading the influxdb module")
        info = json.loads(
            subprocess.run(
                ["go", "mod", "download", "-json", f"{MODULE}@{INFLUXDB_VERSION}"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            or "{}"
        )
        if info.get("Error") or not info.get("Dir"):
            raise SystemExit(f"go mod download failed: {info.get('Error', 'no output')}")
        with tempfile.TemporaryDirectory(prefix="influxd-build-", dir=target_dir) as work:
            src = Path(work) / "src"
            # The module cache is read-only and go.mod has replace directives, so `go install
            # module@version` refuses it: build inside a writable copy instead.
            shutil.copytree(info["Dir"], src)
            for p in src.rglob("*"):
                with contextlib.suppress(OSError):
                    p.chmod(p.stat().st_mode | 0o200)
            src.chmod(0o755)
            gomod = (src / "go.mod").read_text()
            m = re.search(r"github.com/influxdata/pkg-config (v\S+)", gomod)
            if not m:
                raise SystemExit("cannot find the pkg-config wrapper version in influxdb's go.mod")
            log(f"2/4 installing influxdata's pkg-config wrapper {m.group(1)}")
            gobin = target_dir / "bin"
            env["GOBIN"] = str(gobin)
            _run_logged(
                ["go", "install", f"github.com/influxdata/pkg-config@{m.group(1)}"],
                env,
                src,
                logfile,
            )
            env["PKG_CONFIG"] = str(gobin / "pkg-config")
            log("3/4 building influxd and libflux (cargo); this is the long step")
            out = Path(work) / "influxd"
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ldflags = (
                f"-X main.version={INFLUXDB_VERSION} -X main.commit=module-proxy "
                f"-X main.date={stamp}"
            )
            _run_logged(
                ["go", "build", "-ldflags", ldflags, "-o", str(out), "./cmd/influxd"],
                env,
                src,
                logfile,
            )
            log("4/4 checking the binary")
            if not _is_influxd_2x(str(out)):
                raise SystemExit(f"the built binary does not report a 2.x version; see {logfile}")
            os.replace(out, target)
        log(f"built {target}")
        return target


def ensure_binary() -> Path:
    found = find_binary()
    return found if found is not None else build_binary()


def binary_version(path: Path) -> str:
    out = subprocess.run([str(path), "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, body: object = None, token: str | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback URL
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        raw = resp.read()
    return json.loads(raw) if raw else None


def healthy(url: str) -> bool:
    try:
        health = _http("GET", f"{url}/health")
    except (OSError, ValueError):
        return False
    return isinstance(health, dict) and health.get("status") == "pass"


def spawn(
    binary: Path, data_dir: Path, port: int, log_path: Path, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Start influxd on loopback with every file under ``data_dir`` (``extra``: more flags)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(binary),
        f"--http-bind-address=127.0.0.1:{port}",
        f"--bolt-path={data_dir / 'influxd.bolt'}",
        f"--engine-path={data_dir / 'engine'}",
        f"--sqlite-path={data_dir / 'influxd.sqlite'}",
        "--reporting-disabled",
        "--log-level=warn",
        # Go's profiling off, as the chart runs it (influxdb.profiling): on, influxd records a
        # stack every 4 kB it allocates and at every contended lock, 10 to 20 % of its CPU per
        # query here (docs/capacity.md)
        "--pprof-disabled",
        f"--storage-cache-snapshot-memory-size={CACHE_SNAPSHOT_SIZE}",
        *extra,
    ]
    with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"influxd exited with status {proc.returncode} during start-up")
        if healthy(url):
            return
        time.sleep(0.1)
    raise RuntimeError(f"influxd at {url} not healthy after {timeout:.0f}s")


def onboard(url: str, token: str, org: str = ORG, bucket: str = BUCKET) -> None:
    """Create the org, bucket and an operator token through /api/v2/setup (first start only)."""
    state = _http("GET", f"{url}/api/v2/setup")
    if isinstance(state, dict) and not state.get("allowed", False):
        return
    _http(
        "POST",
        f"{url}/api/v2/setup",
        {
            "username": USERNAME,
            "password": PASSWORD,
            "org": org,
            "bucket": bucket,
            "token": token,
            "retentionPeriodSeconds": 0,
        },
    )


def stop_process(pid: int, timeout: float = 30) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # Reap our own child so it does not linger as a zombie that still answers kill(0).
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


class Server:
    """An influxd on a free loopback port with its data in ``data_dir``, onboarded on first
    start; it can be stopped, killed (SIGKILL, as a crashed pod) and started again on the same
    data. Used by the test fixtures and the benchmarks."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.org = ORG
        self.bucket = BUCKET
        self.token = secrets.token_urlsafe(32)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(self.binary, self.data_dir, self.port, self.log_path)
        wait_healthy(self.url, self.proc)
        onboard(self.url, self.token, self.org, self.bucket)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc.pid)
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def env(self) -> dict[str, str]:
        return {
            "INFLUX_URL": self.url,
            "INFLUX_ORG": self.org,
            "INFLUX_BUCKET": self.bucket,
            "INFLUX_TOKEN": self.token,
        }
