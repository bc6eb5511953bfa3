"""The binding service's tables on a real PostgreSQL server: the contract the fake holds."""

from __future__ import annotations

import asyncpg
import pytest

from services.binding.tables import PostgresBindingTables
from services.runtime.migrate import migrate, service_migrations
from tests.contract.binding_tables import BindingTablesContract


@pytest.fixture
async def tables(db_pool: asyncpg.Pool, pg_schema: str, database_url: str) -> PostgresBindingTables:
    conn = await asyncpg.connect(database_url)  # `migrate` is typed for a plain connection
    try:
        await migrate(conn, pg_schema, service_migrations("binding"))
    finally:
        await conn.close()
    return PostgresBindingTables(db_pool, pg_schema)


@pytest.fixture
def conn(db_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The pool stands in for the inbox's connection: the same queries run on either."""
    return db_pool


class TestPostgresBindingTables(BindingTablesContract):
    """The same contract the in-memory tables hold."""
