"""Process settings from the environment (prefix QINQING_, plus the two standard URLs)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
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
