"""The API's settings (app.settings): from the environment and from mounted secrets."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_api_tokens_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import load_settings

    for key, value in {
        "INFLUX_URL": "http://127.0.0.1:1",
        "INFLUX_ORG": "o",
        "INFLUX_BUCKET": "b",
        "INFLUX_TOKEN": "t",
        "API_TOKENS": " a1 ,b2,, ",
        "API_MAX_POINTS": "500",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.bearer_tokens() == ("a1", "b2")
    assert settings.api_max_points == 500
    assert "a1" not in repr(settings)
    assert "t'" not in repr(settings.influx_token)


def test_settings_from_mounted_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Files named like the variables, as a Kubernetes Secret mounts them, configure the API."""
    from app import settings as module
    from gridts import settings as mounted

    secrets_dir = tmp_path
    for key, value in {
        "INFLUX_URL": "http://influxdb:8086",
        "INFLUX_ORG": "grid",
        "INFLUX_BUCKET": "grid",
        "INFLUX_TOKEN": "from-a-file",
        "API_TOKENS": "s1,s2",
    }.items():
        (secrets_dir / key).write_text(value + "\n")
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(mounted, "SECRETS_DIR", secrets_dir)
    loaded = module.Settings(_secrets_dir=secrets_dir)
    assert loaded.influx_token.get_secret_value() == "from-a-file"
    assert loaded.bearer_tokens() == ("s1", "s2")
    monkeypatch.setenv("API_TOKENS", "from-env")
    assert module.Settings(_secrets_dir=secrets_dir).bearer_tokens() == ("from-env",)
