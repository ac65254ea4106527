"""Settings from the environment and from files under /run/secrets, for the API and the ingest.

Kubernetes mounts a Secret's keys as files; pydantic-settings reads a file named like a field
(`influx_token`) as that field's value. Outside Kubernetes the directory does not exist, and
reading it would only warn, so it is then left out.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SECRETS_DIR = Path("/run/secrets")


class MountedSettings(BaseSettings):
    """Fields from the environment (case-insensitive), then from files under ``SECRETS_DIR``."""

    model_config = SettingsConfigDict(
        secrets_dir=str(SECRETS_DIR), case_sensitive=False, extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if SECRETS_DIR.is_dir():
            return init_settings, env_settings, dotenv_settings, file_secret_settings
        return init_settings, env_settings, dotenv_settings
