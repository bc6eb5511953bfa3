"""Review service wiring: its settings, the dependencies built once at start-up, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import asyncpg
import uvicorn
from fastapi import FastAPI
from pydantic import Field

from services.review.api import ReviewApi, create_app
from services.review.consumers import binding_consumer, identity_consumer
from services.review.handlers import ReviewDeps, ReviewHandlers
from services.review.projections import CaseTable
from services.review.queries import ReviewViews
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

SERVICE = SCHEMA = "review"


class ReviewSettings(Settings):
    # A case open longer than this is escalated (ReviewCaseEscalated) for the operators.
    review_escalate_after_hours: float = Field(default=48, gt=0)
    review_escalation_interval_s: float = Field(default=60.0, gt=0)


def make_views(settings: Settings, pool: asyncpg.Pool, schema: str = SCHEMA) -> ReviewViews:
    return ReviewViews(pool, schema, lookup_key(settings))


def make_handlers(
    settings: ReviewSettings, pool: asyncpg.Pool, schema: str = SCHEMA
) -> ReviewHandlers:
    """The use cases over PostgreSQL; the one place their dependencies are built."""
    return ReviewHandlers(
        ReviewDeps(
            GroupCommitEventStore(pool, schema),
            PostgresBlobStore(pool),
            make_views(settings, pool, schema),
            escalate_after=timedelta(hours=settings.review_escalate_after_hours),
        )
    )


@asynccontextmanager
async def running(settings: ReviewSettings, schema: str = SCHEMA) -> AsyncIterator[ReviewApi]:
    """Pool, stores, handlers, the consumers of binding's and identity's topics, the case
    table projection, the escalation timer, and the relay and sealer of the review log."""
    pool = await create_pool(settings)
    broker = service_broker(settings.kafka_bootstrap_servers)
    try:
        handlers = make_handlers(settings, pool, schema)
        inbox, dead_letters = PostgresInbox(pool, schema), BrokerDeadLetters(broker)
        consumers = {
            "binding": binding_consumer(handlers, inbox, dead_letters, utc_now),
            "identity": identity_consumer(schema, inbox, dead_letters),
        }
        cases = ProjectionRunner(pool, schema, CaseTable(schema))
        jobs = {
            "escalation": timer(
                handlers.escalate_overdue,
                settings.review_escalation_interval_s,
                "review-escalation",
                "review-timer",
            ),
            "cases": cases.round,
        }
        async with serving(
            settings, pool, schema, SERVICE, broker, consumers=consumers, jobs=jobs
        ) as work:
            ready = readiness(pool, f"{schema}.cases", work)
            yield ReviewApi(handlers, make_views(settings, pool, schema), utc_now, ready)
    finally:
        await pool.close()


def build_app(settings: ReviewSettings, *, schema: str = SCHEMA) -> FastAPI:
    return create_app(jwt_secret(settings), partial(running, settings, schema))


def serve(settings: ReviewSettings, host: str, port: int, schema: str = SCHEMA) -> None:
    configure_logging(settings.log_level, settings.log_json)
    # uvicorn's access log has method, path and status only: never a body.
    uvicorn.run(build_app(settings, schema=schema), host=host, port=port, log_config=None)
