"""Onboard InfluxDB if needed, then create the least-privilege InfluxDB tokens of a gridts
release and store them in Secrets.

Run by the chart's tokens Job as `python -m influx_tokens` in the gridts image (the chart mounts
this file from a ConfigMap and puts it on PYTHONPATH). It

1. waits until InfluxDB answers /health, with a new connection for every attempt, telling "not
   ready" (nothing listening, 503) from "not InfluxDB" (a 404 or another server's answer, e.g. a
   proxy answering for a Service address not programmed yet),
2. onboards InfluxDB through its setup API when GET /api/v2/setup says it is not yet (first
   start): admin user and password, organization, bucket and retention, and the admin token
   from the admin Secret; only where it may (INFLUX_ONBOARD, the release's own InfluxDB), else
   it stops with exit 2 at once,
3. checks that the admin token is accepted (exit 2 if InfluxDB refuses it),
4. for each wanted token (read-only for the API, write-only for the ingest) keeps the token in
   its Secret if it still works with exactly the wanted permission, else creates a new
   authorization through the InfluxDB API and writes it into the Secret (create or replace),
   with the authorization's ID in an annotation of the Secret,
5. deletes the authorization it replaced: the one whose ID its own Secret recorded, never one
   found by description, since other installs may share the InfluxDB (and, through a kustomize
   base rendered once, the same release name).

A stored token is kept when it still reads (API) or writes (ingest) the bucket and cannot do the
other: InfluxDB lists authorizations without their tokens, so the token is checked by using it.
Authorizations are described "gridts <namespace>/<release> <purpose>", with the namespace the
pod runs in (NAMESPACE, from the downward API), so each install's tokens can be told apart in
InfluxDB.

Configuration (environment): INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_ADMIN_TOKEN,
NAMESPACE, RELEASE, TOKEN_SPECS (JSON list of {"secret", "key", "action", "purpose"}),
WAIT_SECONDS;
for onboarding INFLUX_ONBOARD=true, INFLUX_ADMIN_USERNAME, INFLUX_ADMIN_PASSWORD and
INFLUX_RETENTION (an InfluxDB duration such as 52w; empty or 0 keeps data forever).
Exit codes: 0 done, 1 InfluxDB or the Kubernetes API failed (the Job retries), 2 a configuration
that cannot work (the Job fails at once).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class TokenSpec:
    secret: str
    key: str
    action: str  # "read" or "write"
    purpose: str  # e.g. "api (read-only)"

    def description(self, namespace: str, release: str) -> str:
        return f"gridts {namespace}/{release} {self.purpose}"


# The Secret annotation that records which InfluxDB authorization its token belongs to.
AUTHORIZATION_ANNOTATION = "gridts.example.com/influx-authorization-id"


@dataclass(frozen=True)
class StoredToken:
    token: str | None
    authorization_id: str | None


def log(message: str) -> None:
    print(f"[influx-tokens] {message}", file=sys.stderr, flush=True)


class ConfigError(Exception):
    """A setting that cannot work; retrying does not help (exit 2)."""


DURATION_PART = re.compile(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)")
UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}


def retention_seconds(text: str) -> int:
    """An InfluxDB duration ("52w", "30d", "1h30m"; empty or 0 for forever) in seconds."""
    text = text.strip()
    if text in ("", "0"):
        return 0
    parts = DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"retention {text!r} is not a duration such as 52w, 30d or 1h30m")
    seconds = int(sum(int(n) * UNIT_SECONDS[u] for n, u in parts))
    if 0 < seconds < 3600:
        raise ValueError(f"retention {text!r} is shorter than InfluxDB's minimum of 1h")
    return seconds


@dataclass(frozen=True)
class Config:
    url: str
    org: str
    bucket: str
    admin_token: str
    namespace: str
    release: str
    specs: list[TokenSpec]
    wait_seconds: float
    onboard: bool
    username: str
    password: str
    retention: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        onboard = env.get("INFLUX_ONBOARD", "false").lower()
        if onboard not in ("true", "false"):
            raise ValueError(f"INFLUX_ONBOARD must be true or false, not {onboard!r}")
        return cls(
            url=env["INFLUX_URL"],
            org=env["INFLUX_ORG"],
            bucket=env["INFLUX_BUCKET"],
            admin_token=env["INFLUX_ADMIN_TOKEN"],
            namespace=env["NAMESPACE"],
            release=env.get("RELEASE", "gridts"),
            specs=parse_specs(env["TOKEN_SPECS"]),
            wait_seconds=float(env.get("WAIT_SECONDS", "600")),
            onboard=onboard == "true",
            username=env.get("INFLUX_ADMIN_USERNAME", "admin"),
            password=env.get("INFLUX_ADMIN_PASSWORD", ""),
            retention=retention_seconds(env.get("INFLUX_RETENTION", "")),
        )


def parse_specs(raw: str) -> list[TokenSpec]:
    specs = [TokenSpec(**item) for item in json.loads(raw)]
    for spec in specs:
        if spec.action not in ("read", "write"):
            raise ValueError(f"action must be read or write, not {spec.action!r}")
    return specs


@dataclass(frozen=True)
class Attempt:
    ready: bool
    message: str


def excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:120] + ("..." if len(text) > 120 else "")


def classify_health(url: str, response: httpx.Response) -> Attempt:
    """InfluxDB's /health is JSON naming "influxdb": 200 when it serves, 503 while it does
    not. A 502/503/504 from anything else is a gateway without a backend yet: not ready. Every
    other answer comes from something that is not InfluxDB (wrong URL, a proxy answering for an
    address that does not lead to InfluxDB yet)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    is_influxdb = isinstance(body, dict) and body.get("name") == "influxdb"
    if is_influxdb and status == 200:
        return Attempt(True, "healthy")
    if is_influxdb:
        return Attempt(False, f"not ready: {url} answered {status}, {body.get('message', '')}")
    if status in (502, 503, 504):
        return Attempt(False, f"not ready: {url} answered {status} ({excerpt(response)})")
    kind = response.headers.get("content-type", "no content type")
    return Attempt(
        False,
        f"not InfluxDB: {url} answered {status} ({kind}: {excerpt(response)!r}); "
        "check the URL, and that no proxy answers for this address",
    )


