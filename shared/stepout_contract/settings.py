"""Settings from the environment (CONTRACT §9), read once per process."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Who may call the HTTP `/v1/` routes: both roles read every one of them (CONTRACT §9).
API_ROLES = ("platform", "auditor")


class SettingsError(ValueError):
    """A bad setting; the message is one line naming the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEPOUT_", extra="ignore", frozen=True)

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = None
    nats_token: str | None = None
    nats_creds: Path | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    subject_prefix: str = Field("stepout", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    data_dir: Path = Path("./var")
    store: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: str | None = None
    # Each service keeps its tables in schema "<postgres_schema>_<service>" (additive).
    postgres_schema: str = Field("stepout", pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    # The master key (base64 of 16, 24 or 32 bytes). Unset in development: one is made on first start
    # under the data directory. Every key stepout uses is wrapped under a key derived from it.
    cipher_key: str | None = None
    # "production" refuses to start without a master key and API tokens it was given.
    environment: Literal["development", "production"] = "development"
    # Where the key store lives when it is not the data directory's keys.db (a PostgreSQL DSN): keep it
    # where the event store's backups are not, so that destroying a participant's key erases for good.
    keystore_dsn: str | None = None
    # `ROLE:TOKEN,...` for the HTTP `/v1/` routes (CONTRACT §7); unset: a token made on first start.
    api_tokens: str | None = None
    planner_port: int = Field(8081, ge=0, le=65535)
    tracker_port: int = Field(8082, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    # The console for coaches and auditors (additive). Accounts: `NAME:ROLE:COACH_ID:HASH` entries, comma-
    # or newline-separated, in the setting or in a file (`stepout console hash-password` makes HASH);
    # unset in development: two accounts made on first start under the data directory.
    console_port: int = Field(8083, ge=0, le=65535)
    console_users: str | None = None
    console_users_file: Path | None = None
    # Signs the console's session cookies; unset: a secret made on first start under the data directory.
    console_secret: str | None = Field(None, min_length=32)
    # Sessions only over HTTPS (set it behind a TLS-terminating proxy).
    console_secure_cookies: bool = False
    ruleset: Path | None = None
    catalog: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Ingest tuning (additive): batch size of the pull consumer and its redelivery bound.
    batch_size: int = Field(500, ge=1, le=5000)
    max_deliver: int = Field(20, ge=2)
    # Several trackers (PostgreSQL only): inputs are split into this many partitions by user id;
    # each partition is consumed by one tracker at a time. Every service must use the same value.
    tracker_partitions: int = Field(1, ge=1, le=64)
    # How many trackers are expected to share the partitions (each takes its fair share first).
    tracker_replicas: int = Field(1, ge=1, le=64)
    # The same for planners (PostgreSQL only): the partitions split the planner's inputs too.
    planner_replicas: int = Field(1, ge=1, le=64)
    # Replicas of every stream (a JetStream cluster: 3). Unset: a new stream gets 1 and an existing one
    # keeps the count it has (an operator's `nats stream edit --replicas`).
    stream_replicas: int | None = Field(None, ge=1, le=5)
    # Seconds JetStream waits for an ack before redelivering (a crashed consumer's messages come back then).
    ack_wait_seconds: float = Field(30.0, ge=1.0, le=3600.0)
    # Byte limits of the three streams. A full input or output stream refuses publishes (its publishers
    # retry) rather than drop what no consumer has read yet; a full dead-letter stream drops its oldest.
    in_stream_max_bytes: int = Field(1024**3, gt=0)
    out_stream_max_bytes: int = Field(1024**3, gt=0)
    dlq_stream_max_bytes: int = Field(256 * 1024**2, gt=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        for url in value.split(","):
            if not re.match(r"^(nats|tls|ws|wss)://[^\s/]+$", url.strip()):
                raise ValueError(f"not a NATS URL: {url!r}")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _api_tokens(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        for entry in value.split(","):
            role, _, token = entry.strip().partition(":")
            if role not in API_ROLES:
                raise ValueError(f"each entry must be ROLE:TOKEN with ROLE one of {', '.join(API_ROLES)}")
            if len(token) < 16:
                raise ValueError("each token must be at least 16 characters")
        return value

    @field_validator("cipher_key")
    @classmethod
    def _cipher_key(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        if len(raw) not in (16, 24, 32):
            raise ValueError("must decode to 16, 24 or 32 bytes")
        return value

    @field_validator(
        "nats_creds", "nats_tls_ca", "nats_tls_cert", "nats_tls_key", "ruleset", "catalog", "console_users_file"
    )
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and str(value) != "" and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value if value is None or str(value) != "" else None

    def check_store(self) -> None:
        if self.store == "postgres" and not self.postgres_dsn:
            raise SettingsError("STEPOUT_POSTGRES_DSN: required when STEPOUT_STORE=postgres")

    def check_service(self) -> None:
        """What a planner or tracker needs in production (the console needs neither: it holds no key
        and serves no `/v1/` route; it checks its own settings)."""
        if self.environment == "production":
            if self.cipher_key is None:
                raise SettingsError("STEPOUT_CIPHER_KEY: required when STEPOUT_ENVIRONMENT=production")
            if self.api_tokens is None:
                raise SettingsError("STEPOUT_API_TOKENS: required when STEPOUT_ENVIRONMENT=production")
        if self.console_users and self.console_users_file:
            raise SettingsError("STEPOUT_CONSOLE_USERS and STEPOUT_CONSOLE_USERS_FILE: set one of them, not both")


def load_settings() -> Settings:
    """Read the environment once; a bad value raises SettingsError naming the variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "STEPOUT_" + str(first["loc"][0]).upper() if first["loc"] else "STEPOUT_*"
        raise SettingsError(f"{name}: {first['msg']}") from None
    settings.check_store()
    return settings
