"""Versioned SQL migrations per service schema, applied in order under an advisory lock.

Hand-written because the maintained tools (alembic, yoyo) drive PostgreSQL through synchronous
drivers; ours run on the asyncpg connection the services already hold, in ~50 lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

import asyncpg

from services.runtime.events import check_schema_name
from services.runtime.logging import get_logger

log = get_logger(__name__)

# One key for every qinqing migration in a database: schemas are created and altered one
# process at a time, so two services starting together cannot interleave DDL.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"qinqing.migrate").digest()[:8], "big", signed=True)


class MigrationError(Exception):
    """A recorded migration's file changed after it was applied: add a new file instead."""


@dataclass(frozen=True)
class Migration:
    name: str  # "<package>/<file>", unique within a schema
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def package_migrations(package: str) -> list[Migration]:
    """The `migrations/*.sql` files shipped in a package, in file-name order."""
    folder: Traversable = resources.files(package) / "migrations"
    if not folder.is_dir():
        return []
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f"{package}/{f.name}", f.read_text(encoding="utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply what is missing to `schema`; returns the names applied (empty when up to date)."""
    check_schema_name(schema)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {schema};"
            f" CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            "   name text PRIMARY KEY, checksum text NOT NULL,"
            "   applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f"SELECT name, checksum FROM {schema}.schema_migrations")
        done = {r["name"]: r["checksum"] for r in rows}
        for migration in migrations:
            if migration.name in done:
                if done[migration.name] != migration.checksum:
                    raise MigrationError(
                        f"{schema}: migration {migration.name} was edited after it was applied"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (name, checksum) VALUES ($1, $2)",
                    migration.name,
                    migration.checksum,
                )
            log.info("migration applied", schema=schema, migration=migration.name)
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


def service_migrations(service: str) -> list[Migration]:
    """Every service schema holds the runtime's event store, then the service's own tables."""
    return package_migrations("services.runtime") + package_migrations(f"services.{service}")
