"""Backup and restore against real influxd instances (issue 13).

One story per module, in order: an InfluxDB filled by the ingest with Swissgrid's real series and
a generated 1 s day (plus a second bucket); a full backup; its data directory deleted and a fresh
influxd started on it; the backup restored: every series' count, sum, first and last identical,
the API (with a read-only token made before the backup) answering as before; one bucket restored
under a new name on the running instance; the refusals (a target holding data, a token the backup
does not know, a token that is not the operator's); damaged backups refused by verify and restore
with the target untouched.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from tests.app.conftest import AppClient, make_settings
from tests.conftest import InfluxServer
from tests.ops.conftest import (
    ENDUSE,
    LOSSES,
    MakeServer,
    Stats,
    generate_day,
    ingest,
    ops,
    stats,
)

pytestmark = pytest.mark.timeout(900)


@dataclass
class Source:
    server: InfluxServer
    api_token: str  # read-only on the bucket "grid", as the chart's tokens Job makes it
    stats: Stats
    backups: Path
    backup: Path  # the full backup's folder
    summary: dict[str, Any]


def read_only_token(server: InfluxServer, bucket: str) -> str:
    with InfluxDBClient(url=server.url, token=server.token, org=server.org) as client:
        org_id = client.organizations_api().find_organizations(org=server.org)[0].id
        bucket_id = client.buckets_api().find_bucket_by_name(bucket).id
    response = httpx.post(
        f"{server.url}/api/v2/authorizations",
        headers={"Authorization": f"Token {server.token}"},
        json={
            "orgID": org_id,
            "description": "gridts test api (read-only)",
            "permissions": [
                {
                    "action": "read",
                    "resource": {"type": "buckets", "id": bucket_id, "orgID": org_id},
                }
            ],
        },
    )
    response.raise_for_status()
    return str(response.json()["token"])


API_RANGE = {"start": "2018-12-31T00:00:00Z", "end": "2022-01-02T00:00:00Z"}


async def api_answers(server: InfluxServer, token: str) -> dict[str, Any]:
    """What the API answers over the bucket "grid": the catalog, every series' daily count and
    sum over all its data, and an hour of the 1 s series at full resolution."""
    answers: dict[str, Any] = {}
    settings = make_settings(server, "grid", influx_token=token)
    async with AppClient(settings) as api:
        catalog = await api.get("/v1/series")
        assert catalog.status_code == 200, catalog.text
        answers["/v1/series"] = catalog.json()
        names = sorted(s["name"] for s in catalog.json()["series"])
        for name in names:
            for agg in ("count", "sum"):
                url = f"/v1/series/{name}/data"
                params = {**API_RANGE, "resolution": "1d", "agg": agg}
                resp = await api.get(url, params=params)
                assert resp.status_code == 200, resp.text
                answers[f"{url}?{agg}"] = resp.json()
        raw = await api.get(
            "/v1/series/f_day/data",
            params={"start": "2021-06-01T10:00:00Z", "end": "2021-06-01T11:00:00Z",
                    "resolution": "raw"},
        )  # fmt: skip
        assert raw.status_code == 200, raw.text
        answers["raw"] = raw.json()
    return answers


@pytest.fixture(scope="module")
def source(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """An InfluxDB with the real series, a 1 s day and a second bucket, backed up once."""
    server = make_server("source")
    server.start()
    files = tmp_path_factory.mktemp("files")
    ingest(server, "grid", str(LOSSES), "--series", "active_losses", "--label", "end",
           "--step", "15m")  # fmt: skip
    ingest(server, "grid", str(ENDUSE), "--series", "enduse", "--label", "end", "--step", "15m")
    day = generate_day(files / "day.csv", "2021-06-01", "f_day", 1)
    ingest(server, "grid", str(day), "--label", "end")
    with InfluxDBClient(url=server.url, token=server.token, org=server.org) as client:
        client.buckets_api().create_bucket(bucket_name="other", org=server.org)
        lines = "\n".join(
            f"site.load,site=north,unit=MW value={i * 0.5} {1620000000 + 3600 * i}"
            for i in range(500)
        )
        client.write_api(write_options=SYNCHRONOUS).write(
            "other", server.org, lines, write_precision="s"
        )
    api_token = read_only_token(server, "grid")
    before = stats(server)
    assert {k[1] for k in before} >= {"active_losses", "enduse", "f_day", "site.load"}
    assert before[("grid", "f_day")][0] == 86_400
    assert before[("grid", "active_losses")][0] == 105_216
    backups = tmp_path_factory.mktemp("backups")
    done = ops(server, "backup", "--dir", str(backups))
    assert done.code == 0, done.stderr
    return Source(server, api_token, before, backups, Path(str(done.summary["backup"])),
                  done.summary)  # fmt: skip


# ---- the backup ---------------------------------------------------------------------------------


def test_full_backup_has_metadata_every_shard_and_a_manifest(source: Source) -> None:
    manifest = json.loads((source.backup / "manifest.json").read_text())
    assert manifest["scope"] == {"kind": "full"}
    kinds = [f["kind"] for f in manifest["files"]]
    assert kinds.count("kv") == kinds.count("sql") == kinds.count("buckets") == 1
    buckets = {b["bucket"]: b for b in manifest["buckets"]}
    assert {"grid", "other", "_monitoring", "_tasks"} <= set(buckets)
    shards = [f for f in manifest["files"] if f["kind"] == "shard"]
    # Every shard the bucket manifest names is in the backup (nothing was deleted meanwhile).
    assert sorted(f["shard"] for f in shards) == sorted(
        s for b in manifest["buckets"] for s in b["shards"]
    )
    assert len(buckets["grid"]["shards"]) > 100  # 2019-2021 in 7-day shard groups
    assert manifest["counts"]["shards"] == len(shards)
    assert manifest["counts"]["files"] == len(manifest["files"])
    assert manifest["counts"]["bytes"] == sum(f["bytes"] for f in manifest["files"])
    assert manifest["counts"]["tsmFiles"] >= len(shards) - 1
    for entry in manifest["files"]:
        data = (source.backup / entry["path"]).read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert gzip.decompress((source.backup / "kv.bolt.gz").read_bytes())[16:20] == bytes.fromhex(
        "EDDA0CED"
    )
    assert source.summary["counts"] == manifest["counts"]
    assert source.summary["skippedShards"] == []


def test_verify_passes_a_sound_backup(source: Source) -> None:
    for path in (source.backups, source.backup):
        done = ops(None, "verify", str(path))
        assert done.code == 0, done.stderr
        (result,) = done.summary["backups"]
        assert result["ok"] is True
        assert "sound" in done.stderr


# ---- full restore onto a wiped InfluxDB ----------------------------------------------------------


async def test_full_restore_onto_a_wiped_data_directory(source: Source) -> None:
    server = source.server
    answers_before = await api_answers(server, source.api_token)
    server.stop()
    shutil.rmtree(server.data_dir)
    server.start()  # a fresh influxd, onboarded with the same operator token (the kept Secret)
    assert stats(server) == {}
    done = ops(server, "restore", str(source.backups), "--full")
    assert done.code == 0, done.stderr
    assert done.summary["mode"] == "full"
    assert done.summary["operatorTokenChanged"] is False
    assert done.summary["shards"] == source.summary["counts"]["shards"]
    assert stats(server) == source.stats
    # The read-only token made before the backup works again, and the API answers the same.
    assert await api_answers(server, source.api_token) == answers_before


def test_one_bucket_restored_under_a_new_name_on_a_running_influxdb(source: Source) -> None:
    server = source.server
    done = ops(server, "restore", str(source.backup), "--bucket", "grid", "--new-bucket",
               "grid_check")  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.summary["buckets"] == ["grid/grid_check"]
    now = stats(server)
    for (bucket, series), values in source.stats.items():
        if bucket == "grid":
            assert now[("grid_check", series)] == values, series
            assert now[("grid", series)] == values, series
    again = ops(server, "restore", str(source.backup), "--bucket", "grid", "--new-bucket",
                "grid_check")  # fmt: skip
    assert again.code == 2
    assert "exists" in str(again.summary["error"])


def test_full_restore_refuses_an_influxdb_holding_data(source: Source) -> None:
    before = stats(source.server)
    done = ops(source.server, "restore", str(source.backups), "--full")
    assert done.code == 2
    assert "holds data" in str(done.summary["error"])
    assert stats(source.server) == before


def test_full_restore_with_another_operator_token(source: Source, make_server: MakeServer) -> None:
    """A fresh InfluxDB onboarded with another token: the restore replaces every token with the
    backed-up ones, so it refuses unless given the backed-up operator token (before writing)."""
    target = make_server("other-token")
    target.start()
    refused = ops(target, "restore", str(source.backups), "--full")
    assert refused.code == 2
    assert "not an operator token of the backup" in str(refused.summary["error"])
    assert stats(target) == {}  # untouched: its own token still works, no data
    done = ops(target, "restore", str(source.backups), "--full",
               INFLUX_BACKUP_TOKEN=source.server.token)  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.summary["operatorTokenChanged"] is True
    assert stats(target, token=source.server.token) == source.stats
    gone = httpx.get(
        f"{target.url}/api/v2/buckets", headers={"Authorization": f"Token {target.token}"}
    )
    assert gone.status_code == 401, "the target's own token is replaced by the backup's"


def test_backup_needs_the_operator_token(source: Source, tmp_path: Path) -> None:
    """An all-access token of the organization is not enough: InfluxDB checks operator
    permissions on the backup endpoints (ADR 0012)."""
    server = source.server
    headers = {"Authorization": f"Token {server.token}"}
    kinds = httpx.get(f"{server.url}/api/v2/resources", headers=headers).json()
    with InfluxDBClient(url=server.url, token=server.token, org=server.org) as client:
        org_id = client.organizations_api().find_organizations(org=server.org)[0].id
    permissions = [
        {"action": action, "resource": {"type": kind, "orgID": org_id}}
        for kind in kinds
        if kind not in ("orgs", "users", "instance")
        for action in ("read", "write")
    ]
    created = httpx.post(f"{server.url}/api/v2/authorizations", headers=headers,
                         json={"orgID": org_id, "permissions": permissions,
                               "description": "all-access of one organization"})  # fmt: skip
    assert created.status_code == 201, created.text
    done = ops(server, "backup", "--dir", str(tmp_path), INFLUX_TOKEN=created.json()["token"])
    assert done.code == 2
    assert "operator token" in str(done.summary["error"])
    assert list(tmp_path.iterdir()) == [], "nothing left behind"


# ---- damaged backups ---------------------------------------------------------------------------


def damage(folder: Path, how: str) -> str:
    """Damages the largest shard file of a backup copy; its name."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = max((f for f in manifest["files"] if f["kind"] == "shard"), key=lambda f: f["bytes"])
    path = folder / entry["path"]
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    if how == "flipped, manifest rewritten":  # written wrong in the first place: only the
        entry["sha256"] = hashlib.sha256(data).hexdigest()  # read-back can tell
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(entry["path"])


