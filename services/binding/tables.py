"""The binding service's own tables (the persons directory, request routing, face check map):
the port, the PostgreSQL adapter and an in-memory fake for unit tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

import asyncpg

from services.runtime.events import check_schema_name
from services.runtime.pgstore import Executor


@dataclass(frozen=True)
class KnownPerson:
    pseudonym: str
    insured_place: str  # the current one
    personal_account: bool = False  # employee insurance with a personal account (mutual aid)


@dataclass(frozen=True)
class RequestRow:
    request_id: str
    holder: str
    member_name_masked: str
    member_id_masked: str
    requested_on: date
    deadline: datetime


class BindingTables(Protocol):
    """What the handlers and consumers keep beside the holders' streams. The consumers'
    methods take `conn`, the inbox's connection, so that their writes commit with the inbox
    row; the handlers' methods run on their own."""

    async def person_by_lookup(self, id_lookup: str) -> KnownPerson | None: ...

    async def person(self, pseudonym: str) -> KnownPerson | None: ...

    async def person_registered(
        self,
        conn: Executor,
        pseudonym: str,
        id_lookup: str | None,
        insured_place: str,
        *,
        personal_account: bool = False,
    ) -> None:
        """Registered again: the lookup and the place are replaced. Raises
        asyncpg.UniqueViolationError when another person holds the lookup."""

    async def insured_place_switched(self, conn: Executor, pseudonym: str, place: str) -> None: ...

    async def person_erased(self, conn: Executor, pseudonym: str) -> None: ...

    async def add_request(self, row: RequestRow) -> None:
        """Idempotent: a retried request keeps its first row."""

    async def drop_request(self, request_id: str) -> None: ...

    async def request(self, request_id: str) -> RequestRow | None: ...

    async def settle(self, request_id: str) -> None:
        """The request finished: the expiry timer need not look at it again."""

    async def overdue(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(request_id, holder) of unsettled requests whose deadline has passed at `now`."""
        ...

    async def use_confirmation(self, token_id: str, holder: str, member: str, kind: str) -> bool:
        """Record the proof as spent on this unbinding; False if it was spent on another."""
        ...

    async def release_confirmation(self, token_id: str) -> None:
        """The unbinding it was spent on was refused: the proof may serve again."""

    async def face_check_opened(self, conn: Executor, check_id: str, request_id: str) -> None: ...

    async def request_of_check(self, conn: Executor, check_id: str) -> str | None: ...


class PostgresBindingTables:
    """asyncpg access to the tables in services/binding/migrations/0001_binding.sql."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool, self.schema = pool, check_schema_name(schema)

    # ---------------------------------------------------------------------------- persons

    async def _person_where(self, column: str, value: str) -> KnownPerson | None:
        row = await self.pool.fetchrow(
            f"SELECT pseudonym, insured_place, personal_account FROM {self.schema}.persons"
            f" WHERE {column} = $1",
            value,
        )
        return None if row is None else KnownPerson(**dict(row))

    async def person_by_lookup(self, id_lookup: str) -> KnownPerson | None:
        return await self._person_where("id_lookup", id_lookup)

    async def person(self, pseudonym: str) -> KnownPerson | None:
        return await self._person_where("pseudonym", pseudonym)

    async def person_registered(
        self,
        conn: Executor,
        pseudonym: str,
        id_lookup: str | None,
        insured_place: str,
        *,
        personal_account: bool = False,
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.persons"
            " (pseudonym, id_lookup, insured_place, personal_account)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (pseudonym) DO UPDATE"
            " SET id_lookup = EXCLUDED.id_lookup, insured_place = EXCLUDED.insured_place,"
            " personal_account = EXCLUDED.personal_account, updated_at = now()",
            pseudonym,
            id_lookup,
            insured_place,
            personal_account,
        )

    async def insured_place_switched(self, conn: Executor, pseudonym: str, place: str) -> None:
        await conn.execute(
            f"UPDATE {self.schema}.persons SET insured_place = $2, updated_at = now()"
            " WHERE pseudonym = $1",
            pseudonym,
            place,
        )

    async def person_erased(self, conn: Executor, pseudonym: str) -> None:
        await conn.execute(f"DELETE FROM {self.schema}.persons WHERE pseudonym = $1", pseudonym)

    # ---------------------------------------------------------------------------- requests

    async def add_request(self, row: RequestRow) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.schema}.bind_requests (request_id, holder, member_name_masked,"
            " member_id_masked, requested_on, deadline) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (request_id) DO NOTHING",
            row.request_id,
            row.holder,
            row.member_name_masked,
            row.member_id_masked,
            row.requested_on,
            row.deadline,
        )

    async def drop_request(self, request_id: str) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.schema}.bind_requests WHERE request_id = $1", request_id
        )

    async def request(self, request_id: str) -> RequestRow | None:
        row = await self.pool.fetchrow(
            f"SELECT request_id, holder, member_name_masked, member_id_masked, requested_on,"
            f" deadline FROM {self.schema}.bind_requests WHERE request_id = $1",
            request_id,
        )
        return None if row is None else RequestRow(**dict(row))

    async def settle(self, request_id: str) -> None:
        await self.pool.execute(
            f"UPDATE {self.schema}.bind_requests SET settled = true WHERE request_id = $1",
            request_id,
        )

    async def overdue(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            f"SELECT request_id, holder FROM {self.schema}.bind_requests"
            " WHERE NOT settled AND deadline <= $1 ORDER BY deadline LIMIT $2",
            now,
            limit,
        )
        return [(r["request_id"], r["holder"]) for r in rows]

    # ---------------------------------------------------------------------------- confirmations

    async def use_confirmation(self, token_id: str, holder: str, member: str, kind: str) -> bool:
        await self.pool.execute(
            f"INSERT INTO {self.schema}.used_confirmations (token_id, holder, member, kind)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (token_id) DO NOTHING",
            token_id,
            holder,
            member,
            kind,
        )
        spent = await self.pool.fetchrow(
            f"SELECT holder, member, kind FROM {self.schema}.used_confirmations"
            " WHERE token_id = $1",
            token_id,
        )
        return spent is not None and tuple(spent) == (holder, member, kind)

    async def release_confirmation(self, token_id: str) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.schema}.used_confirmations WHERE token_id = $1", token_id
        )

    # ---------------------------------------------------------------------------- face checks

    async def face_check_opened(self, conn: Executor, check_id: str, request_id: str) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.face_checks (check_id, request_id) VALUES ($1, $2)"
            " ON CONFLICT (check_id) DO NOTHING",
            check_id,
            request_id,
        )

    async def request_of_check(self, conn: Executor, check_id: str) -> str | None:
        found: str | None = await conn.fetchval(
            f"SELECT request_id FROM {self.schema}.face_checks WHERE check_id = $1", check_id
        )
        return found


