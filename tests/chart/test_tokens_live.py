"""The chart's tokens module (charts/gridts/files/influx_tokens.py) against a real influxd.

The Kubernetes half (Secrets) is replaced by a dict-backed store, since there is no cluster;
the InfluxDB half is real: the read-only token reads and cannot write, the write-only token
writes and cannot read, and a second run keeps valid tokens instead of piling up new ones.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.chart.k8scheck import CHART
from tests.conftest import InfluxServer


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "influx_tokens", CHART / "files" / "influx_tokens.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["influx_tokens"] = module
    spec.loader.exec_module(module)
    return module


tokens = load_module()


@pytest.fixture
def client(influx: InfluxServer) -> Iterator[Any]:
    influx_client = tokens.Influx(influx.url, influx.token)
    yield influx_client
    influx_client.close()


class MemorySecrets:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}
        self.writes = 0

    def read(self, name: str, key: str) -> str | None:
        return self.data.get((name, key))

    def write(self, name: str, key: str, token: str, labels: dict[str, str]) -> None:
        assert labels["app.kubernetes.io/part-of"] == "gridts"
        self.data[(name, key)] = token
        self.writes += 1


@pytest.fixture
def specs(bucket: str) -> list[object]:
    raw = json.dumps(
        [
            {"secret": "api", "key": "token", "action": "read", "description": f"{bucket} api"},
            {
                "secret": "ingest",
                "key": "token",
                "action": "write",
                "description": f"{bucket} ingest",
            },
        ]
    )
    return list(tokens.parse_specs(raw))


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
        tokens.ensure(client, secrets, spec, influx.org, bucket)
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
        tokens.ensure(client, secrets, spec, influx.org, bucket)
    first = dict(secrets.data)
    for spec in specs:
        tokens.ensure(client, secrets, spec, influx.org, bucket)
    assert secrets.data == first
    assert secrets.writes == 2

    secrets.data[("api", "token")] = "lost-or-edited"
    tokens.ensure(client, secrets, specs[0], influx.org, bucket)
    assert secrets.data[("api", "token")] not in (first[("api", "token")], "lost-or-edited")
    org_id, _ = client.org_and_bucket(influx.org, bucket)
    described = [a for a in client.authorizations(org_id) if a["description"] == f"{bucket} api"]
    assert len(described) == 1, "the superseded authorization is deleted"
    assert query(influx, bucket, first[("api", "token")]) == 401

    # A token with more rights than wanted (here the operator's all-access one) is replaced too.
    secrets.data[("ingest", "token")] = influx.token
    tokens.ensure(client, secrets, specs[1], influx.org, bucket)
    assert secrets.data[("ingest", "token")] != influx.token
    assert write(influx, bucket, secrets.data[("ingest", "token")]) == 204


def test_bad_configuration_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFLUX_URL", raising=False)
    assert tokens.main() == 2