@pytest.mark.parametrize("how", ["one byte flipped", "truncated", "flipped, manifest rewritten"])
def test_a_damaged_backup_is_refused_by_verify_and_restore(
    source: Source, make_server: MakeServer, tmp_path: Path, how: str
) -> None:
    copy = tmp_path / source.backup.name
    shutil.copytree(source.backup, copy)
    name = damage(copy, how)
    checked = ops(None, "verify", str(copy))
    assert checked.code == 3
    problems = checked.summary["problems"]
    assert isinstance(problems, list)
    assert len(problems) == 1
    assert name in problems[0]
    expected = {"truncated": "truncated", "one byte flipped": "SHA-256"}.get(how, "unreadable")
    assert expected in problems[0], problems
    assert expected in checked.stderr
    # A full restore onto an empty InfluxDB: refused before anything is written.
    target = make_server(f"damaged-{how.split()[0]}")
    target.start()
    refused = ops(target, "restore", str(copy), "--full")
    assert refused.code == 3, refused.stderr
    assert name in str(refused.summary["error"])
    assert stats(target) == {}
    assert (
        httpx.get(
            f"{target.url}/api/v2/buckets", headers={"Authorization": f"Token {target.token}"}
        ).status_code
        == 200
    ), "the target's metadata (and token) untouched"
    target.stop()
    # One bucket into a running InfluxDB: refused, no bucket made.
    before = stats(source.server)
    refused = ops(source.server, "restore", str(copy), "--bucket", "grid", "--new-bucket",
                  "grid_damaged")  # fmt: skip
    assert refused.code == 3
    assert stats(source.server) == before