@dataclass(frozen=True)
class _StoredPerson:
    id_lookup: str | None
    insured_place: str
    personal_account: bool


class InMemoryBindingTables:
    """Same contract as PostgresBindingTables, in dicts; unit tests only. It ignores `conn`."""

    def __init__(self) -> None:
        self.persons: dict[str, _StoredPerson] = {}
        self.requests: dict[str, tuple[RequestRow, bool]] = {}  # the row, and whether settled
        self.checks: dict[str, str] = {}
        self.confirmations: dict[str, tuple[str, str, str]] = {}

    async def person_by_lookup(self, id_lookup: str) -> KnownPerson | None:
        return next(
            (
                KnownPerson(pseudonym, p.insured_place, p.personal_account)
                for pseudonym, p in self.persons.items()
                if p.id_lookup == id_lookup
            ),
            None,
        )

    async def person(self, pseudonym: str) -> KnownPerson | None:
        found = self.persons.get(pseudonym)
        if found is None:
            return None
        return KnownPerson(pseudonym, found.insured_place, found.personal_account)

    async def person_registered(
        self,
        conn: Executor,
        pseudonym: str,
        id_lookup: str | None,
        insured_place: str,
        *,
        personal_account: bool = False,
    ) -> None:
        held = None if id_lookup is None else await self.person_by_lookup(id_lookup)
        if held is not None and held.pseudonym != pseudonym:  # the column is UNIQUE
            raise asyncpg.UniqueViolationError(
                'duplicate key value violates unique constraint "persons_id_lookup_key"'
            )
        self.persons[pseudonym] = _StoredPerson(id_lookup, insured_place, personal_account)

    async def insured_place_switched(self, conn: Executor, pseudonym: str, place: str) -> None:
        if pseudonym in self.persons:
            self.persons[pseudonym] = replace(self.persons[pseudonym], insured_place=place)

    async def person_erased(self, conn: Executor, pseudonym: str) -> None:
        self.persons.pop(pseudonym, None)

    async def add_request(self, row: RequestRow) -> None:
        self.requests.setdefault(row.request_id, (row, False))

    async def drop_request(self, request_id: str) -> None:
        self.requests.pop(request_id, None)

    async def request(self, request_id: str) -> RequestRow | None:
        held = self.requests.get(request_id)
        return None if held is None else held[0]

    async def settle(self, request_id: str) -> None:
        if request_id in self.requests:
            self.requests[request_id] = (self.requests[request_id][0], True)

    async def overdue(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = sorted(
            (row for row, settled in self.requests.values() if not settled and row.deadline <= now),
            key=lambda row: row.deadline,
        )
        return [(row.request_id, row.holder) for row in due[:limit]]

    async def face_check_opened(self, conn: Executor, check_id: str, request_id: str) -> None:
        self.checks.setdefault(check_id, request_id)

    async def request_of_check(self, conn: Executor, check_id: str) -> str | None:
        return self.checks.get(check_id)

    async def use_confirmation(self, token_id: str, holder: str, member: str, kind: str) -> bool:
        spent = self.confirmations.setdefault(token_id, (holder, member, kind))
        return spent == (holder, member, kind)

    async def release_confirmation(self, token_id: str) -> None:
        self.confirmations.pop(token_id, None)


if TYPE_CHECKING:  # mypy proves that the adapter and the fake both implement the port
    _ports: tuple[type[BindingTables], ...] = (PostgresBindingTables, InMemoryBindingTables)
