"""Identity service wiring: its settings, the dependencies built once at start-up, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import asyncpg
import uvicorn
from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.identity.api import IdentityApi, create_app
from services.identity.consumers import bind_request_consumer
from services.identity.face_provider import FaceProvider, FaceSimulator
from services.identity.handlers import IdentityDeps, IdentityHandlers
from services.identity.password import LockoutPolicy
from services.identity.password_hashing import make_hasher
from services.identity.tables import PostgresIdentityTables
from services.runtime.auth import jwt_secret
from services.runtime.consumer import BrokerDeadLetters, PostgresInbox, service_broker
from services.runtime.db import create_pool
from services.runtime.logging import configure_logging, get_logger
from services.runtime.pgstore import GroupCommitEventStore
from services.runtime.pii import PostgresKeyVault, lookup_key, master_key
from services.runtime.settings import Settings
from services.runtime.workers import readiness, serving, timer, utc_now

SERVICE = SCHEMA = "identity"
_DEV_CALLBACK_SECRET = "qinqing-dev-face-callback-secret-not-safe"  # noqa: S105 - dev default
_MIN_SECRET_BYTES = 32
log = get_logger(__name__)


class IdentitySettings(Settings):
    # DEVELOPMENT DEFAULT, PUBLIC: a deployment sets QINQING_FACE_CALLBACK_SECRET, the HMAC key
    # it shares with the face provider; a warning is logged while the default is in use.
    face_callback_secret: SecretStr = SecretStr(_DEV_CALLBACK_SECRET)
    face_expiry_interval_s: float = 5.0  # how often overdue face checks are expired
    password_lock_minutes: int = Field(default=180, ge=1)  # after 5 wrong payment passwords


def callback_secret(settings: IdentitySettings) -> bytes:
    secret = settings.face_callback_secret.get_secret_value().encode()
    if secret == _DEV_CALLBACK_SECRET.encode():
        log.warning(
            "development default secret in use: production must set it",
            setting="QINQING_FACE_CALLBACK_SECRET",
        )
    if len(secret) < _MIN_SECRET_BYTES:
        raise ValueError(f"QINQING_FACE_CALLBACK_SECRET must be at least {_MIN_SECRET_BYTES} bytes")
    return secret


def make_handlers(
    settings: IdentitySettings, pool: asyncpg.Pool, provider: FaceProvider, schema: str = SCHEMA
) -> IdentityHandlers:
    """The use cases over PostgreSQL; the one place their dependencies are built."""
    return IdentityHandlers(
        IdentityDeps(
            GroupCommitEventStore(pool, schema),
            PostgresKeyVault(pool, schema, master_key=master_key(settings)),
            PostgresIdentityTables(pool, schema),
            lookup_key(settings),
            make_hasher(),
            provider,
            LockoutPolicy(lock_for=timedelta(minutes=settings.password_lock_minutes)),
        )
    )


@asynccontextmanager
async def running(
    settings: IdentitySettings, schema: str = SCHEMA, simulator: FaceSimulator | None = None
) -> AsyncIterator[IdentityApi]:
    """Pool, vault, stores, handlers, simulator provider, the expiry timer, the consumer of
    binding's requests, and the relay and sealer of the identity log, for one app."""
    secret = callback_secret(settings)
    pool = await create_pool(settings)
    # The simulator stands in for the provider until a real adapter exists; a real provider
    # answers through the signed callback.
    provider = simulator or FaceSimulator(utc_now)
    broker = service_broker(settings.kafka_bootstrap_servers)
    try:
        handlers = make_handlers(settings, pool, provider, schema)
        inbox, dead_letters = PostgresInbox(pool, schema), BrokerDeadLetters(broker)
        consumers = {"binding": bind_request_consumer(handlers, inbox, dead_letters, utc_now)}
        expiry = {
            "face-expiry": timer(
                handlers.expire_overdue_checks,
                settings.face_expiry_interval_s,
                "face-check-expiry",
                "identity-timer",
            )
        }
        async with serving(
            settings, pool, schema, SERVICE, broker, consumers=consumers, jobs=expiry
        ) as work:
            ready = readiness(pool, f"{schema}.events", work)
            yield IdentityApi(handlers, utc_now, secret, ready)
    finally:
        await provider.close()
        await pool.close()


def build_app(
    settings: IdentitySettings, *, schema: str = SCHEMA, simulator: FaceSimulator | None = None
) -> FastAPI:
    """`simulator`: one the caller configures (the demo and end-to-end tests set outcomes)."""
    return create_app(jwt_secret(settings), partial(running, settings, schema, simulator))


def serve(settings: IdentitySettings, host: str, port: int, schema: str = SCHEMA) -> None:
    configure_logging(settings.log_level, settings.log_json)
    # uvicorn's access log has method, path and status only: never a body.
    uvicorn.run(build_app(settings, schema=schema), host=host, port=port, log_config=None)
