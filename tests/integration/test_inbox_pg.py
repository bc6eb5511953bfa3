"""The inbox on a real PostgreSQL server: the contract the in-memory inbox holds."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import pytest

from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import PostgresInbox
from services.runtime.events import START, Position
from services.runtime.migrate import migrate, service_migrations
from tests.contract.inbox import InboxContract


@pytest.fixture
async def inbox(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresInbox:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("binding"))
    return PostgresInbox(db_pool, pg_schema)


class TestPostgresInbox(InboxContract):
    """The same contract the in-memory inbox holds."""


async def test_a_failed_effect_leaves_none_of_its_writes(
    inbox: PostgresInbox, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    checkpoints = PostgresCheckpoints(db_pool, pg_schema)

    async def half_done(conn: asyncpg.Connection) -> None:
        await checkpoints.save("family-view", Position(41, 3), conn)
        raise RuntimeError("the handler failed after its first write")

    with pytest.raises(RuntimeError):
        await inbox.once("family-view", uuid4(), half_done)
    assert await checkpoints.load("family-view") == START
