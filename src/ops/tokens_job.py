"""Onboard InfluxDB if needed, then create the least-privilege InfluxDB tokens of a gridts
release and store them in Secrets.

Run by the chart's tokens Job (and the restore Job's tokens step) as `python -m ops.tokens_job`
in the gridts image. It

1. waits until InfluxDB answers /health, with a new connection for every attempt, telling "not
   ready" (nothing listening, 503) from "not InfluxDB" (a 404 or another server's answer, e.g. a
   proxy answering for a Service address not programmed yet),
2. onboards InfluxDB through its setup API when GET /api/v2/setup says it is not yet (first
   start): admin user and password, organization, bucket and retention, and the admin token
   from the admin Secret; only where it may (INFLUX_ONBOARD, the release's own InfluxDB), else
   it stops with exit 2 at once,
3. checks that the admin token is accepted (exit 2 if InfluxDB refuses it),
4. sets the raw bucket's retention (when INFLUX_RETENTION is given: the release's own InfluxDB,
   or one it may onboard), creates the missing rollup tier buckets `<bucket>_<tier>` (TIERS) and
   sets each tier's retention (TIER_RETENTION); every run, so a changed value takes effect on
   the next upgrade,
5. for each wanted token (read-only for the API; read and write for the ingest, which reads
   back raw counts, edge windows and stored points) keeps the token in its Secret if it still
   does exactly what is wanted on exactly the raw and tier buckets, else creates a new
   authorization through the InfluxDB API and writes it into the Secret (create or replace),
   with the authorization's ID in an annotation of the Secret and the spec's scope key (pods
   refer to that key, so a pod made for a new scope does not start with an older token),
6. deletes the authorization it replaced: the one whose ID its own Secret recorded, never one
   found by description, since other installs may share the InfluxDB (and, through a kustomize
   base rendered once, the same release name).

A stored token is kept when the buckets it can see (GET /api/v2/buckets lists exactly the buckets
a token may read) are exactly the wanted ones, or none for a write-only token, and it may write
to each of them exactly when wanted: InfluxDB lists authorizations without their tokens, and an
authorization's permissions cannot be changed, so the token is checked by using it and replaced
when the tiers (and so its buckets) change. Authorizations are described
"gridts <namespace>/<release> <purpose>", with the namespace the pod runs in (NAMESPACE, from the
downward API), so each install's tokens can be told apart in InfluxDB.

Configuration (environment): INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_ADMIN_TOKEN,
NAMESPACE, RELEASE, TOKEN_SPECS (JSON list of {"secret", "key", "action", "purpose",
"scope_key"}; action read, write or read-write), WAIT_SECONDS, TIERS (e.g. 1m,15m,1h; empty: no
tiers), TIER_RETENTION (e.g. 1m=90d,15m=104w; a tier not named is kept forever);
for onboarding INFLUX_ONBOARD=true, INFLUX_ADMIN_USERNAME, INFLUX_ADMIN_PASSWORD and
INFLUX_RETENTION (an InfluxDB duration such as 52w; empty or 0 keeps data forever), which is
also the raw bucket's retention set on every run.
Exit codes: 0 done, 1 InfluxDB or the Kubernetes API failed (the Job retries), 2 a configuration
that cannot work (the Job fails at once).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

import gridts.tiers
from gridts.durations import parse_influx_duration

ACTIONS = {"read": ("read",), "write": ("write",), "read-write": ("read", "write")}


@dataclass(frozen=True)
class TokenSpec:
    secret: str
    key: str
    action: str  # "read", "write" or "read-write"
    purpose: str  # e.g. "api (read-only)"
    # A second key of the Secret, named after what the token may do (the chart derives it from
    # the action, the bucket and the tiers); the pods refer to it, so that they start only once
    # the Secret holds a token made for that scope. Empty: none.
    scope_key: str = ""

    @property
    def reads(self) -> bool:
        return "read" in ACTIONS[self.action]

    @property
    def writes(self) -> bool:
        return "write" in ACTIONS[self.action]

    def description(self, namespace: str, release: str) -> str:
        return f"gridts {namespace}/{release} {self.purpose}"

    def owns(self, description: str, namespace: str, release: str) -> bool:
        """Whether an authorization described so is this install's token of this role, made
        now or by an older version (whose purpose said "ingest (write-only)")."""
        role = self.purpose.split(" (")[0]
        own = self.description(namespace, release)
        return description == own or description.startswith(
            f"gridts {namespace}/{release} {role} ("
        )


# The Secret annotation that records which InfluxDB authorization its token belongs to.
AUTHORIZATION_ANNOTATION = "gridts.example.com/influx-authorization-id"


@dataclass(frozen=True)
class StoredToken:
    token: str | None
    authorization_id: str | None
    keys: frozenset[str] = frozenset()  # the Secret's keys


def log(message: str) -> None:
    print(f"[influx-tokens] {message}", file=sys.stderr, flush=True)


class ConfigError(Exception):
    """A setting that cannot work; retrying does not help (exit 2)."""


def retention_seconds(text: str) -> int:
    """An InfluxDB duration ("52w", "30d", "1h30m"; empty or 0 for forever) in seconds."""
    text = text.strip()
    if text in ("", "0"):
        return 0
    try:
        seconds = parse_influx_duration(text)
    except ValueError as exc:
        raise ValueError(f"retention {exc}") from None
    if 0 < seconds < 3600:
        raise ValueError(f"retention {text!r} is shorter than InfluxDB's minimum of 1h")
    return seconds


def shard_group_seconds(retention: int) -> int:
    """InfluxDB's default shard-group duration for a retention (0: forever)."""
    if retention == 0 or retention >= 180 * 86400:
        return 7 * 86400
    return 86400 if retention >= 2 * 86400 else 3600


