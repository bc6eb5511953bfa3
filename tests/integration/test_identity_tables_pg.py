"""The identity service's tables on a real PostgreSQL server: the contract the fake holds."""

from __future__ import annotations

import asyncpg
import pytest

from services.identity.tables import PostgresIdentityTables
from services.runtime.migrate import migrate, service_migrations
from tests.contract.identity_tables import IdentityTablesContract


@pytest.fixture
async def tables(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresIdentityTables:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("identity"))
    return PostgresIdentityTables(db_pool, pg_schema)


class TestPostgresIdentityTables(IdentityTablesContract):
    """The same contract the in-memory tables hold."""
