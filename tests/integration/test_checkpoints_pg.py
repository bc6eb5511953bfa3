"""Checkpoints on a real PostgreSQL server: the contract the in-memory store holds."""

from __future__ import annotations

import asyncpg
import pytest

from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.events import START, Position
from services.runtime.migrate import migrate, service_migrations
from tests.contract.checkpoints import CheckpointStoreContract


@pytest.fixture
async def checkpoints(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresCheckpoints:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("binding"))
    return PostgresCheckpoints(db_pool, pg_schema)


class TestPostgresCheckpoints(CheckpointStoreContract):
    """The same contract the in-memory store holds."""


async def test_a_deleted_checkpoint_starts_again_at_the_beginning(
    checkpoints: PostgresCheckpoints,
) -> None:
    await checkpoints.save("family-view", Position(41, 3))
    await checkpoints.save("relay", Position(41, 3))
    await checkpoints.delete("family-view")
    assert await checkpoints.load("family-view") == START
    assert await checkpoints.load("relay") == Position(41, 3)


async def test_a_checkpoint_saved_in_a_rolled_back_transaction_is_not_kept(
    checkpoints: PostgresCheckpoints, db_pool: asyncpg.Pool
) -> None:
    # A projection saves its position on the connection of its effects: both commit or neither.
    async with db_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await checkpoints.save("family-view", Position(41, 3), conn)
        assert await checkpoints.load("family-view", conn) == Position(41, 3)
        await tx.rollback()
    assert await checkpoints.load("family-view") == START