def parse_tiers(text: str) -> list[str]:
    """TIERS (`1m,15m,1h`) -> the tiers' canonical texts, finest first, exactly as the API and
    the ingest name their buckets (gridts.tiers). A tier that does not divide a day or the next
    tier is a configuration error."""
    return [tier.text for tier in gridts.tiers.parse_tiers(text)]


def parse_tier_retention(text: str, tiers: list[str]) -> dict[str, int]:
    """TIER_RETENTION (`1m=90d,15m=104w`, a tier not named: forever) -> seconds per tier."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, keep = part.partition("=")
        if not sep:
            raise ValueError(f"tier retention {part!r} is not <tier>=<duration>, e.g. 1m=90d")
        (tier,) = parse_tiers(name) or [""]
        if tier not in tiers:
            raise ValueError(f"tier retention names {name.strip()!r}, not one of TIERS {tiers}")
        out[tier] = retention_seconds(keep)
    return out


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
    manage_retention: bool = False  # set the raw bucket's retention on every run
    tiers: tuple[str, ...] = ()
    tier_retention: Mapping[str, int] = field(default_factory=dict)

    def tier_bucket(self, tier: str) -> str:
        return f"{self.bucket}_{tier}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        onboard = env.get("INFLUX_ONBOARD", "false").lower()
        if onboard not in ("true", "false"):
            raise ValueError(f"INFLUX_ONBOARD must be true or false, not {onboard!r}")
        tiers = parse_tiers(env.get("TIERS", ""))
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
            manage_retention="INFLUX_RETENTION" in env,
            tiers=tuple(tiers),
            tier_retention=parse_tier_retention(env.get("TIER_RETENTION", ""), tiers),
        )


def parse_specs(raw: str) -> list[TokenSpec]:
    specs = [TokenSpec(**item) for item in json.loads(raw)]
    for spec in specs:
        if spec.action not in ACTIONS:
            raise ValueError(f"action must be read, write or read-write, not {spec.action!r}")
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
        org_id = self.org_id(org)
        found = self.bucket(org_id, bucket)
        if found is None:
            raise ConfigError(f"bucket {bucket!r} not found in organization {org!r}")
        return org_id, str(found["id"])

    def org_id(self, org: str) -> str:
        response = self.http.get("/api/v2/orgs", params={"org": org})
        if response.status_code == 404:
            raise ConfigError(f"organization {org!r} not found in InfluxDB at {self.url}")
        response.raise_for_status()
        orgs = response.json()["orgs"]
        if not orgs:
            raise ConfigError(f"organization {org!r} not found in InfluxDB at {self.url}")
        return str(orgs[0]["id"])

    def bucket(self, org_id: str, name: str) -> dict[str, Any] | None:
        response = self.http.get("/api/v2/buckets", params={"orgID": org_id, "name": name})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found = [b for b in response.json()["buckets"] if b.get("name") == name]
        return dict(found[0]) if found else None

    def keep_for(self, bucket: dict[str, Any], seconds: int) -> str:
        """Set a bucket's retention (0: forever) unless it has it already; what was done. A
        shard-group duration longer than the new retention is brought down to InfluxDB's
        default for it (InfluxDB refuses the change otherwise)."""
        rules = bucket.get("retentionRules") or [{}]
        current = int(rules[0].get("everySeconds", 0))
        shown = f"retention {seconds} s" if seconds else "kept forever"
        if current == seconds:
            return f"kept ({shown})"
        rule: dict[str, Any] = {"type": "expire", "everySeconds": seconds}
        shard = int(rules[0].get("shardGroupDurationSeconds", 0))
        if seconds and shard > seconds:
            rule["shardGroupDurationSeconds"] = shard_group_seconds(seconds)
        response = self.http.patch(
            f"/api/v2/buckets/{bucket['id']}", json={"retentionRules": [rule]}
        )
        if response.status_code in (400, 422):
            raise ConfigError(
                f"InfluxDB refused retention {seconds} s for bucket {bucket['name']!r}: "
                f"{response.text[:200]}"
            )
        response.raise_for_status()
        return f"updated ({shown}, was {current} s)" if current else f"updated ({shown})"

    def create_bucket(self, org_id: str, name: str, seconds: int, description: str) -> str:
        rules = [{"type": "expire", "everySeconds": seconds}] if seconds else []
        body = {"orgID": org_id, "name": name, "retentionRules": rules, "description": description}
        response = self.http.post("/api/v2/buckets", json=body)
        if response.status_code == 422 and self.bucket(org_id, name) is not None:
            return str(self.bucket(org_id, name)["id"])  # type: ignore[index]  # made meanwhile
        response.raise_for_status()
        return str(response.json()["id"])

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
        self, org_id: str, buckets: Mapping[str, str], spec: TokenSpec, description: str
    ) -> dict[str, Any]:
        body = {
            "orgID": org_id,
            "description": description,
            "permissions": wanted_permissions(spec, org_id, buckets),
        }
        response = self.http.post("/api/v2/authorizations", json=body)
        response.raise_for_status()
        created: dict[str, Any] = response.json()
        return created

    def token_does_exactly(
        self, token: str, spec: TokenSpec, org_id: str, buckets: Mapping[str, str]
    ) -> bool:
        """Whether ``token`` reads exactly ``buckets`` (or none, write-only) and may write to
        each of them exactly when ``spec`` writes.

        InfluxDB 2.x lists authorizations without their tokens, so a stored token is checked by
        using it: the buckets it can list (exactly those it may read: an all-access token also
        sees the system buckets), and an empty write to each (which stores nothing).
        """
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=self.http.base_url, headers=headers, timeout=10.0) as probe:
            listed = probe.get("/api/v2/buckets", params={"orgID": org_id, "limit": "100"})
            visible = (
                {b["name"] for b in listed.json()["buckets"]} if allowed(listed, 200) else set()
            )
            if visible != (set(buckets) if spec.reads else set()):
                return False
            for bucket_id in buckets.values():
                can_write = allowed(
                    probe.post(
                        "/api/v2/write", params={"orgID": org_id, "bucket": bucket_id}, content=b""
                    ),
                    204,
                )
                if can_write != spec.writes:
                    return False
        return True

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


def wanted_permissions(
    spec: TokenSpec, org_id: str, buckets: Mapping[str, str]
) -> list[dict[str, Any]]:
    return [
        {"action": action, "resource": {"type": "buckets", "id": bucket_id, "orgID": org_id}}
        for action in ACTIONS[spec.action]
        for bucket_id in buckets.values()
    ]


def scope(spec: TokenSpec, buckets: Mapping[str, str]) -> str:
    """What a token may do, as the Secret's scope key holds it: `read-write grid,grid_1m`."""
    return f"{spec.action} {','.join(buckets)}"


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
            frozenset(secret.data or {}),
        )

    def write(
        self,
        name: str,
        key: str,
        token: str,
        labels: dict[str, str],
        authorization_id: str,
        extra: Mapping[str, str],
    ) -> None:
        from kubernetes.client.exceptions import ApiException

        body = self.client.V1Secret(
            metadata=self.client.V1ObjectMeta(
                name=name,
                labels=labels,
                annotations={AUTHORIZATION_ANNOTATION: authorization_id}
                if authorization_id
                else None,
            ),
            type="Opaque",
            string_data={**extra, key: token},
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
        self,
        name: str,
        key: str,
        token: str,
        labels: dict[str, str],
        authorization_id: str,
        extra: Mapping[str, str],
    ) -> None: ...


