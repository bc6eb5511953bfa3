"""Binding service wiring: its settings, the dependencies built once at start-up, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import asyncpg
import uvicorn
from fastapi import FastAPI
from pydantic import Field

from services.binding.api import BindingApi, create_app
from services.binding.consumers import identity_consumer, review_consumer
from services.binding.handlers import BindingDeps, BindingHandlers
from services.binding.projections import BindingViews
from services.binding.tables import PostgresBindingTables
from services.runtime.auth import jwt_secret
from services.runtime.blobs import PostgresBlobStore
from services.runtime.consumer import BrokerDeadLetters, PostgresInbox, service_broker
from services.runtime.db import create_pool
from services.runtime.logging import configure_logging
from services.runtime.pgstore import GroupCommitEventStore
from services.runtime.pii import lookup_key
from services.runtime.projection import ProjectionRunner
from services.runtime.settings import Settings
from services.runtime.workers import readiness, serving, timer, utc_now

SERVICE = SCHEMA = "binding"


class BindingSettings(Settings):
    # How long a request waits for its materials, review and face check (an open point of
    # DOMAIN.md: a week, as a reviewer may take days and the member must come to the phone).
    bind_request_ttl_hours: float = Field(default=7 * 24, gt=0)
    bind_expiry_interval_s: float = Field(default=5.0, gt=0)


def make_handlers(
    settings: BindingSettings, pool: asyncpg.Pool, schema: str = SCHEMA
) -> BindingHandlers:
    """The use cases over PostgreSQL; the one place their dependencies are built."""
    return BindingHandlers(
        BindingDeps(
            GroupCommitEventStore(pool, schema),
            PostgresBindingTables(pool, schema),
            PostgresBlobStore(pool),
            lookup_key(settings),
            jwt_secret(settings),
            request_ttl=timedelta(hours=settings.bind_request_ttl_hours),
        )
    )


@asynccontextmanager
async def running(settings: BindingSettings, schema: str = SCHEMA) -> AsyncIterator[BindingApi]:
    """Pool, stores, handlers, the consumers of identity's and review's topics, the expiry
    timer, the family view projection, and the relay and sealer of the binding log."""
    pool = await create_pool(settings)
    broker = service_broker(settings.kafka_bootstrap_servers)
    try:
        handlers = make_handlers(settings, pool, schema)
        tables = handlers.deps.tables
        inbox, dead_letters = PostgresInbox(pool, schema), BrokerDeadLetters(broker)
        consumers = {
            "identity": identity_consumer(handlers, tables, inbox, dead_letters, utc_now),
            "review": review_consumer(handlers, inbox, dead_letters, utc_now),
        }
        views = ProjectionRunner(pool, schema, BindingViews(schema))
        jobs = {
            "expiry": timer(
                handlers.expire_overdue,
                settings.bind_expiry_interval_s,
                "bind-request-expiry",
                "binding-timer",
            ),
            "views": views.round,
        }
        async with serving(
            settings, pool, schema, SERVICE, broker, consumers=consumers, jobs=jobs
        ) as work:
            ready = readiness(pool, f"{schema}.family_view", work)
            yield BindingApi(handlers, pool, schema, utc_now, ready)
    finally:
        await pool.close()


def build_app(settings: BindingSettings, *, schema: str = SCHEMA) -> FastAPI:
    return create_app(jwt_secret(settings), partial(running, settings, schema))


def serve(settings: BindingSettings, host: str, port: int, schema: str = SCHEMA) -> None:
    configure_logging(settings.log_level, settings.log_json)
    # uvicorn's access log has method, path and status only: never a body.
    uvicorn.run(build_app(settings, schema=schema), host=host, port=port, log_config=None)
