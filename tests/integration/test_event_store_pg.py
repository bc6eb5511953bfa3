"""The PostgreSQL event store on a real server: contract, global order, immutability, migrations."""

from __future__ import annotations

import asyncio
import random
import sys
import textwrap
from asyncio.subprocess import PIPE
from collections import defaultdict

import asyncpg
import pytest

from services.runtime.events import NO_STREAM, START, NewEvent, Position
from services.runtime.integrity import Sealer
from services.runtime.migrate import MigrationError, migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from tests.contract.event_store import T0, EventStoreContract, ev


@pytest.fixture
async def store(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresEventStore:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("binding"))
    return PostgresEventStore(db_pool, pg_schema)


class TestPostgresEventStore(EventStoreContract):
    """The same contract the in-memory store holds."""


async def test_reader_never_skips_an_event_that_commits_late(
    store: PostgresEventStore, database_url: str
) -> None:
    slow = await asyncpg.connect(database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        await PostgresEventStore(slow, store.schema).append("slow", NO_STREAM, [ev(n=1)])
        await store.append("fast", NO_STREAM, [ev(n=2)])  # later sequence number, commits first
        # A bigserial reader would now see seq 2 and move past seq 1 for good.
        naive = await store.pool.fetchval(f"SELECT max(seq) FROM {store.schema}.events")
        assert naive == 2
        assert [e async for e in store.read_all()] == []  # held back by the open transaction
        await tx.commit()
    finally:
        await slow.close()
    assert [e.data["n"] async for e in store.read_all()] == [1, 2]


async def test_concurrent_writers_are_read_exactly_once_in_stream_order(
    store: PostgresEventStore, database_url: str
) -> None:
    writers, per_writer, streams_per_writer = 8, 1250, 25
    total = writers * per_writer
    rng = random.Random(7)
    done = asyncio.Event()

    async def writer(w: int) -> None:
        conn = await asyncpg.connect(database_url)
        versions: dict[str, int] = defaultdict(int)
        try:
            for i in range(per_writer):
                stream = f"w{w}-s{i % streams_per_writer}"
                async with conn.transaction():
                    await PostgresEventStore(conn, store.schema).append(
                        stream, versions[stream], [ev(n=i)]
                    )
                    if i % 10 == 0:  # hold some transactions open so commits interleave
                        await asyncio.sleep(rng.uniform(0, 0.004))
                versions[stream] += 1
        finally:
            await conn.close()

    seen: list[tuple[str, int, Position, str]] = []
    polls = 0

    async def follow() -> None:
        nonlocal polls
        position, idle_after_done = START, 0
        while len(seen) < total and idle_after_done < 100:
            polls += 1
            before = len(seen)
            async for e in store.read_all(position, batch_size=1000):
                seen.append((e.stream_id, e.stream_version, e.position, str(e.event_id)))
                position = e.position
            if len(seen) == before:
                idle_after_done += done.is_set()
                await asyncio.sleep(0.005)

    async def write_all() -> None:
        await asyncio.gather(*(writer(w) for w in range(writers)))
        done.set()

    await asyncio.wait_for(asyncio.gather(write_all(), follow()), timeout=240)
    assert polls > 5, "the reader should have polled while the writers were writing"
    assert len(seen) == total
    assert len({event_id for *_, event_id in seen}) == total  # each exactly once
    positions = [p for _, _, p, _ in seen]
    assert positions == sorted(positions)
    last_version: dict[str, int] = defaultdict(int)
    for stream_id, version, _, _ in seen:
        assert version == last_version[stream_id] + 1, f"{stream_id} out of order"
        last_version[stream_id] = version


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {s}.events SET data = '{{}}'",
        "DELETE FROM {s}.events",
        "TRUNCATE {s}.events",
        "DELETE FROM {s}.seal_blocks",
        "UPDATE {s}.seal_blocks SET block_hash = ''",
    ],
)
async def test_the_database_refuses_to_change_stored_events(
    store: PostgresEventStore, statement: str
) -> None:
    await store.append("s", NO_STREAM, [ev(n=1)])
    assert await Sealer(store.pool, store.schema).seal_once() == 1
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await store.pool.execute(statement.format(s=store.schema))
    assert len(await store.read_stream("s")) == 1


async def test_migrating_twice_changes_nothing(db_pool: asyncpg.Pool, pg_schema: str) -> None:
    async with db_pool.acquire() as conn:
        first = await migrate(conn, pg_schema, service_migrations("binding"))
        second = await migrate(conn, pg_schema, service_migrations("binding"))
    assert first
    assert second == []


async def test_an_edited_migration_is_refused(db_pool: asyncpg.Pool, pg_schema: str) -> None:
    migrations = service_migrations("binding")
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, migrations)
        edited = [*migrations[:-1], type(migrations[-1])(migrations[-1].name, "SELECT 1;")]
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn, pg_schema, edited)


async def test_two_processes_migrating_at_once_leave_one_schema(
    database_url: str, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, asyncpg
        from services.runtime.migrate import migrate, service_migrations
        async def main():
            conn = await asyncpg.connect({database_url!r})
            print(len(await migrate(conn, {pg_schema!r}, service_migrations("binding"))))
            await conn.close()
        asyncio.run(main())
        """
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=PIPE, stderr=PIPE)
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    applied = sorted(int(out.decode().split()[-1]) for out, _ in outputs)
    expected = len(service_migrations("binding"))
    assert applied == [0, expected]  # one process applied everything, the other found it done
    recorded = await db_pool.fetchval(f"SELECT count(*) FROM {pg_schema}.schema_migrations")
    assert recorded == expected


async def test_events_read_back_keep_their_time_and_text(store: PostgresEventStore) -> None:
    await store.append("s", NO_STREAM, [NewEvent("X", {"b": 1, "a": "é"}, T0)])
    (event,) = await store.read_stream("s")
    assert event.data_json == '{"a":"é","b":1}'
    assert event.occurred_at == T0