LABELS = {
    "app.kubernetes.io/part-of": "gridts",
    "app.kubernetes.io/managed-by": "gridts-influx-tokens",
}


def ensure(
    influx: Influx,
    secrets: SecretStore,
    spec: TokenSpec,
    org_id: str,
    buckets: Mapping[str, str],
    description: str,
    namespace: str,
    release: str,
) -> None:
    """Keep or replace the token of ``spec`` so that it does exactly its action on exactly
    ``buckets`` (name -> ID: the raw bucket and the tier buckets)."""
    stored = secrets.read(spec.secret, spec.key)
    what = scope(spec, buckets)
    extra = {spec.scope_key: what} if spec.scope_key else {}
    if stored and stored.token and influx.token_does_exactly(stored.token, spec, org_id, buckets):
        if spec.scope_key and spec.scope_key not in stored.keys:
            # the same token, now also under the scope key the pods of this release refer to
            secrets.write(
                spec.secret, spec.key, stored.token, LABELS, stored.authorization_id or "", extra
            )
            log(f"{spec.secret}: token still valid ({what}), kept; scope key added")
        else:
            log(f"{spec.secret}: token still valid ({what}), kept")
        return
    created = influx.create(org_id, buckets, spec, description)
    try:
        secrets.write(
            spec.secret, spec.key, str(created["token"]), LABELS, str(created["id"]), extra
        )
    except Exception:
        influx.delete(str(created["id"]))  # not stored anywhere: do not leave it valid
        raise
    log(f"{spec.secret}: created a token ({what}) for {description!r}")
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
    elif not spec.owns(str(old.get("description")), namespace, release) or (
        old.get("orgID") != org_id
    ):
        log(
            f"{spec.secret}: the replaced authorization {replaced} is not this install's "
            f"({old.get('description')!r}), left alone"
        )
    else:
        influx.delete(replaced)
        log(f"{spec.secret}: deleted the replaced authorization {replaced}")