def describe_transport_error(exc: httpx.TransportError) -> str:
    cause: BaseException = exc
    for _ in range(10):  # the innermost cause says it best ("Connection refused")
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    detail = str(cause) or str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in detail.lower():
        return f"connection refused ({detail})"
    return f"{type(exc).__name__}: {detail}"


def proxy_hint() -> str:
    """Proxy variables change where httpx connects; name them when the wait fails."""
    names = [n for n in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY") if os.environ.get(n)]
    names += [n for n in ("http_proxy", "https_proxy", "all_proxy") if os.environ.get(n)]
    if not names:
        return ""
    return f" (requests go through the proxy in {', '.join(names)}; NO_PROXY may need the host)"


class Influx:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {token}"},
            timeout=10.0,
        )

    def close(self) -> None:
        self.http.close()

    def wait_ready(self, deadline: float, interval: float = 3.0) -> None:
        """Until /health says InfluxDB is up (onboarded or not).

        Every attempt opens a new connection (a new client, ``Connection: close``): an answer
        from something that is not InfluxDB, such as a proxy answering for a Service address
        kube-proxy has not programmed yet, must not stick to a kept-alive socket. What each
        attempt saw is logged when it changes, as "not ready" (nothing listening, 5xx, InfluxDB
        not healthy yet) or "not InfluxDB" (a 404, HTML, JSON that is not InfluxDB's); both are
        retried until the deadline, and the error then says which one it was.
        """
        last = Attempt(False, "no attempt made")
        logged = ""
        logged_at = 0.0
        while True:
            last = self.attempt()
            if last.ready:
                return
            now = time.monotonic()
            if last.message != logged or now - logged_at >= 30:
                log(f"waiting for InfluxDB: {last.message}")
                logged, logged_at = last.message, now
            if now + interval >= deadline:
                break
            time.sleep(interval)
        raise TimeoutError(f"gave up waiting for InfluxDB: {last.message}{proxy_hint()}")

    def attempt(self) -> Attempt:
        """One GET /health on a connection of its own."""
        health_url = f"{self.url}/health"
        try:
            with httpx.Client(timeout=5.0, headers={"Connection": "close"}) as fresh:
                return classify_health(health_url, fresh.get(health_url))
        except httpx.TransportError as exc:
            return Attempt(False, f"not ready: {health_url}: {describe_transport_error(exc)}")

    def setup_allowed(self) -> bool:
        """GET /api/v2/setup: true while InfluxDB has not been onboarded."""
        response = httpx.get(f"{self.url}/api/v2/setup", timeout=10.0)
        response.raise_for_status()
        allowed = response.json().get("allowed")
        if not isinstance(allowed, bool):
            raise ValueError(f"{self.url}/api/v2/setup answered {response.text[:120]!r}")
        return allowed

    def onboard(self, config: Config) -> bool:
        """POST /api/v2/setup; false when someone else onboarded it in the meantime."""
        body = {
            "username": config.username,
            "password": config.password,
            "org": config.org,
            "bucket": config.bucket,
            "retentionPeriodSeconds": config.retention,
            "token": config.admin_token,
        }
        response = httpx.post(f"{self.url}/api/v2/setup", json=body, timeout=30.0)
        if response.status_code in (200, 201):
            return True
        if response.status_code == 422 and not self.setup_allowed():
            return False
        if 400 <= response.status_code < 500:
            raise ConfigError(
                f"InfluxDB refused onboarding: {response.status_code} {response.text[:200]}"
            )
        response.raise_for_status()
        raise RuntimeError(f"onboarding answered {response.status_code}")

    def check_admin_token(self) -> None:
        response = self.http.get("/api/v2/orgs", params={"limit": "1"})
        if response.status_code in (401, 403):
            raise ConfigError(
                f"InfluxDB at {self.url} refuses the admin token ({response.status_code}): it was "
                "onboarded with another token (the admin Secret was replaced while the data "
                "volume was kept?), or the Secret holds no all-access token"
            )
        response.raise_for_status()

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def org_and_bucket(self, org: str, bucket: str) -> tuple[str, str]:
        response = self.http.get("/api/v2/orgs", params={"org": org})
        if response.status_code == 404:
            raise ConfigError(f"organization {org!r} not found in InfluxDB at {self.url}")
        response.raise_for_status()
        orgs = response.json()["orgs"]
        if not orgs:
            raise ConfigError(f"organization {org!r} not found in InfluxDB at {self.url}")
        org_id = str(orgs[0]["id"])
        response = self.http.get("/api/v2/buckets", params={"orgID": org_id, "name": bucket})
        if response.status_code == 404:
            raise ConfigError(f"bucket {bucket!r} not found in organization {org!r}")
        response.raise_for_status()
        buckets = response.json()["buckets"]
        if not buckets:
            raise ConfigError(f"bucket {bucket!r} not found in organization {org!r}")
        return org_id, str(buckets[0]["id"])

    def authorizations(self, org_id: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/authorizations", orgID=org_id)["authorizations"])

    def authorization(self, authorization_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/api/v2/authorizations/{authorization_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def create(
        self, org_id: str, bucket_id: str, spec: TokenSpec, description: str
    ) -> dict[str, Any]:
        body = {
            "orgID": org_id,
            "description": description,
            "permissions": [wanted_permission(spec, org_id, bucket_id)],
        }
        response = self.http.post("/api/v2/authorizations", json=body)
        response.raise_for_status()
        created: dict[str, Any] = response.json()
        return created

    def token_does_exactly(self, token: str, action: str, org_id: str, bucket_id: str) -> bool:
        """Whether ``token`` may ``action`` the bucket and not the other way round.

        InfluxDB 2.x lists authorizations without their tokens, so a stored token is checked by
        using it: reading the bucket's metadata, and an empty write (which stores nothing).
        """
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=self.http.base_url, headers=headers, timeout=10.0) as probe:
            can_read = allowed(probe.get(f"/api/v2/buckets/{bucket_id}"), 200)
            can_write = allowed(
                probe.post(
                    "/api/v2/write", params={"orgID": org_id, "bucket": bucket_id}, content=b""
                ),
                204,
            )
        return (can_read, can_write) == (action == "read", action == "write")

    def delete(self, authorization_id: str) -> None:
        self.http.delete(f"/api/v2/authorizations/{authorization_id}").raise_for_status()


def allowed(response: httpx.Response, success: int) -> bool:
    """Whether a request made with a stored token was allowed. Only InfluxDB's own yes
    (``success``) or no (401, 403, 404) decide; any other answer (5xx, a proxy's error) says
    nothing about the token and raises, so that a working token is never replaced (and the
    one the running pods hold revoked) because InfluxDB could not answer for a moment."""
    if response.status_code == success:
        return True
    if response.status_code in (401, 403, 404):
        return False
    response.raise_for_status()
    raise httpx.HTTPStatusError(
        f"unexpected {response.status_code} while checking a stored token",
        request=response.request,
        response=response,
    )


def wanted_permission(spec: TokenSpec, org_id: str, bucket_id: str) -> dict[str, Any]:
    return {
        "action": spec.action,
        "resource": {"type": "buckets", "id": bucket_id, "orgID": org_id},
    }


class Secrets:
    """The namespace's Secrets, through the in-cluster Kubernetes API."""

    def __init__(self, namespace: str) -> None:
        import kubernetes

        k8s: Any = kubernetes  # the client is untyped
        k8s.config.load_incluster_config()
        self.api = k8s.client.CoreV1Api()
        self.namespace = namespace
        self.client = k8s.client

    def read(self, name: str, key: str) -> StoredToken | None:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.api.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        value = (secret.data or {}).get(key)
        annotations = secret.metadata.annotations or {}
        return StoredToken(
            base64.b64decode(value).decode() if value else None,
            annotations.get(AUTHORIZATION_ANNOTATION),
        )

    def write(
        self, name: str, key: str, token: str, labels: dict[str, str], authorization_id: str
    ) -> None:
        from kubernetes.client.exceptions import ApiException

        body = self.client.V1Secret(
            metadata=self.client.V1ObjectMeta(
                name=name,
                labels=labels,
                annotations={AUTHORIZATION_ANNOTATION: authorization_id},
            ),
            type="Opaque",
            string_data={key: token},
        )
        try:
            self.api.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.api.replace_namespaced_secret(name, self.namespace, body)


class SecretStore(Protocol):
    def read(self, name: str, key: str) -> StoredToken | None: ...

    def write(
        self, name: str, key: str, token: str, labels: dict[str, str], authorization_id: str
    ) -> None: ...


def ensure(
    influx: Influx,
    secrets: SecretStore,
    spec: TokenSpec,
    org: str,
    bucket: str,
    description: str,
) -> None:
    org_id, bucket_id = influx.org_and_bucket(org, bucket)
    stored = secrets.read(spec.secret, spec.key)
    if (
        stored
        and stored.token
        and influx.token_does_exactly(stored.token, spec.action, org_id, bucket_id)
    ):
        log(f"{spec.secret}: token still valid and {spec.action}-only, kept")
        return
    created = influx.create(org_id, bucket_id, spec, description)
    labels = {
        "app.kubernetes.io/part-of": "gridts",
        "app.kubernetes.io/managed-by": "gridts-influx-tokens",
    }
    try:
        secrets.write(spec.secret, spec.key, str(created["token"]), labels, str(created["id"]))
    except Exception:
        influx.delete(str(created["id"]))  # not stored anywhere: do not leave it valid
        raise
    log(f"{spec.secret}: created a {spec.action}-only token for bucket {bucket!r} ({description})")
    replaced = stored.authorization_id if stored else None
    if not replaced:
        if stored and stored.token:
            log(
                f"{spec.secret}: the replaced token's authorization is not recorded (a Secret "
                "written by an older version): find it in InfluxDB by its description"
            )
        return
    old = influx.authorization(replaced)
    if old is None:
        log(f"{spec.secret}: the replaced authorization {replaced} is gone already")
    elif old.get("description") != description or old.get("orgID") != org_id:
        log(
            f"{spec.secret}: the replaced authorization {replaced} is not this install's "
            f"({old.get('description')!r}), left alone"
        )
    else:
        influx.delete(replaced)
        log(f"{spec.secret}: deleted the replaced authorization {replaced}")


def ensure_onboarded(influx: Influx, config: Config) -> None:
    if not influx.setup_allowed():
        log("InfluxDB is onboarded")
        return
    if not config.onboard:
        raise ConfigError(
            f"InfluxDB at {config.url} is not onboarded (GET /api/v2/setup allows setup) and "
            "this Job does not onboard an InfluxDB outside the release: onboard it (influx "
            "setup) or let the Job do it (externalInfluxdb.onboard=true)"
        )
    if not config.password:
        raise ConfigError("onboarding needs the admin password (key admin-password of the Secret)")
    if influx.onboard(config):
        forever = "no retention limit"
        retention = f"{config.retention} s retention" if config.retention else forever
        log(
            f"onboarded InfluxDB: user {config.username!r}, organization {config.org!r}, "
            f"bucket {config.bucket!r} ({retention}), the admin token of the Secret"
        )
    else:
        log("InfluxDB was onboarded by someone else meanwhile")


def run(config: Config, secret_store: Callable[[str], SecretStore]) -> int:
    influx = Influx(config.url, config.admin_token)
    try:
        influx.wait_ready(time.monotonic() + config.wait_seconds)
        ensure_onboarded(influx, config)
        influx.check_admin_token()
        if config.specs:
            secrets = secret_store(config.namespace)
            for spec in config.specs:
                description = spec.description(config.namespace, config.release)
                ensure(influx, secrets, spec, config.org, config.bucket, description)
    except ConfigError as exc:
        log(f"cannot work this way, giving up (exit 2): {exc}")
        return 2
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        influx.close()
    return 0


def main() -> int:
    try:
        config = Config.from_env(os.environ)
    except (KeyError, ValueError, TypeError) as exc:
        log(f"bad configuration: {exc!r}")
        return 2
    return run(config, Secrets)


if __name__ == "__main__":
    sys.exit(main())
