"""Create the least-privilege InfluxDB tokens of a gridts release and store them in Secrets.

Run by the chart's tokens Job as `python -m influx_tokens` in the gridts image (the chart mounts
this file from a ConfigMap and puts it on PYTHONPATH). It

1. waits until InfluxDB answers /health and the admin token works, with a new connection for
   every attempt, telling "not ready" (nothing listening, 503) from "not InfluxDB" (a 404 or
   another server's answer, e.g. a proxy answering for a Service address not programmed yet),
2. for each wanted token (read-only for the API, write-only for the ingest) keeps the token in
   its Secret if it still works with exactly the wanted permission, else creates a new
   authorization through the InfluxDB API and writes it into the Secret (create or replace),
3. deletes older authorizations it created for the same purpose.

A stored token is kept when it still reads (API) or writes (ingest) the bucket and cannot do the
other: InfluxDB lists authorizations without their tokens, so the token is checked by using it.

Configuration (environment): INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_ADMIN_TOKEN,
NAMESPACE, TOKEN_SPECS (JSON list of {"secret", "key", "action", "description"}), WAIT_SECONDS.
Exit codes: 0 done, 1 InfluxDB or the Kubernetes API failed, 2 bad configuration.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class TokenSpec:
    secret: str
    key: str
    action: str  # "read" or "write"
    description: str


def log(message: str) -> None:
    print(f"[influx-tokens] {message}", file=sys.stderr, flush=True)


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
        """Until /health says InfluxDB is up and the admin token is accepted.

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
        """One check of /health and of the admin token, each on a fresh connection."""
        health_url = f"{self.url}/health"
        try:
            with httpx.Client(timeout=5.0, headers={"Connection": "close"}) as fresh:
                health = fresh.get(health_url)
                verdict = classify_health(health_url, health)
                if not verdict.ready:
                    return verdict
                orgs = fresh.get(
                    f"{self.url}/api/v2/orgs",
                    params={"limit": "1"},
                    headers={"Authorization": self.http.headers["Authorization"]},
                )
        except httpx.TransportError as exc:
            return Attempt(False, f"not ready: {health_url}: {describe_transport_error(exc)}")
        if orgs.status_code == 200:
            return Attempt(True, "ready")
        return Attempt(False, f"not ready: {self.url}/api/v2/orgs answered {orgs.status_code}")

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def org_and_bucket(self, org: str, bucket: str) -> tuple[str, str]:
        orgs = self.get("/api/v2/orgs", org=org)["orgs"]
        if not orgs:
            raise LookupError(f"organization {org!r} not found")
        org_id = str(orgs[0]["id"])
        buckets = self.get("/api/v2/buckets", orgID=org_id, name=bucket)["buckets"]
        if not buckets:
            raise LookupError(f"bucket {bucket!r} not found in {org!r}")
        return org_id, str(buckets[0]["id"])

    def authorizations(self, org_id: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/authorizations", orgID=org_id)["authorizations"])

    def create(self, org_id: str, bucket_id: str, spec: TokenSpec) -> dict[str, Any]:
        body = {
            "orgID": org_id,
            "description": spec.description,
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
            can_read = probe.get(f"/api/v2/buckets/{bucket_id}").status_code == 200
            written = probe.post(
                "/api/v2/write", params={"orgID": org_id, "bucket": bucket_id}, content=b""
            )
            can_write = written.status_code == 204
        return (can_read, can_write) == (action == "read", action == "write")

    def delete(self, authorization_id: str) -> None:
        self.http.delete(f"/api/v2/authorizations/{authorization_id}").raise_for_status()


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

    def read(self, name: str, key: str) -> str | None:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.api.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        value = (secret.data or {}).get(key)
        return base64.b64decode(value).decode() if value else None

    def write(self, name: str, key: str, token: str, labels: dict[str, str]) -> None:
        from kubernetes.client.exceptions import ApiException

        body = self.client.V1Secret(
            metadata=self.client.V1ObjectMeta(name=name, labels=labels),
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
    def read(self, name: str, key: str) -> str | None: ...

    def write(self, name: str, key: str, token: str, labels: dict[str, str]) -> None: ...


def ensure(influx: Influx, secrets: SecretStore, spec: TokenSpec, org: str, bucket: str) -> None:
    org_id, bucket_id = influx.org_and_bucket(org, bucket)
    current = secrets.read(spec.secret, spec.key)
    if current and influx.token_does_exactly(current, spec.action, org_id, bucket_id):
        log(f"{spec.secret}: token still valid and {spec.action}-only, kept")
        return
    created = influx.create(org_id, bucket_id, spec)
    labels = {
        "app.kubernetes.io/part-of": "gridts",
        "app.kubernetes.io/managed-by": "gridts-influx-tokens",
    }
    secrets.write(spec.secret, spec.key, str(created["token"]), labels)
    log(f"{spec.secret}: created a {spec.action}-only token for bucket {bucket!r}")
    for stale in influx.authorizations(org_id):
        if stale.get("description") == spec.description and stale["id"] != created["id"]:
            influx.delete(str(stale["id"]))
            log(f"{spec.secret}: deleted superseded authorization {stale['id']}")


def main() -> int:
    try:
        url = os.environ["INFLUX_URL"]
        org = os.environ["INFLUX_ORG"]
        bucket = os.environ["INFLUX_BUCKET"]
        admin_token = os.environ["INFLUX_ADMIN_TOKEN"]
        namespace = os.environ["NAMESPACE"]
        specs = parse_specs(os.environ["TOKEN_SPECS"])
        wait_seconds = float(os.environ.get("WAIT_SECONDS", "600"))
    except (KeyError, ValueError, TypeError) as exc:
        log(f"bad configuration: {exc!r}")
        return 2
    influx = Influx(url, admin_token)
    try:
        influx.wait_ready(time.monotonic() + wait_seconds)
        secrets = Secrets(namespace)
        for spec in specs:
            ensure(influx, secrets, spec, org, bucket)
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        influx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
