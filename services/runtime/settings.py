"""Process settings from the environment (prefix QINQING_, plus the two standard URLs)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One place for every knob; values come from the environment or a `.env` file."""

    model_config = SettingsConfigDict(env_prefix="QINQING_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="postgresql://qinqing@127.0.0.1:54329/qinqing",
        validation_alias=AliasChoices("DATABASE_URL", "QINQING_DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "QINQING_KAFKA_BOOTSTRAP_SERVERS"),
    )
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal
    db_pool_min: int = 1
    db_pool_max: int = 10
    relay_batch_size: int = 1000

    # DEVELOPMENT DEFAULTS, PUBLIC IN THIS REPOSITORY: every deployment outside a developer's
    # machine MUST set QINQING_MASTER_KEY, QINQING_LOOKUP_KEY and QINQING_JWT_SECRET. The code
    # logs a warning whenever one of these defaults is in use (see services.runtime.pii/auth).
    # Wraps each person's data key (base64 of 32 bytes); losing it makes all PII unreadable.
    master_key: SecretStr = SecretStr("cWlucWluZyBkZXYgbWFzdGVyIGtleTogbm90IHNhZmU=")
    # HMAC key for lookup hashes of ID numbers (base64 of 32 bytes); changing it orphans them.
    lookup_key: SecretStr = SecretStr("cWlucWluZyBkZXYgbG9va3VwIGtleTogbm90IHNhZmU=")
    # HS256 signing key for bearer tokens (at least 32 bytes of text).
    jwt_secret: SecretStr = SecretStr("qinqing-dev-jwt-secret-not-for-production")
    # The first part of every topic and consumer group name. Deployments keep `qinqing`; a
    # test or a second environment on one broker picks its own, so they never share messages.
    topic_namespace: str = Field(default="qinqing", pattern=r"^[a-z][a-z0-9_-]{0,40}$")

    def topic(self, service: str) -> str:
        """`<namespace>.<service>.v1`: `contracts.envelope.topic(service)` by default."""
        return f"{self.topic_namespace}.{service}.v1"

    def group_id(self, consumer: str) -> str:
        return f"{self.topic_namespace}.{consumer}"
