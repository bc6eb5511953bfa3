"""Projections: read models fed from a service's own log (checkpointed) or from Kafka (inbox).

A batch of events and the checkpoint that follows it commit in one transaction. A rebuild takes
a session advisory lock on the projection, which the live runner's transactions also take, so
the two never interleave.

A rebuild commits once per batch rather than once at the end: the store's readers only see
events below the oldest running transaction (pg_snapshot_xmin), so one long rebuild transaction
would hold back every relay and projection in the cluster for as long as it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Any, Protocol, cast, runtime_checkable

import asyncpg

from contracts.envelope import Envelope
from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import DeadLetters, Inbox, InboxConsumer
from services.runtime.events import START, EventRecord, Position, RecordedEvent
from services.runtime.kafka_codec import ReceivedEvent
from services.runtime.logging import get_logger
from services.runtime.pgstore import PostgresEventStore
from services.runtime.supervisor import after_batch

log = get_logger(__name__)


class Projection(Protocol):
    """A read model: its name, the tables a rebuild empties, and how one event changes them."""

    name: str
    tables: Sequence[str]  # schema-qualified

    async def apply(self, conn: asyncpg.Connection, event: EventRecord) -> None: ...


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that can apply many events in a few statements (executemany, unnest)."""

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[EventRecord]
    ) -> None: ...


async def apply_all(
    projection: Projection, conn: asyncpg.Connection, events: Sequence[EventRecord]
) -> None:
    if isinstance(projection, BatchProjection):
        await projection.apply_batch(conn, events)
        return
    for event in events:
        await projection.apply(conn, event)


def kafka_projection(
    projection: Projection,
    inbox: Inbox,
    dead_letters: DeadLetters,
    *,
    wants: Collection[str] | None = None,
    max_retries: int = 3,
) -> InboxConsumer:
    """Feed a projection from another service's topic; the inbox makes each event count once."""

    async def handler(conn: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]) -> None:
        await projection.apply(conn, ReceivedEvent(envelope, data))

    name = f"projection:{projection.name}"
    return InboxConsumer(name, handler, inbox, dead_letters, wants=wants, max_retries=max_retries)


class ProjectionRunner:
    """Keeps `projection` up to date with the log of the same service's schema."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        projection: Projection,
        *,
        batch_size: int = 1000,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.pool = pool
        self.store = PostgresEventStore(pool, schema)
        self.projection = projection
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.checkpoint_name = f"projection:{projection.name}"
        self.checkpoints = PostgresCheckpoints(pool, self.store.schema)
        self._lock_key = f"qinqing.projection:{schema}.{projection.name}"

    async def _apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        await apply_all(self.projection, conn, events)
        await self.checkpoints.save(self.checkpoint_name, events[-1].position, conn)

    async def position(self) -> Position:
        return await self.checkpoints.load(self.checkpoint_name)

    async def run_once(self) -> int:
        """Apply the next batch after the checkpoint; returns how many events were applied."""
        after = await self.position()
        events: list[RecordedEvent] = []
        async for event in self._read(after, None, None, self.batch_size):
            events.append(event)
            if len(events) == self.batch_size:
                break
        if not events:
            return 0
        async with self.pool.acquire() as proxy, proxy.transaction():
            conn = cast(asyncpg.Connection, proxy)  # the pool's proxy forwards every call
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            # Another runner or a rebuild moved the checkpoint while we read: let it win.
            if await self.checkpoints.load(self.checkpoint_name, conn) != after:
                return 0
            await self._apply(conn, events)
        return len(events)

    async def catch_up(self) -> int:
        """Apply until the checkpoint reaches the newest event committed now; how many were
        applied. While a transaction elsewhere in the cluster holds the readers' horizon back,
        it waits for it (a caller bounds that with a timeout)."""
        last, applied = await self.store.last_position(), 0
        while await self.position() < last:
            count = await self.run_once()
            applied += count
            if not count:
                await asyncio.sleep(self.poll_interval_s)
        return applied

    async def round(self) -> float:
        """One batch, then the pause before the next (none while a backlog remains); run
        under a Supervisor, which retries a failed round."""
        return after_batch(await self.run_once(), self.batch_size, self.poll_interval_s)

    async def _read(
        self, after: Position, until: Position | None, until_time: datetime | None, batch_size: int
    ) -> AsyncIterator[RecordedEvent]:
        events = self.store.read_all(
            after, until=until, until_time=until_time, batch_size=batch_size
        )
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _batches(
        self, as_of: Position | datetime | None, batch_size: int
    ) -> AsyncIterator[list[RecordedEvent]]:
        until = as_of if isinstance(as_of, Position) else None
        until_time = as_of if isinstance(as_of, datetime) else None
        batch: list[RecordedEvent] = []
        async for event in self._read(START, until, until_time, batch_size):
            batch.append(event)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    async def rebuild(
        self, as_of: Position | datetime | None = None, *, batch_size: int = 5000
    ) -> int:
        """Empty the projection and replay the log up to `as_of` (a position, or a recorded time).

        The checkpoint ends at the last replayed event, so a live runner carries on from there.
        Returns the number of events replayed.
        """
        started = time.monotonic()
        replayed = 0
        batches = self._batches(as_of, batch_size)
        async with self.pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", self._lock_key)
            next_batch: asyncio.Future[list[RecordedEvent] | None] | None = None
            try:
                async with conn.transaction():
                    if self.projection.tables:
                        await conn.execute(f"TRUNCATE {', '.join(self.projection.tables)}")
                    await self.checkpoints.delete(self.checkpoint_name, conn)
                # Read the next batch while the current one is written.
                next_batch = asyncio.ensure_future(anext(batches, None))
                last_log = started
                while (batch := await next_batch) is not None:
                    next_batch = asyncio.ensure_future(anext(batches, None))
                    async with conn.transaction():
                        await self._apply(conn, batch)
                    replayed += len(batch)
                    if time.monotonic() - last_log > 5.0:
                        last_log = time.monotonic()
                        log.info(
                            "rebuild progress", projection=self.projection.name, events=replayed
                        )
            finally:
                if next_batch is not None and not next_batch.done():
                    next_batch.cancel()
                    with contextlib.suppress(BaseException):
                        await next_batch
                await batches.aclose()  # type: ignore[attr-defined]
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self._lock_key)
        elapsed = time.monotonic() - started
        log.info(
            "projection rebuilt",
            projection=self.projection.name,
            events=replayed,
            as_of=None if as_of is None else str(as_of),
            seconds=round(elapsed, 3),
        )
        return replayed
