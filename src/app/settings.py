"""The API's configuration: one settings object, built when the service starts, never at import."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from gridts.settings import MountedSettings
from gridts.tiers import DEFAULT_TIERS, Tier, parse_tiers


class Settings(MountedSettings):
    """Environment variables (and files of the same name under /run/secrets) for the API."""

    influx_url: str = Field(description="InfluxDB base URL, e.g. http://influxdb:8086")
    influx_org: str = Field(description="InfluxDB organisation")
    influx_bucket: str = Field(description="bucket holding one measurement per series")
    influx_token: SecretStr = Field(description="InfluxDB token; read access is enough")
    api_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="comma-separated bearer tokens; when set, every /v1 route requires one",
    )
    api_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all its interfaces
    api_port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    api_query_timeout_seconds: float = Field(default=30.0, gt=0)
    api_max_points: int = Field(default=100_000, ge=1)
    api_catalog_ttl_seconds: float = Field(default=30.0, ge=0)
    api_heavy_queries: int = Field(
        default=2,
        ge=1,
        description="queries without storage pushdown (median, stddev, tz) run at once per process",
    )
    api_heavy_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how long such a query waits for a slot before the API answers 429",
    )
    api_concurrent_requests: int = Field(
        default=4,
        ge=0,
        description="data requests at work at once per process; the rest wait their turn in "
        "the order they came (429 after API_QUERY_TIMEOUT_SECONDS); 0: no limit",
    )
    api_influxql_reads: bool = Field(
        default=True,
        description="plain reads of points (raw points, a tier's stored windows) asked in "
        "InfluxQL on InfluxDB's v1 /query, in about half the time Flux takes; Flux answers "
        "whatever InfluxQL cannot (ADR 0018); false: Flux only",
    )
    api_max_scan_points: int = Field(
        default=500_000,
        ge=1,
        description="most stored points a median or stddev may read (the API computes those "
        "from the raw points, about a million points/s; Flux, above a million points, about "
        "150,000 points/s per core)",
    )

    api_pending_refresh_seconds: float = Field(
        default=2.0,
        ge=0,
        description="how often the API reads the tiers' pending-rollup markers (a load writing "
        "raw points the tiers do not hold yet); markers unread for ten times this (at least "
        "60 s) answer from the raw points only; 0: only with the catalog "
        "(API_CATALOG_TTL_SECONDS)",
    )
    api_tiers: str = Field(
        default=DEFAULT_TIERS,
        description="rollup tiers the API may answer from, e.g. 1m,15m,1h (buckets "
        "<INFLUX_BUCKET>_<tier>, used when they exist and the token can read them); empty: "
        "always the raw points",
    )

    @field_validator("api_tiers")
    @classmethod
    def _valid_tiers(cls, value: str) -> str:
        parse_tiers(value)  # ValueError names the bad tier
        return value

    def tiers(self) -> tuple[Tier, ...]:
        """The configured tiers, finest first."""
        return parse_tiers(self.api_tiers)

    def bearer_tokens(self) -> tuple[str, ...]:
        """The configured API tokens; empty when auth is off."""
        raw = self.api_tokens.get_secret_value()
        return tuple(t.strip() for t in raw.split(",") if t.strip())


def load_settings() -> Settings:
    """Settings from the environment and, when mounted, from files in /run/secrets."""
    return Settings()
