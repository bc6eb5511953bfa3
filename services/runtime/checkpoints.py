"""Named positions in a schema's log (relays, projections), in PostgreSQL or in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import asyncpg

from services.runtime.events import START, Position, check_schema_name
from services.runtime.pgstore import Executor


class CheckpointStore(Protocol):
    async def load(self, name: str) -> Position: ...

    async def save(self, name: str, position: Position) -> None: ...


class PostgresCheckpoints:
    """The `checkpoints` table of a schema; each call runs on the pool or on a given connection."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.schema = check_schema_name(schema)
        self._load_sql = (
            f"SELECT tx_id::text::bigint AS tx_id, seq FROM {schema}.checkpoints WHERE name = $1"
        )
        self._save_sql = (
            f"INSERT INTO {schema}.checkpoints (name, tx_id, seq) VALUES ($1, $2::text::xid8, $3)"
            " ON CONFLICT (name) DO UPDATE"
            " SET tx_id = excluded.tx_id, seq = excluded.seq, updated_at = now()"
        )
        self._delete_sql = f"DELETE FROM {schema}.checkpoints WHERE name = $1"

    async def load(self, name: str, db: Executor | None = None) -> Position:
        row = await (db or self.pool).fetchrow(self._load_sql, name)
        return START if row is None else Position(row["tx_id"], row["seq"])

    async def save(self, name: str, position: Position, db: Executor | None = None) -> None:
        await (db or self.pool).execute(self._save_sql, name, str(position.tx_id), position.seq)

    async def delete(self, name: str, db: Executor | None = None) -> None:
        await (db or self.pool).execute(self._delete_sql, name)


class InMemoryCheckpoints:
    """Same contract as PostgresCheckpoints, for unit tests."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}

    async def load(self, name: str) -> Position:
        return self.positions.get(name, START)

    async def save(self, name: str, position: Position) -> None:
        self.positions[name] = position


if TYPE_CHECKING:  # mypy proves that the adapter and the fake both implement the port
    _ports: tuple[type[CheckpointStore], ...] = (PostgresCheckpoints, InMemoryCheckpoints)
