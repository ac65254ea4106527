"""The ingest's settings (issue 12, item 2): INFLUX_* and the INGEST_* defaults from the
environment or mounted secrets, flags first; a missing connection is a ConfigError, not a
file-format error, and exits 2 as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridts import settings as mounted
from ingest.cli import build_parser, main
from ingest.dialect import DialectError
from ingest.settings import ConfigError, Settings

CONNECTION = ("INFLUX_URL", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*CONNECTION, "INGEST_EXISTING", "INGEST_TIERS", "INGEST_SHARD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_missing_token_is_a_config_error_naming_it(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("INFLUX_URL", "http://influx:8086")
    with pytest.raises(ConfigError, match="set INFLUX_ORG, INFLUX_BUCKET, INFLUX_TOKEN") as info:
        Settings().target()
    assert not isinstance(info.value, DialectError)


def test_flags_override_the_environment(bare_env: pytest.MonkeyPatch) -> None:
    for name in CONNECTION:
        bare_env.setenv(name, f"env-{name}")
    target = Settings().target(url="http://flag", token="flag-token")
    assert (target.url, target.org, target.bucket, target.token) == (
        "http://flag", "env-INFLUX_ORG", "env-INFLUX_BUCKET", "flag-token",
    )  # fmt: skip


def test_mounted_secrets_are_read(bare_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "influx_token").write_text("from-a-secret")
    bare_env.setattr(mounted, "SECRETS_DIR", tmp_path)
    for name in CONNECTION[:3]:
        bare_env.setenv(name, "x")
    assert Settings(_secrets_dir=tmp_path).target().token == "from-a-secret"


def test_the_ingest_defaults_come_from_the_settings(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("INGEST_EXISTING", "unchecked")
    bare_env.setenv("INGEST_TIERS", "1m")
    args = build_parser(Settings()).parse_args(["load", "a.csv"])
    assert args.existing == "unchecked"
    assert [t.text for t in args.tiers] == ["1m"]


def test_a_missing_token_still_exits_2(
    bare_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("01.01.2021 00:15;50\n")
    assert main(["load", str(path), "--series", "f", "--quiet"]) == 2
    assert "no InfluxDB connection: set INFLUX_URL" in capsys.readouterr().err
