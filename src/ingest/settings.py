"""The ingest's configuration: one settings object, built when a command starts, never at import.

Environment variables (and, mounted as in the API, files of the same name under /run/secrets):
the InfluxDB connection (``INFLUX_URL``, ``INFLUX_ORG``, ``INFLUX_BUCKET``, ``INFLUX_TOKEN``;
flags override them) and the defaults of the write knobs (``INGEST_EXISTING``, ``INGEST_TIERS``,
``INGEST_SHARD``, ``INGEST_TIER_RETENTION``). The knobs are kept as text here: the commands check
them as they check the flags, so a bad value gets the same message either way.

``ConfigError`` is a configuration problem (a missing token, no InfluxDB URL), not a problem of
the file being loaded (``dialect.DialectError``); both exit 2.
"""

from __future__ import annotations

from pydantic import SecretStr

from gridts.settings import MountedSettings
from gridts.tiers import DEFAULT_TIERS
from ingest.writer import Target


class ConfigError(ValueError):
    """The configuration (environment, secrets, flags) is incomplete or invalid."""


class Settings(MountedSettings):
    """Environment variables (and files of the same name under /run/secrets) for the ingest."""

    influx_url: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_token: SecretStr | None = None
    ingest_existing: str = "report"  # --existing
    ingest_tiers: str = DEFAULT_TIERS  # --tiers
    ingest_shard: str = ""  # --shard; empty: the whole file
    ingest_tier_retention: str = ""  # tiers --retention; empty: kept forever

    def target(
        self,
        url: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        token: str | None = None,
    ) -> Target:
        """The flags, else the INFLUX_* settings; ConfigError naming every one missing."""
        secret = self.influx_token.get_secret_value() if self.influx_token is not None else None
        values = {
            "url": url or self.influx_url,
            "org": org or self.influx_org,
            "bucket": bucket or self.influx_bucket,
            "token": token or secret,
        }
        missing = [f"INFLUX_{k.upper()}" for k, v in values.items() if not v]
        if missing:
            raise ConfigError(f"no InfluxDB connection: set {', '.join(missing)} (or the flags)")
        return Target(**{k: str(v) for k, v in values.items()})


def load_settings() -> Settings:
    """Settings from the environment and, when mounted, from files in /run/secrets."""
    return Settings()
