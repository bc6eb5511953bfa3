"""The PostgreSQL blob store on a real server: contract, write-once rows, `qinqing migrate`."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.admin import migrate_all
from services.runtime.blobs import (
    BLOB_SCHEMA,
    BlobStore,
    PostgresBlobStore,
    blob_migrations,
)
from services.runtime.migrate import migrate
from tests.contract.blob_store import JPEG, PNG, BlobStoreContract


@pytest.fixture
async def store(db_pool: asyncpg.Pool, pg_schema: str, database_url: str) -> PostgresBlobStore:
    conn = await asyncpg.connect(database_url)  # `migrate` is typed for a plain connection
    try:
        await migrate(conn, pg_schema, blob_migrations())
    finally:
        await conn.close()
    return PostgresBlobStore(db_pool, pg_schema)


class TestPostgresBlobStore(BlobStoreContract):
    """The same contract the in-memory and folder stores hold."""

    async def stored_count(self, store: BlobStore) -> int:
        assert isinstance(store, PostgresBlobStore)
        count: int = await store.pool.fetchval(f"SELECT count(*) FROM {store.schema}.blobs")
        return count


async def test_storing_the_same_bytes_again_leaves_the_first_row(store: PostgresBlobStore) -> None:
    stored = await store.put(PNG)
    query = f"SELECT stored_at, xmin::text FROM {store.schema}.blobs WHERE sha256 = $1"
    first = await store.pool.fetchrow(query, stored.sha256)
    await store.put(PNG, "image/png")
    assert await store.pool.fetchrow(query, stored.sha256) == first


async def test_concurrent_uploads_of_one_material_store_it_once(store: PostgresBlobStore) -> None:
    results = await asyncio.gather(*(store.put(JPEG) for _ in range(10)))
    assert len(set(results)) == 1
    assert await store.pool.fetchval(f"SELECT count(*) FROM {store.schema}.blobs") == 1


async def test_qinqing_migrate_always_keeps_the_blobs_schema_current(database_url: str) -> None:
    # With no service chosen the shared schema is still migrated (here or by an earlier run).
    applied = await migrate_all(database_url, [])
    assert list(applied) == [BLOB_SCHEMA]
    again = await migrate_all(database_url, [])
    assert again == {BLOB_SCHEMA: []}
    conn = await asyncpg.connect(database_url)
    try:
        table = await conn.fetchval("SELECT to_regclass('blobs.blobs')::text")
    finally:
        await conn.close()
    assert table == "blobs.blobs"
