"""Create the least-privilege InfluxDB tokens of a gridts release and store them in Secrets.

Run by the chart's tokens Job as `python -m influx_tokens` in the gridts image (the chart mounts
this file from a ConfigMap and puts it on PYTHONPATH). It

1. waits until InfluxDB answers /health and the admin token works (onboarding may still run),
2. for each wanted token (read-only for the API, write-only for the ingest) keeps the token in
   its Secret if InfluxDB still knows it with exactly the wanted permissions, else creates a new
   authorization through the InfluxDB API and writes it into the Secret (create or replace),
3. deletes older authorizations it created for the same purpose.

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
from typing import Any

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


class Influx:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=10.0,
        )

    def wait_ready(self, deadline: float) -> None:
        """Until /health passes and the admin token is accepted (onboarding finished)."""
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                health = self.http.get("/health")
                if health.status_code == 200:
                    orgs = self.http.get("/api/v2/orgs", params={"limit": 1})
                    if orgs.status_code == 200:
                        return
                    last = f"/api/v2/orgs answered {orgs.status_code}"
                else:
                    last = f"/health answered {health.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            log(f"waiting for InfluxDB: {last}")
            time.sleep(3)
        raise TimeoutError(f"InfluxDB not ready: {last}")

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

    def delete(self, authorization_id: str) -> None:
        self.http.delete(f"/api/v2/authorizations/{authorization_id}").raise_for_status()


def wanted_permission(spec: TokenSpec, org_id: str, bucket_id: str) -> dict[str, Any]:
    return {
        "action": spec.action,
        "resource": {"type": "buckets", "id": bucket_id, "orgID": org_id},
    }


def matches(auth: dict[str, Any], spec: TokenSpec, org_id: str, bucket_id: str) -> bool:
    """The authorization is active and grants exactly the one permission wanted."""
    if auth.get("status") != "active" or len(auth.get("permissions", [])) != 1:
        return False
    perm = auth["permissions"][0]
    resource = perm.get("resource", {})
    return bool(
        perm.get("action") == spec.action
        and resource.get("type") == "buckets"
        and resource.get("id") == bucket_id
        and resource.get("orgID") == org_id
    )


class Secrets:
    """The namespace's Secrets, through the in-cluster Kubernetes API."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client, config

        config.load_incluster_config()
        self.api = client.CoreV1Api()
        self.namespace = namespace
        self.client = client

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


def ensure(influx: Influx, secrets: Secrets, spec: TokenSpec, org: str, bucket: str) -> None:
    org_id, bucket_id = influx.org_and_bucket(org, bucket)
    mine = [a for a in influx.authorizations(org_id) if a.get("description") == spec.description]
    current = secrets.read(spec.secret, spec.key)
    keep = next(
        (a for a in mine if a.get("token") == current and matches(a, spec, org_id, bucket_id)),
        None,
    )
    if keep is None:
        keep = influx.create(org_id, bucket_id, spec)
        labels = {
            "app.kubernetes.io/part-of": "gridts",
            "app.kubernetes.io/managed-by": "gridts-influx-tokens",
        }
        secrets.write(spec.secret, spec.key, str(keep["token"]), labels)
        log(f"{spec.secret}: created a {spec.action}-only token for bucket {bucket!r}")
    else:
        log(f"{spec.secret}: token still valid, kept")
    for stale in mine:
        if stale["id"] != keep["id"]:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
