"""The identity service's own tables (ID number claims, password hashes, pending face checks):
the port, the PostgreSQL adapter and an in-memory fake for unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

import asyncpg

from services.identity.errors import PersonAlreadyRegisteredError
from services.runtime.events import (
    AppendResult,
    EventStore,
    NewEvent,
)
from services.runtime.memory import InMemoryEventStore
from services.runtime.pgstore import PostgresEventStore


class IdentityTables(Protocol):
    def claiming(self, lookup_hash: str, pseudonym: str) -> EventStore:
        """A store whose append also claims the ID number, atomically with the events;
        the append raises PersonAlreadyRegisteredError when the number is claimed already."""
        ...

    async def claim_owner(self, lookup_hash: str) -> str | None: ...

    async def save_credential(self, pseudonym: str, credential_id: str, password_hash: str) -> None:
        """Keep the first hash under an id: a command run again after dying between its hash
        and its event must not fail, nor change what an event may already name."""

    async def credential(self, pseudonym: str, credential_id: str) -> str | None: ...

    async def add_pending_check(self, check_id: str, deadline: datetime) -> None: ...

    async def overdue_checks(self, now: datetime, limit: int) -> list[str]: ...

    async def drop_pending_check(self, check_id: str) -> None: ...


class PostgresIdentityTables:
    """The tables of migration services/identity/migrations/0001 in a service schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool, self.schema = pool, PostgresEventStore(pool, schema).schema

    def claiming(self, lookup_hash: str, pseudonym: str) -> EventStore:
        return _PostgresClaimingStore(self.pool, self.schema, lookup_hash, pseudonym)

    async def claim_owner(self, lookup_hash: str) -> str | None:
        owner: str | None = await self.pool.fetchval(
            f"SELECT pseudonym FROM {self.schema}.id_number_claims WHERE lookup_hash = $1",
            lookup_hash,
        )
        return owner

    async def save_credential(self, pseudonym: str, credential_id: str, password_hash: str) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.schema}.payment_credentials"
            " (pseudonym, credential_id, password_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT (pseudonym, credential_id) DO NOTHING",
            pseudonym,
            credential_id,
            password_hash,
        )

    async def credential(self, pseudonym: str, credential_id: str) -> str | None:
        found: str | None = await self.pool.fetchval(
            f"SELECT password_hash FROM {self.schema}.payment_credentials"
            " WHERE pseudonym = $1 AND credential_id = $2",
            pseudonym,
            credential_id,
        )
        return found

    async def add_pending_check(self, check_id: str, deadline: datetime) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.schema}.pending_face_checks (check_id, deadline) VALUES ($1, $2)"
            " ON CONFLICT (check_id) DO NOTHING",
            check_id,
            deadline,
        )

    async def overdue_checks(self, now: datetime, limit: int) -> list[str]:
        rows = await self.pool.fetch(
            f"SELECT check_id FROM {self.schema}.pending_face_checks WHERE deadline <= $1"
            " ORDER BY deadline LIMIT $2",
            now,
            limit,
        )
        return [r["check_id"] for r in rows]

    async def drop_pending_check(self, check_id: str) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.schema}.pending_face_checks WHERE check_id = $1", check_id
        )


class _PostgresClaimingStore(PostgresEventStore):
    """Reads on the pool; the append claims and appends in one transaction of its own.

    The transaction's connection is taken only after the events are sealed, and nothing in it
    waits for another connection: a second registration of the number blocks on the claim's
    unique key until the first commits (then loses) or rolls back (then wins).
    """

    def __init__(self, pool: asyncpg.Pool, schema: str, lookup_hash: str, pseudonym: str) -> None:
        super().__init__(pool, schema)
        self._pool, self.lookup_hash, self.pseudonym = pool, lookup_hash, pseudonym

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                f"INSERT INTO {self.schema}.id_number_claims (lookup_hash, pseudonym)"
                " VALUES ($1, $2) ON CONFLICT (lookup_hash) DO NOTHING RETURNING true",
                self.lookup_hash,
                self.pseudonym,
            )
            if not claimed:
                raise PersonAlreadyRegisteredError
            in_tx = PostgresEventStore(conn, self.schema)
            return await in_tx.append(stream_id, expected_version, events, command_id, fingerprint)


class InMemoryIdentityTables:
    """Same contract as PostgresIdentityTables, over an InMemoryEventStore; unit tests only."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.claims: dict[str, str] = {}
        self.credentials: dict[tuple[str, str], str] = {}
        self.pending: dict[str, datetime] = {}

    def claiming(self, lookup_hash: str, pseudonym: str) -> EventStore:
        return _MemoryClaimingStore(self, lookup_hash, pseudonym)

    async def claim_owner(self, lookup_hash: str) -> str | None:
        return self.claims.get(lookup_hash)

    async def save_credential(self, pseudonym: str, credential_id: str, password_hash: str) -> None:
        self.credentials.setdefault((pseudonym, credential_id), password_hash)

    async def credential(self, pseudonym: str, credential_id: str) -> str | None:
        return self.credentials.get((pseudonym, credential_id))

    async def add_pending_check(self, check_id: str, deadline: datetime) -> None:
        self.pending.setdefault(check_id, deadline)

    async def overdue_checks(self, now: datetime, limit: int) -> list[str]:
        due = sorted((d, c) for c, d in self.pending.items() if d <= now)
        return [c for _, c in due[:limit]]

    async def drop_pending_check(self, check_id: str) -> None:
        self.pending.pop(check_id, None)


class _MemoryClaimingStore:
    def __init__(self, tables: InMemoryIdentityTables, lookup_hash: str, pseudonym: str) -> None:
        self.tables, self.lookup_hash, self.pseudonym = tables, lookup_hash, pseudonym
        # Reads are the shared store's own; only the append claims.
        self.read_stream = tables.store.read_stream
        self.read_all = tables.store.read_all
        self.command_fingerprint = tables.store.command_fingerprint

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        claims = self.tables.claims
        if self.lookup_hash in claims:
            raise PersonAlreadyRegisteredError
        claims[self.lookup_hash] = self.pseudonym  # before the await: no other task can interleave
        try:
            store = self.tables.store
            return await store.append(stream_id, expected_version, events, command_id, fingerprint)
        except BaseException:
            del claims[self.lookup_hash]  # the claim commits only with the events
            raise


if TYPE_CHECKING:  # mypy proves that the adapter and the fake both implement the port
    _ports: tuple[type[IdentityTables], ...] = (PostgresIdentityTables, InMemoryIdentityTables)
