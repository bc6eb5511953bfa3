"""Projection runner on the real PostgreSQL: live == rebuilt, rebuild as of a position, speed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from services.runtime.events import NO_STREAM, EventRecord, NewEvent, Position
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from services.runtime.projection import ProjectionRunner

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


class StreamTotals:
    """Per stream: how many events, the last version, and the sum of `n` (order-sensitive: last)."""

    name = "stream_totals"

    def __init__(self, schema: str) -> None:
        self.table = f"{schema}.stream_totals"
        self.tables: Sequence[str] = (self.table,)
        self._upsert = (
            f"INSERT INTO {self.table} AS t (stream_id, events, last_version, total)"
            " SELECT stream_id, count(*), max(version), sum(n)"
            "   FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(stream_id, version, n)"
            "  GROUP BY stream_id"
            " ON CONFLICT (stream_id) DO UPDATE SET events = t.events + excluded.events,"
            "   last_version = excluded.last_version, total = t.total + excluded.total"
        )

    async def create(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"CREATE TABLE {self.table} (stream_id text PRIMARY KEY, events int NOT NULL,"
            " last_version int NOT NULL, total bigint NOT NULL)"
        )

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[EventRecord]) -> None:
        await conn.execute(
            self._upsert,
            [e.stream_id for e in events],
            [e.stream_version for e in events],
            [e.data["n"] for e in events],
        )

    async def state(self, conn: Any) -> list[tuple[Any, ...]]:
        rows = await conn.fetch(f"SELECT * FROM {self.table} ORDER BY stream_id")
        return [tuple(r) for r in rows]


@pytest.fixture
async def store(db_pool: asyncpg.Pool, pg_schema: str) -> PostgresEventStore:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("binding"))
    return PostgresEventStore(db_pool, pg_schema)


@pytest.fixture
async def totals(store: PostgresEventStore) -> StreamTotals:
    projection = StreamTotals(store.schema)
    async with cast(asyncpg.Pool, store.pool).acquire() as conn:
        await projection.create(conn)
    return projection


def runner_for(store: PostgresEventStore, totals: StreamTotals, **kw: Any) -> ProjectionRunner:
    return ProjectionRunner(cast(asyncpg.Pool, store.pool), store.schema, totals, **kw)


async def fill(store: PostgresEventStore, streams: int, per_stream: int, per_append: int) -> None:
    rng = random.Random(3)

    async def writer(s: int) -> None:
        for first in range(1, per_stream + 1, per_append):
            count = min(per_append, per_stream - first + 1)
            batch = [NewEvent("Counted", {"n": rng.randint(1, 9)}, T0) for _ in range(count)]
            await store.append(f"s-{s}", first - 1, batch)

    await asyncio.gather(*(writer(s) for s in range(streams)))


async def test_rebuild_equals_the_live_projection_and_as_of_p_equals_the_state_seen_at_p(
    store: PostgresEventStore, totals: StreamTotals
) -> None:
    await fill(store, streams=12, per_stream=40, per_append=3)
    live = runner_for(store, totals, batch_size=37)
    seen_at: dict[Position, list[tuple[Any, ...]]] = {}
    while await live.run_once():
        seen_at[await live.position()] = await totals.state(store.pool)
    assert len(seen_at) == 13  # 480 events in batches of 37
    final = await totals.state(store.pool)
    assert sum(row[1] for row in final) == 480

    assert await live.rebuild() == 480
    assert await totals.state(store.pool) == final

    checkpoint_in_the_middle = list(seen_at)[5]
    assert await live.rebuild(as_of=checkpoint_in_the_middle) == 6 * 37
    assert await totals.state(store.pool) == seen_at[checkpoint_in_the_middle]
    assert await live.position() == checkpoint_in_the_middle

    # The live runner carries on from the rebuilt position to the same end state.
    while await live.run_once():
        pass
    assert await totals.state(store.pool) == final


async def test_rebuild_as_of_a_time_leaves_out_later_events(
    store: PostgresEventStore, totals: StreamTotals
) -> None:
    await store.append("early", NO_STREAM, [NewEvent("Counted", {"n": 1}, T0)])
    cut = await store.pool.fetchval("SELECT clock_timestamp()")
    await store.append("late", NO_STREAM, [NewEvent("Counted", {"n": 2}, T0)])
    runner = runner_for(store, totals)
    assert await runner.rebuild(as_of=cut) == 1
    assert [r[0] for r in await totals.state(store.pool)] == ["early"]


async def test_a_stale_batch_does_not_overwrite_a_rebuild(
    store: PostgresEventStore, totals: StreamTotals
) -> None:
    await fill(store, streams=2, per_stream=5, per_append=5)
    one, other = (runner_for(store, totals) for _ in range(2))
    assert await one.run_once() == 10
    assert await other.run_once() == 0  # its checkpoint moved under it: nothing applied twice
    assert sum(r[1] for r in await totals.state(store.pool)) == 10
