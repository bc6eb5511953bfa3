"""The PostgreSQL key vault on a real server: contract, wrapping at rest, concurrent erasure."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from services.runtime.migrate import migrate, service_migrations
from services.runtime.pii import (
    ERASED,
    PersonErasedError,
    PostgresKeyVault,
    TamperedCiphertextError,
    new_pseudonym,
)
from tests.contract.key_vault import NAME, KeyVaultContract

MASTER = b"M" * 32


@pytest.fixture
async def vault(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresKeyVault:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("identity"))
    return PostgresKeyVault(db_pool, pg_schema, master_key=MASTER)


class TestPostgresKeyVault(KeyVaultContract):
    """The same contract the in-memory vault holds."""


async def test_keys_are_stored_wrapped_and_need_the_master_key(vault: PostgresKeyVault) -> None:
    person = new_pseudonym()
    await vault.create_key(person)
    token = await vault.encrypt(person, NAME, context="name")
    stored = await vault.pool.fetchval(
        f"SELECT wrapped_key FROM {vault.schema}.person_keys WHERE pseudonym = $1", person
    )
    assert len(stored) == 12 + 32 + 16  # nonce, key, tag: never the bare key
    wrong = PostgresKeyVault(vault.pool, vault.schema, master_key=b"W" * 32)
    with pytest.raises(TamperedCiphertextError, match="master key"):
        await wrong.decrypt(person, token, context="name")


async def test_erasure_deletes_the_key_row_and_keeps_a_tombstone(vault: PostgresKeyVault) -> None:
    person = new_pseudonym()
    await vault.create_key(person)
    await vault.erase(person)
    keys = await vault.pool.fetchval(
        f"SELECT count(*) FROM {vault.schema}.person_keys WHERE pseudonym = $1", person
    )
    tombstones = await vault.pool.fetchval(
        f"SELECT count(*) FROM {vault.schema}.person_erasures WHERE pseudonym = $1", person
    )
    assert (keys, tombstones) == (0, 1)


async def test_no_key_survives_an_erasure_racing_its_creation(vault: PostgresKeyVault) -> None:
    people = [new_pseudonym() for _ in range(20)]

    async def create(person: str) -> None:
        with contextlib.suppress(PersonErasedError):  # the erasure came first
            await vault.create_key(person)

    await asyncio.gather(*(f(p) for p in people for f in (create, vault.erase)))
    left = await vault.pool.fetchval(f"SELECT count(*) FROM {vault.schema}.person_keys")
    assert left == 0
    for person in people:
        assert await vault.decrypt(person, "v1.AAAA.AAAA", context="name") is ERASED
