"""The tokens Job's module (ops.tokens_job) against a real influxd.

The Kubernetes half (Secrets) is replaced by a dict-backed store, since there is no cluster;
the InfluxDB half is real: the read-only token reads and cannot write, the write-only token
writes and cannot read, and a second run keeps valid tokens instead of piling up new ones.
The Job also onboards a fresh influxd (started here without onboarding, as any influxd image
starts), and the InfluxDB readiness probe of the chart is run against it before and after.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

import influxdb_local as il
from ops import tokens_job as tokens
from tests.chart import k8scheck as k
from tests.conftest import InfluxServer


@pytest.fixture
def client(influx: InfluxServer) -> Iterator[Any]:
    influx_client = tokens.Influx(influx.url, influx.token)
    yield influx_client
    influx_client.close()


class MemorySecrets:
    """Secrets of one namespace: token values in ``data``, the recorded authorization IDs (the
    Secret's annotation) in ``authorizations``."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}
        self.authorizations: dict[str, str] = {}
        self.writes = 0

    def read(self, name: str, key: str) -> Any:
        if (name, key) not in self.data and name not in self.authorizations:
            return None
        keys = frozenset(k for (n, k) in self.data if n == name)
        return tokens.StoredToken(
            self.data.get((name, key)), self.authorizations.get(name) or None, keys
        )

    def as_factory(self) -> Callable[[str], tokens.SecretStore]:
        """What `tokens.run` takes: the store of a namespace (this one for any)."""
        return lambda _namespace: self

    def write(
        self,
        name: str,
        key: str,
        token: str,
        labels: dict[str, str],
        authorization_id: str,
        extra: Mapping[str, str],
    ) -> None:
        assert labels["app.kubernetes.io/part-of"] == "gridts"
        for old in [item for item in self.data if item[0] == name]:
            del self.data[old]  # a Secret is replaced whole
        for extra_key, value in extra.items():
            self.data[(name, extra_key)] = value
        self.data[(name, key)] = token
        self.authorizations[name] = authorization_id
        self.writes += 1


@pytest.fixture
def specs() -> list[object]:
    raw = json.dumps(
        [
            {"secret": "api", "key": "token", "action": "read", "purpose": "api"},
            {"secret": "ingest", "key": "token", "action": "write", "purpose": "ingest"},
        ]
    )
    return list(tokens.parse_specs(raw))


def ensure(
    client: Any, secrets: MemorySecrets, spec: Any, influx: InfluxServer, bucket: str
) -> None:
    org_id, bucket_id = client.org_and_bucket(influx.org, bucket)
    tokens.ensure(
        client,
        secrets,
        spec,
        org_id,
        {bucket: bucket_id},
        spec.description("gridts", bucket),
        "gridts",
        bucket,
    )


def write(influx: InfluxServer, bucket: str, token: str) -> int:
    response = httpx.post(
        f"{influx.url}/api/v2/write",
        params={"org": influx.org, "bucket": bucket, "precision": "s"},
        headers={"Authorization": f"Token {token}"},
        content=f"probe value=1 {int(time.time())}",
    )
    return response.status_code


def query(influx: InfluxServer, bucket: str, token: str) -> int:
    response = httpx.post(
        f"{influx.url}/api/v2/query",
        params={"org": influx.org},
        headers={"Authorization": f"Token {token}", "Accept": "application/csv"},
        json={"query": f'from(bucket: "{bucket}") |> range(start: -1h)', "type": "flux"},
    )
    return response.status_code


def test_least_privilege_tokens(
    influx: InfluxServer, client: Any, bucket: str, specs: list[object]
) -> None:
    client.wait_ready(time.monotonic() + 30)
    secrets = MemorySecrets()
    for spec in specs:
        ensure(client, secrets, spec, influx, bucket)
    read_token = secrets.data[("api", "token")]
    write_token = secrets.data[("ingest", "token")]

    assert write(influx, bucket, write_token) == 204
    assert write(influx, bucket, read_token) in (401, 403, 404)
    assert query(influx, bucket, read_token) == 200
    assert query(influx, bucket, write_token) in (401, 403, 404)
    # Other buckets are out of reach of both.
    assert write(influx, influx.bucket, write_token) in (401, 403, 404)
    assert query(influx, influx.bucket, read_token) in (401, 403, 404)


def test_second_run_keeps_valid_tokens_and_replaces_broken_ones(
    influx: InfluxServer, client: Any, bucket: str, specs: list[object]
) -> None:
    secrets = MemorySecrets()
    for spec in specs:
        ensure(client, secrets, spec, influx, bucket)
    first = dict(secrets.data)
    for spec in specs:
        ensure(client, secrets, spec, influx, bucket)
    assert secrets.data == first
    assert secrets.writes == 2

    secrets.data[("api", "token")] = "lost-or-edited"
    ensure(client, secrets, specs[0], influx, bucket)
    assert secrets.data[("api", "token")] not in (first[("api", "token")], "lost-or-edited")
    org_id, _ = client.org_and_bucket(influx.org, bucket)
    described = [
        a
        for a in client.authorizations(org_id)
        if a["description"] == f"gridts gridts/{bucket} api"
    ]
    assert len(described) == 1, "the superseded authorization is deleted"
    assert query(influx, bucket, first[("api", "token")]) == 401

    # A token with more rights than wanted (here the operator's all-access one) is replaced too.
    secrets.data[("ingest", "token")] = influx.token
    ensure(client, secrets, specs[1], influx, bucket)
    assert secrets.data[("ingest", "token")] != influx.token
    assert write(influx, bucket, secrets.data[("ingest", "token")]) == 204
    assert query(influx, bucket, influx.token) == 200, "only the Job's own token is deleted"


def test_bad_configuration_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFLUX_URL", raising=False)
    assert tokens.main() == 2


# ---- onboarding -------------------------------------------------------------------------------


@pytest.fixture
def fresh_influx(influxd_binary: Path, tmp_path: Path) -> Iterator[str]:
    """An influxd that nobody has onboarded, as any influxd image starts without help."""
    port = il.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = il.spawn(influxd_binary, tmp_path / "data", port, tmp_path / "influxd.log")
    try:
        il.wait_healthy(url, proc)
        assert httpx.get(f"{url}/api/v2/setup").json()["allowed"] is True
        yield url
    finally:
        il.stop_process(proc.pid)
        proc.wait()


def job_env(url: str, token: str, **extra: str) -> dict[str, str]:
    """The tokens Job's environment as the chart sets it (no token Secrets to make here)."""
    return {
        "INFLUX_URL": url,
        "INFLUX_ORG": "grid",
        "INFLUX_BUCKET": "grid",
        "INFLUX_ADMIN_TOKEN": token,
        "NAMESPACE": "gridts",
        "TOKEN_SPECS": "[]",
        "WAIT_SECONDS": "20",
        **extra,
    }


def readiness_command(port: int) -> list[str]:
    """The chart's InfluxDB readiness probe, pointed at a test influxd's port."""
    sts = k.one(k.render_chart(), "StatefulSet", "-influxdb")
    probe = sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    command = [str(part) for part in probe["exec"]["command"]]
    assert any("8086" in part for part in command)
    return [part.replace("8086", str(port)) for part in command]


def ready(port: int) -> bool:
    proc = subprocess.run(readiness_command(port), capture_output=True, timeout=10, check=False)
    return proc.returncode == 0


def test_the_job_onboards_a_fresh_influxdb_and_readiness_follows(
    fresh_influx: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(fresh_influx.rsplit(":", 1)[1])
    assert not ready(port), "not ready before onboarding, although /health passes"
    admin_token = secrets.token_urlsafe(32)
    env = job_env(
        fresh_influx,
        admin_token,
        INFLUX_ONBOARD="true",
        INFLUX_ADMIN_USERNAME="admin",
        INFLUX_ADMIN_PASSWORD=secrets.token_urlsafe(16),
        INFLUX_RETENTION="52w",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tokens.main() == 0
    assert httpx.get(f"{fresh_influx}/api/v2/setup").json()["allowed"] is False
    assert ready(port)
    headers = {"Authorization": f"Token {admin_token}"}
    buckets = httpx.get(
        f"{fresh_influx}/api/v2/buckets", params={"name": "grid"}, headers=headers
    ).json()["buckets"]
    assert [b["orgID"] for b in buckets], "the bucket exists in the org the token sees"
    assert buckets[0]["retentionRules"][0]["everySeconds"] == 52 * 7 * 86400
    # Idempotent: a second run (the next revision's Job) finds it onboarded and does nothing.
    assert tokens.main() == 0


def test_an_influxdb_the_job_may_not_onboard_fails_at_once_with_exit_2(
    fresh_influx: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An external InfluxDB nobody onboarded: exit 2 (the Job fails without retries) and a
    message that says so, instead of waiting for a token that can never work."""
    for key, value in job_env(fresh_influx, "operator-token", INFLUX_ONBOARD="false").items():
        monkeypatch.setenv(key, value)
    assert tokens.main() == 2
    assert "not onboarded" in capsys.readouterr().err
    assert httpx.get(f"{fresh_influx}/api/v2/setup").json()["allowed"] is True, "left alone"


def test_a_wrong_admin_token_fails_at_once_with_exit_2(
    influx: InfluxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in job_env(influx.url, "not-the-admin-token", INFLUX_ONBOARD="true").items():
        monkeypatch.setenv(key, value)
    assert tokens.main() == 2
    assert "admin token" in capsys.readouterr().err


def test_onboarding_refused_by_influxdb_is_exit_2_with_its_reason(
    fresh_influx: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """InfluxDB wants passwords of 8 characters or more: its refusal is a configuration error."""
    env = job_env(
        fresh_influx,
        secrets.token_urlsafe(32),
        INFLUX_ONBOARD="true",
        INFLUX_ADMIN_PASSWORD="short",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tokens.main() == 2
    log = capsys.readouterr().err
    assert "refused onboarding" in log
    assert "password" in log


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("", 0), ("0", 0), ("0s", 0), ("1h", 3600), ("52w", 52 * 604800), ("1d12h", 129600)],
)
def test_retention_durations(text: str, seconds: int) -> None:
    assert tokens.retention_seconds(text) == seconds


@pytest.mark.parametrize("text", ["30m", "1 year", "52", "w"])
def test_retention_that_influxdb_would_refuse_is_bad_configuration(text: str) -> None:
    with pytest.raises(ValueError, match="retention"):
        tokens.retention_seconds(text)


# ---- two installs sharing one InfluxDB ---------------------------------------------------------


def kustomize_job_env() -> dict[str, str]:
    """The tokens Job's literal environment in the kustomize base (what every `kubectl apply
    -k` install runs, whatever its namespace)."""
    objects = k.kustomize_build(k.ROOT / "k8s" / "overlays" / "dev")
    (job,) = [o for o in objects if o["kind"] == "Job"]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if "value" in e}


def test_two_installs_on_one_influxdb_keep_each_others_tokens(
    influx: InfluxServer, bucket: str
) -> None:
    """Two kustomize installs (namespaces team-a and team-b) share an external InfluxDB. When
    one replaces its token (here its Secret was edited), the other's tokens keep working."""
    rendered = kustomize_job_env()
    installs = {}
    for namespace in ("team-a", "team-b"):
        env = rendered_job_env(influx, bucket, rendered, namespace)
        store = MemorySecrets()
        assert tokens.run(tokens.Config.from_env(env), store.as_factory()) == 0
        installs[namespace] = (tokens.Config.from_env(env), store)
    a_config, a_secrets = installs["team-a"]
    b_config, b_secrets = installs["team-b"]
    a_api, b_api = (s.data[(c.specs[0].secret, c.specs[0].key)] for c, s in installs.values())
    b_ingest = b_secrets.data[(b_config.specs[1].secret, b_config.specs[1].key)]
    assert a_api != b_api

    a_secrets.data[(a_config.specs[0].secret, a_config.specs[0].key)] = "edited"
    assert tokens.run(a_config, lambda _: a_secrets) == 0
    assert query(influx, bucket, b_api) == 200, "install team-a revoked team-b's API token"
    assert write(influx, bucket, b_ingest) == 204
    assert query(influx, bucket, a_secrets.data[(a_config.specs[0].secret, "token")]) == 200
    assert query(influx, bucket, a_api) == 401, "team-a's replaced token is revoked"
    client = tokens.Influx(influx.url, influx.token)
    try:
        org_id, _ = client.org_and_bucket(influx.org, bucket)
        descriptions = {a["description"] for a in client.authorizations(org_id)}
    finally:
        client.close()
    assert {"gridts team-a/gridts api (read-only)", "gridts team-b/gridts api (read-only)"} <= (
        descriptions
    )


# ---- rollup tier buckets, retention, and tokens that cover them --------------------------------


def chart_job_env(*sets: str, set_json: str | None = None) -> dict[str, str]:
    """The tokens Job's literal environment as the chart renders it (``set_json``: one
    `key={json}` value, e.g. a map of tier retentions)."""
    with tempfile.TemporaryDirectory() as tmp:
        values = []
        if set_json:
            key, _, text = set_json.partition("=")
            tree: dict[str, Any] = json.loads(text)
            for part in reversed(key.split(".")):
                tree = {part: tree}
            values.append(Path(tmp) / "values.yaml")
            values[0].write_text(json.dumps(tree))
        objects = k.render_chart(values=values, sets=sets)
    job = k.one(objects, "Job", "-tokens-1")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if "value" in e}


@pytest.fixture
def tier_cleanup(influx: InfluxServer, bucket: str) -> Iterator[None]:
    yield
    headers = {"Authorization": f"Token {influx.token}"}
    found = httpx.get(f"{influx.url}/api/v2/buckets", params={"limit": "100"}, headers=headers)
    for b in found.json()["buckets"]:
        if b["name"].startswith(f"{bucket}_"):
            httpx.delete(f"{influx.url}/api/v2/buckets/{b['id']}", headers=headers)


def rendered_job_env(
    influx: InfluxServer, bucket: str, rendered: dict[str, str], namespace: str = "gridts"
) -> dict[str, str]:
    """The tokens Job's environment as rendered, pointed at the test's influxd and bucket."""
    return {
        **rendered,
        "INFLUX_URL": influx.url,
        "INFLUX_ORG": influx.org,
        "INFLUX_BUCKET": bucket,
        "INFLUX_ADMIN_TOKEN": influx.token,
        "INFLUX_ONBOARD": "false",
        "NAMESPACE": namespace,
        "WAIT_SECONDS": "20",
    }


def job_run(
    influx: InfluxServer, bucket: str, rendered: dict[str, str], store: MemorySecrets
) -> int:
    config = tokens.Config.from_env(rendered_job_env(influx, bucket, rendered))
    return int(tokens.run(config, lambda _: store))


def retention_of(influx: InfluxServer, name: str) -> int | None:
    headers = {"Authorization": f"Token {influx.token}"}
    found = httpx.get(
        f"{influx.url}/api/v2/buckets", params={"name": name}, headers=headers
    ).json()["buckets"]
    if not found:
        return None
    rules = found[0]["retentionRules"]
    return int(rules[0]["everySeconds"]) if rules else 0


def listed(influx: InfluxServer, token: str) -> set[str]:
    """The buckets a token can list: exactly those it may read."""
    response = httpx.get(
        f"{influx.url}/api/v2/buckets",
        params={"org": influx.org},
        headers={"Authorization": f"Token {token}"},
    )
    return {b["name"] for b in response.json()["buckets"]} if response.status_code == 200 else set()


def secret_tokens(store: MemorySecrets) -> tuple[str, str]:
    api = store.data[("grid-gridts-api-influx-token", "token")]
    ingest = store.data[("grid-gridts-ingest-influx-token", "token")]
    return api, ingest


DENIED = (401, 403, 404)


def test_the_job_makes_tier_buckets_with_retention_and_tokens_that_cover_them(
    influx: InfluxServer, bucket: str, tier_cleanup: None
) -> None:
    """The chart's tokens Job (its rendered environment) against a real influxd: the tier
    buckets exist with their retention, the raw bucket gets influxdb.retention, the API's token
    reads raw and tiers and writes nothing, the ingest's token reads and writes raw and tiers
    (what the ingest's own code needs: it sees every tier bucket), and a second run keeps both."""
    rendered = chart_job_env("influxdb.retention=104w", set_json='tiers.retention={"1m":"90d"}')
    assert rendered["TIERS"] == "1m,15m,1h"
    store = MemorySecrets()
    assert job_run(influx, bucket, rendered, store) == 0
    tiers = [f"{bucket}_1m", f"{bucket}_15m", f"{bucket}_1h"]
    assert retention_of(influx, bucket) == 104 * 7 * 86400
    assert [retention_of(influx, t) for t in tiers] == [90 * 86400, 0, 0]

    api, ingest = secret_tokens(store)
    for name in [bucket, *tiers]:
        assert query(influx, name, api) == 200, name
        assert write(influx, name, api) in DENIED, name
        assert query(influx, name, ingest) == 200, name
        assert write(influx, name, ingest) == 204, name
    assert listed(influx, api) == listed(influx, ingest) == {bucket, *tiers}
    assert query(influx, influx.bucket, api) in DENIED, "other buckets stay out of reach"
    assert write(influx, influx.bucket, ingest) in DENIED

    # The ingest's own code finds every tier bucket with its token (else it writes raw only).
    from gridts.tiers import parse_tiers
    from ingest.rollup import Influx as RollupInflux
    from ingest.rollup import missing_tier_buckets
    from ingest.writer import Target

    rollup = RollupInflux(Target(url=influx.url, org=influx.org, bucket=bucket, token=ingest))
    try:
        assert missing_tier_buckets(rollup, parse_tiers(rendered["TIERS"])) == []
    finally:
        rollup.close()

    # The scope keys the pods refer to are in the Secrets.
    specs = {s["action"]: s for s in json.loads(rendered["TOKEN_SPECS"])}
    for action, secret_bucket in (("read", "api"), ("read-write", "ingest")):
        key = (f"grid-gridts-{secret_bucket}-influx-token", specs[action]["scope_key"])
        assert store.data[key] == f"{action} {','.join([bucket, *tiers])}"

    # A second run (the next revision's Job) keeps tokens and buckets; a changed retention is set.
    writes = store.writes
    again = chart_job_env("influxdb.retention=104w", set_json='tiers.retention={"1m":"30d"}')
    assert job_run(influx, bucket, again, store) == 0
    assert secret_tokens(store) == (api, ingest)
    assert store.writes == writes
    assert retention_of(influx, f"{bucket}_1m") == 30 * 86400
    assert query(influx, f"{bucket}_1h", api) == 200
    assert write(influx, f"{bucket}_1h", ingest) == 204


def test_changed_tiers_replace_the_tokens_and_revoke_the_old_ones(
    influx: InfluxServer, bucket: str, tier_cleanup: None
) -> None:
    store = MemorySecrets()
    assert job_run(influx, bucket, chart_job_env(), store) == 0
    old_api, old_ingest = secret_tokens(store)
    old_keys = set(store.data)
    assert job_run(influx, bucket, chart_job_env("tiers.list=1m"), store) == 0
    api, ingest = secret_tokens(store)
    assert api != old_api
    assert ingest != old_ingest
    assert listed(influx, api) == listed(influx, ingest) == {bucket, f"{bucket}_1m"}
    assert query(influx, bucket, old_api) == 401, "the replaced token is deleted"
    assert write(influx, bucket, old_ingest) == 401
    assert set(store.data).isdisjoint(old_keys - {k for k in old_keys if k[1] == "token"}), (
        "the new Secrets hold the new scope keys only"
    )
    # Tiers off: tokens of the raw bucket only; the tier buckets made before are left alone.
    assert job_run(influx, bucket, chart_job_env("tiers.list="), store) == 0
    api, ingest = secret_tokens(store)
    assert listed(influx, api) == {bucket}
    assert retention_of(influx, f"{bucket}_1m") == 0


def test_upgrade_replaces_the_tokens_of_an_older_release(
    influx: InfluxServer, bucket: str, tier_cleanup: None
) -> None:
    """A release made before the tiers: a read-only API token and a write-only ingest token of
    the raw bucket ("ingest (write-only)"), Secrets without scope keys. The upgrade's Job
    replaces both (their permissions cannot be edited) and deletes the old authorizations."""
    old_specs = json.dumps(
        [
            {"secret": "grid-gridts-api-influx-token", "key": "token", "action": "read",
             "purpose": "api (read-only)"},
            {"secret": "grid-gridts-ingest-influx-token", "key": "token", "action": "write",
             "purpose": "ingest (write-only)"},
        ]
    )  # fmt: skip
    store = MemorySecrets()
    assert job_run(influx, bucket, {"TOKEN_SPECS": old_specs, "RELEASE": "grid"}, store) == 0
    old_api, old_ingest = secret_tokens(store)
    assert listed(influx, old_ingest) == set(), "write-only: the ingest would see no tier bucket"

    assert job_run(influx, bucket, chart_job_env(), store) == 0
    api, ingest = secret_tokens(store)
    assert (api, ingest) != (old_api, old_ingest)
    tiers = {f"{bucket}_1m", f"{bucket}_15m", f"{bucket}_1h"}
    assert listed(influx, api) == listed(influx, ingest) == {bucket, *tiers}
    assert query(influx, bucket, old_api) == 401
    assert write(influx, bucket, old_ingest) == 401, "the old write-only token is deleted"
    assert write(influx, f"{bucket}_15m", ingest) == 204


@pytest.mark.parametrize("raw", ["1h", "0s"])
def test_raw_retention_is_set_on_every_run(
    influx: InfluxServer, bucket: str, tier_cleanup: None, raw: str
) -> None:
    """Down to InfluxDB's minimum of 1h, below the 7-day shard groups of a bucket kept forever
    (InfluxDB refuses that unless the shard-group duration comes down too), and back."""
    store = MemorySecrets()
    assert job_run(influx, bucket, chart_job_env(f"influxdb.retention={raw}"), store) == 0
    assert retention_of(influx, bucket) == tokens.retention_seconds(raw)
    assert job_run(influx, bucket, chart_job_env("influxdb.retention=30d"), store) == 0
    assert retention_of(influx, bucket) == 30 * 86400


def test_bad_tiers_are_bad_configuration() -> None:
    for tiers, retention in (("7m", ""), ("1m,15m", "5m=1d"), ("1m", "1m=30m")):
        with pytest.raises(ValueError, match=r"tier|retention"):
            tokens.Config.from_env(
                job_env("http://127.0.0.1:1", "t", TIERS=tiers, TIER_RETENTION=retention)
            )
