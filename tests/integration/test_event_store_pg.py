"""The PostgreSQL event store on a real server: contract, global order, immutability, migrations."""

from __future__ import annotations

import asyncio
import random
import sys
import textwrap
from asyncio.subprocess import PIPE
from collections import defaultdict
from typing import cast
from uuid import uuid4

import asyncpg
import pytest

from services.runtime.events import (
    NO_STREAM,
    START,
    AppendResult,
    ConcurrencyError,
    InvalidAppendError,
    NewEvent,
    Position,
)
from services.runtime.integrity import Sealer, verify
from services.runtime.migrate import MigrationError, migrate, service_migrations
from services.runtime.pgstore import GroupCommitEventStore, PostgresEventStore
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


# ------------------------------------------------------------------------------ group commit
@pytest.fixture
async def grouped(store: PostgresEventStore) -> GroupCommitEventStore:
    return GroupCommitEventStore(cast(asyncpg.Pool, store.pool), store.schema)


class TestGroupCommitEventStore(EventStoreContract):
    """Group commit keeps the contract, one command at a time as well as many at once."""

    @pytest.fixture
    def store(self, grouped: GroupCommitEventStore) -> GroupCommitEventStore:
        return grouped


async def test_group_commit_shares_transactions_between_concurrent_commands(
    grouped: GroupCommitEventStore,
) -> None:
    results = await asyncio.gather(
        *(grouped.append(f"s-{n}", NO_STREAM, [ev(n=n)], uuid4()) for n in range(40))
    )
    assert [r.last_version for r in results] == [1] * 40
    transactions = await grouped.pool.fetchval(
        f"SELECT count(DISTINCT tx_id) FROM {grouped.schema}.events"
    )
    assert transactions < 40  # several commands per commit
    assert (await verify(grouped.pool, grouped.schema)).ok


async def test_group_commit_admits_one_of_many_racing_for_the_same_version(
    grouped: GroupCommitEventStore,
) -> None:
    outcomes = await asyncio.gather(
        *(grouped.append("contested", NO_STREAM, [ev(n=n)], uuid4()) for n in range(30)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if isinstance(o, BaseException))
    assert len(await grouped.read_stream("contested")) == 1
    assert await grouped.pool.fetchval(f"SELECT count(*) FROM {grouped.schema}.commands") == 1


async def test_each_command_in_a_batch_gets_its_own_outcome(grouped: GroupCommitEventStore) -> None:
    repeated, stored = uuid4(), ev(n=0)
    await grouped.append("done", NO_STREAM, [ev(n=1)], repeated)
    await grouped.append("other", NO_STREAM, [stored])
    outcomes = await asyncio.gather(
        grouped.append("done", NO_STREAM, [ev(n=2)], repeated),  # repeat: first outcome
        grouped.append("done", NO_STREAM, [ev(n=3)], uuid4()),  # stale version
        grouped.append("new", NO_STREAM, [stored], uuid4()),  # event id already stored
        grouped.append("fresh", NO_STREAM, [ev(n=4), ev(n=5)], uuid4()),
        return_exceptions=True,
    )
    duplicate, stale, reused, fresh = outcomes
    assert isinstance(duplicate, AppendResult)
    assert (duplicate.duplicate, duplicate.last_version) == (True, 1)
    assert isinstance(stale, ConcurrencyError)
    assert isinstance(reused, InvalidAppendError)
    assert isinstance(fresh, AppendResult)
    assert (fresh.first_version, fresh.last_version) == (1, 2)
    assert [e.data["n"] for e in await grouped.read_stream("done")] == [1]
    assert await grouped.read_stream("new") == []
    assert (await verify(grouped.pool, grouped.schema)).ok


async def test_a_batch_the_server_refuses_is_retried_command_by_command(
    grouped: GroupCommitEventStore, database_url: str
) -> None:
    shared = ev(n=7)
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()  # another writer holds the event id, not yet committed
        await PostgresEventStore(other, grouped.schema).append("elsewhere", NO_STREAM, [shared])
        batch = asyncio.gather(
            *(grouped.append(f"s-{n}", NO_STREAM, [ev(n=n)]) for n in range(4)),
            grouped.append("mine", NO_STREAM, [shared]),
            return_exceptions=True,
        )
        await asyncio.sleep(0.3)  # the batch now waits on the other writer's row
        await tx.commit()  # ...which makes the batch's insert fail as a whole
        outcomes = await batch
    finally:
        await other.close()
    assert all(isinstance(o, AppendResult) for o in outcomes[:4])
    assert isinstance(outcomes[4], InvalidAppendError)
    assert await grouped.pool.fetchval(f"SELECT count(*) FROM {grouped.schema}.events") == 5
    assert await grouped.read_stream("mine") == []


async def test_one_flusher_serves_appends_that_follow_each_other(
    store: PostgresEventStore,
) -> None:
    single = GroupCommitEventStore(cast(asyncpg.Pool, store.pool), store.schema, max_in_flight=1)

    async def one_after_another() -> None:
        for version in range(5):
            await single.append("serial", version, [ev(n=version)])

    await asyncio.wait_for(one_after_another(), timeout=20)
    assert len(await single.read_stream("serial")) == 5
