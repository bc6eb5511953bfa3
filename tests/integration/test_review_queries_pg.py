"""Review's queries on a real PostgreSQL server: the contract the in-memory views hold."""

from __future__ import annotations

from typing import cast

import asyncpg
import pytest

from services.review.projections import CaseTable, PersonLookups
from services.review.queries import ReviewViews
from services.runtime.events import RecordedEvent
from services.runtime.migrate import migrate, service_migrations
from tests.contract.review_queries import KEY, Project, ReviewQueriesContract


@pytest.fixture
async def views(db_pool: asyncpg.Pool, pg_schema: str) -> ReviewViews:
    async with db_pool.acquire() as proxy:
        await migrate(cast(asyncpg.Connection, proxy), pg_schema, service_migrations("review"))
    return ReviewViews(db_pool, pg_schema, KEY)


@pytest.fixture
def project(db_pool: asyncpg.Pool, pg_schema: str) -> Project:
    projections = (CaseTable(pg_schema), PersonLookups(pg_schema))

    async def apply(event: RecordedEvent) -> None:
        async with db_pool.acquire() as proxy:
            for projection in projections:
                await projection.apply(cast(asyncpg.Connection, proxy), event)

    return apply


class TestPostgresReviewViews(ReviewQueriesContract):
    """The same contract the in-memory views hold."""