def ensure_buckets(influx: Influx, config: Config) -> tuple[str, dict[str, str]]:
    """The organization's ID and the buckets the tokens cover (name -> ID): the raw bucket,
    whose retention is set when the Job manages it, and the tier buckets, created when missing,
    each with its retention. Idempotent."""
    org_id = influx.org_id(config.org)
    raw = influx.bucket(org_id, config.bucket)
    if raw is None:
        raise ConfigError(f"bucket {config.bucket!r} not found in organization {config.org!r}")
    buckets = {config.bucket: str(raw["id"])}
    if config.manage_retention:
        log(f"bucket {config.bucket!r}: {influx.keep_for(raw, config.retention)}")
    for tier in config.tiers:
        name = config.tier_bucket(tier)
        keep = int(config.tier_retention.get(tier, 0))
        found = influx.bucket(org_id, name)
        if found is None:
            about = f"gridts rollup tier {tier} of {config.bucket}"
            buckets[name] = influx.create_bucket(org_id, name, keep, about)
            shown = f"retention {keep} s" if keep else "kept forever"
            log(f"bucket {name!r}: created ({shown})")
        else:
            buckets[name] = str(found["id"])
            log(f"bucket {name!r}: {influx.keep_for(found, keep)}")
    return org_id, buckets


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
        org_id, buckets = ensure_buckets(influx, config)
        if config.specs:
            secrets = secret_store(config.namespace)
            for spec in config.specs:
                description = spec.description(config.namespace, config.release)
                ensure(
                    influx,
                    secrets,
                    spec,
                    org_id,
                    buckets,
                    description,
                    config.namespace,
                    config.release,
                )
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
