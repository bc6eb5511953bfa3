"""PostgreSQL connection pools for the services."""

from __future__ import annotations

import asyncpg

from services.runtime.outages import UNAVAILABLE
from services.runtime.settings import Settings


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's default `RESET ALL` round trip.

    qinqing sets no session state that could leak to the next user: session advisory locks
    are released by the code that takes them, and asyncpg still rolls back any open
    transaction before calling this. The default reset cost one round trip per command.
    """


async def create_pool(
    settings: Settings, *, min_size: int | None = None, max_size: int | None = None
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


# Down, or up but refusing the query (a schema half made, a missing privilege).
_NOT_READY: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError)


async def database_ready(pool: asyncpg.Pool, table: str) -> bool:
    """The database answers and `table` (schema-qualified: the service's last migrated table
    it needs) exists, i.e. the service's schema is migrated: what `/readyz` reports."""
    try:
        found = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table, timeout=2)
    except _NOT_READY:
        return False
    return bool(found)
