"""The PostgreSQL event store: one round trip per append, a global order that never skips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.runtime.events import (
    START,
    AppendResult,
    ConcurrencyError,
    InvalidAppendError,
    NewEvent,
    Position,
    PreparedEvent,
    RecordedEvent,
    check_schema_name,
    prepare,
)

# A connection handed out by a pool, or a plain one (e.g. inside a caller's transaction).
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# What the store runs its queries on: a pool for autonomous appends, or a connection.
Executor = asyncpg.Pool | Conn

_VERSION_CONFLICT = "QQ001"  # raised by append_events() when the expected version is stale

_COLUMNS = (
    "stream_id, stream_version, tx_id::text::bigint AS tx_id, seq, event_id, event_type,"
    " schema_version, data::text AS data, metadata::text AS metadata, occurred_at, recorded_at,"
    " content_hash, chain_hash"
)


def to_recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        position=Position(row["tx_id"], row["seq"]),
        event_id=row["event_id"],
        type=row["event_type"],
        schema_version=row["schema_version"],
        data_json=row["data"],
        metadata_json=row["metadata"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        content_hash=bytes(row["content_hash"]),
        chain_hash=bytes(row["chain_hash"]),
    )


def read_all_sql(schema: str) -> str:
    """Committed events after a position, below the horizon of still-running transactions."""
    return (
        f"SELECT {_COLUMNS} FROM {schema}.events"
        " WHERE (tx_id, seq) > ($1::text::xid8, $2)"
        "   AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
        "   AND ($3::text IS NULL OR (tx_id, seq) <= ($3::text::xid8, $4))"
        "   AND ($5::timestamptz IS NULL OR recorded_at <= $5)"
        " ORDER BY events.tx_id, events.seq LIMIT $6"
    )


class PostgresEventStore:
    """Event store of one service schema (created by `migrate`)."""

    def __init__(self, pool: Executor, schema: str) -> None:
        self.pool = pool
        self.schema = check_schema_name(schema)
        self._append_sql = f"SELECT * FROM {schema}.append_events($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
        # Most commands record one event: scalars are cheaper to encode than ten 1-element arrays.
        self._append_one_sql = (
            f"SELECT * FROM {schema}.append_events($1, $2, $3, ARRAY[$4::uuid], ARRAY[$5::text],"
            " ARRAY[$6::integer], ARRAY[$7::json], ARRAY[$8::json], ARRAY[$9::timestamptz],"
            " ARRAY[$10::bytea])"
        )
        self._read_stream_sql = (
            f"SELECT {_COLUMNS} FROM {schema}.events"
            " WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version"
        )
        self._read_all_sql = read_all_sql(schema)

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
    ) -> AppendResult:
        prepared = prepare(stream_id, expected_version, events)
        return await self._write(stream_id, expected_version, prepared, command_id)

    async def _write(
        self,
        stream_id: str,
        expected_version: int,
        prepared: list[PreparedEvent],
        command_id: UUID | None,
    ) -> AppendResult:
        columns: list[Any] = [
            [p.event.event_id for p in prepared],
            [p.event.type for p in prepared],
            [p.event.schema_version for p in prepared],
            [p.data_json for p in prepared],
            [p.metadata_json for p in prepared],
            [p.event.occurred_at for p in prepared],
            [p.content_hash for p in prepared],
        ]
        sql = self._append_sql
        if len(prepared) == 1:
            sql, columns = self._append_one_sql, [column[0] for column in columns]
        args = [stream_id, expected_version, command_id, *columns]
        # A lost race on the same command id surfaces as a unique violation on `commands`;
        # the second attempt then finds the first outcome. Bounded: that row now exists.
        for _ in range(2):
            try:
                row = await self.pool.fetchrow(sql, *args)
            except asyncpg.UniqueViolationError as exc:
                constraint = exc.constraint_name or ""
                if constraint == "events_pkey":
                    raise ConcurrencyError(stream_id, expected_version) from None
                if constraint == "commands_pkey":
                    continue
                raise InvalidAppendError(
                    f"append to {stream_id!r}: event id already stored"
                ) from None
            except asyncpg.PostgresError as exc:
                if exc.sqlstate == _VERSION_CONFLICT:
                    raise ConcurrencyError(stream_id, expected_version) from None
                raise
            assert row is not None
            return AppendResult(
                stream_id, row["first_version"], row["last_version"], row["duplicate"]
            )
        raise ConcurrencyError(stream_id, expected_version)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        rows = await self.pool.fetch(self._read_stream_sql, stream_id, from_version)
        return [to_recorded(r) for r in rows]

    async def read_all(
        self,
        after: Position = START,
        *,
        until: Position | None = None,
        until_time: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        position = after
        while True:
            rows = await self.pool.fetch(
                self._read_all_sql,
                str(position.tx_id),
                position.seq,
                None if until is None else str(until.tx_id),
                None if until is None else until.seq,
                until_time,
                batch_size,
            )
            for row in rows:
                event = to_recorded(row)
                yield event
                position = event.position
            if len(rows) < batch_size:
                return


@dataclass(slots=True)
class _Pending:
    stream_id: str
    expected_version: int
    prepared: list[PreparedEvent]
    command_id: UUID | None
    outcome: asyncio.Future[AppendResult]

    def settle(self, result: AppendResult | BaseException) -> None:
        if self.outcome.done():  # the caller went away; what was written stays written
            return
        if isinstance(result, BaseException):
            self.outcome.set_exception(result)
        else:
            self.outcome.set_result(result)


class GroupCommitEventStore(PostgresEventStore):
    """Concurrent appends share one transaction and one round trip (group commit).

    An append that arrives while `max_in_flight` batches are being committed waits for the
    next batch, so under load each commit carries many commands; alone, an append is sent at
    once. Each command keeps its own outcome: a stale expected version fails that command
    only. Needs a pool: batches run on connections of their own.
    """

    def __init__(
        self, pool: asyncpg.Pool, schema: str, *, max_batch: int = 32, max_in_flight: int = 2
    ) -> None:
        super().__init__(pool, schema)
        self.max_batch, self.max_in_flight = max_batch, max_in_flight
        self._batch_sql = (
            f"SELECT * FROM {self.schema}.append_batch($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
        )
        self._queue: list[_Pending] = []
        # Counted by hand, not from the tasks: a flusher stops counting in the same step in
        # which it finds the queue empty, so a new append can never wait for one that has left.
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _write(
        self,
        stream_id: str,
        expected_version: int,
        prepared: list[PreparedEvent],
        command_id: UUID | None,
    ) -> AppendResult:
        outcome: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(stream_id, expected_version, prepared, command_id, outcome))
        if self._flushing < self.max_in_flight:
            self._flushing += 1
            flusher = asyncio.create_task(self._flush())
            self._tasks.add(flusher)
            flusher.add_done_callback(self._tasks.discard)
        return await outcome

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    await self._commit(batch)
                except BaseException as exc:  # every waiter hears of it; cancellation goes on
                    for pending in batch:
                        pending.settle(exc)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            self._flushing -= 1

    async def _commit(self, batch: list[_Pending]) -> None:
        events = [p for pending in batch for p in pending.prepared]
        try:
            rows = await self.pool.fetch(
                self._batch_sql,
                [p.stream_id for p in batch],
                [p.expected_version for p in batch],
                [p.command_id for p in batch],
                [len(p.prepared) for p in batch],
                [e.event.event_id for e in events],
                [e.event.type for e in events],
                [e.event.schema_version for e in events],
                [e.data_json for e in events],
                [e.metadata_json for e in events],
                [e.event.occurred_at for e in events],
                [e.content_hash for e in events],
            )
        except asyncpg.PostgresError:
            # The server refused the batch (a race the function does not sort out, such as two
            # commands writing the same new event id) and rolled all of it back: nothing was
            # written, so each command is tried again on its own to get its own answer.
            await asyncio.gather(*(self._alone(pending) for pending in batch))
            return
        for pending, row in zip(batch, rows, strict=True):
            pending.settle(_batch_outcome(pending, row))

    async def _alone(self, pending: _Pending) -> None:
        try:
            result = await super()._write(
                pending.stream_id, pending.expected_version, pending.prepared, pending.command_id
            )
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            pending.settle(exc)
        else:
            pending.settle(result)


def _batch_outcome(pending: _Pending, row: asyncpg.Record) -> AppendResult | Exception:
    status = row["status"]
    if status in ("ok", "duplicate"):
        return AppendResult(
            pending.stream_id, row["first_version"], row["last_version"], status == "duplicate"
        )
    if status == "conflict":
        return ConcurrencyError(pending.stream_id, pending.expected_version)
    return InvalidAppendError(f"append to {pending.stream_id!r}: event id already stored")
