"""The PostgreSQL event store: one round trip per append (or group), an order that never skips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.runtime.events import (
    START,
    AppendResult,
    CommandReusedError,
    ConcurrencyError,
    EventStoreError,
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


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One command's append, validated and serialised (see `prepare`)."""

    stream_id: str
    expected_version: int
    events: list[PreparedEvent]
    command_id: UUID | None
    fingerprint: bytes | None


class PostgresEventStore:
    """Event store of one service schema (created by `migrate`)."""

    def __init__(self, pool: Executor, schema: str) -> None:
        self.pool = pool
        self.schema = check_schema_name(schema)
        self._append_sql = (
            f"SELECT * FROM {schema}.append_batch($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"
        )
        self._fingerprint_sql = f"SELECT fingerprint FROM {schema}.commands WHERE command_id = $1"
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
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        prepared = prepare(stream_id, expected_version, events)
        request = AppendRequest(stream_id, expected_version, prepared, command_id, fingerprint)
        return await self._write(request)

    async def command_fingerprint(self, command_id: UUID) -> bytes | None:
        found = await self.pool.fetchval(self._fingerprint_sql, command_id)
        return None if found is None else bytes(found)

    async def _write(self, request: AppendRequest) -> AppendResult:
        try:
            (row,) = await self._append_all([request])
        except asyncpg.UniqueViolationError:
            # append_batch() sorts out versions and command ids itself; what is left is an
            # event id that is already stored (the unique index on event_id says so).
            raise _event_id_stored(request) from None
        return _outcome(request, row)

    async def _append_all(self, requests: Sequence[AppendRequest]) -> list[asyncpg.Record]:
        """One round trip, one transaction: a status row per request, in order."""
        events = [e for request in requests for e in request.events]
        return await self.pool.fetch(
            self._append_sql,
            [r.stream_id for r in requests],
            [r.expected_version for r in requests],
            [r.command_id for r in requests],
            [len(r.events) for r in requests],
            [e.event.event_id for e in events],
            [e.event.type for e in events],
            [e.event.schema_version for e in events],
            [e.data_json for e in events],
            [e.metadata_json for e in events],
            [e.event.occurred_at for e in events],
            [e.content_hash for e in events],
            [r.fingerprint for r in requests],
        )

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        rows = await self.pool.fetch(self._read_stream_sql, stream_id, from_version)
        return [to_recorded(r) for r in rows]

    async def last_position(self) -> Position:
        """The newest committed event's position (START for an empty log); readers reach it
        once every older transaction in the cluster has ended."""
        row = await self.pool.fetchrow(
            f"SELECT tx_id::text::bigint AS tx_id, seq FROM {self.schema}.events"
            " ORDER BY tx_id DESC, seq DESC LIMIT 1"
        )
        return START if row is None else Position(row["tx_id"], row["seq"])

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
    request: AppendRequest
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
        self._queue: list[_Pending] = []
        # Counted by hand, not from the tasks: a flusher stops counting in the same step in
        # which it finds the queue empty, so a new append can never wait for one that has left.
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _write(self, request: AppendRequest) -> AppendResult:
        outcome: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(request, outcome))
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
        try:
            rows = await self._append_all([p.request for p in batch])
        except asyncpg.PostgresError:
            # The server refused the batch (such as for an event id that is already stored) and
            # rolled all of it back: nothing was written, so each command is tried again on
            # its own to get its own answer.
            await asyncio.gather(*(self._alone(pending) for pending in batch))
            return
        for pending, row in zip(batch, rows, strict=True):
            try:
                pending.settle(_outcome(pending.request, row))
            except EventStoreError as exc:
                pending.settle(exc)

    async def _alone(self, pending: _Pending) -> None:
        try:
            result = await super()._write(pending.request)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            pending.settle(exc)
        else:
            pending.settle(result)


def _event_id_stored(request: AppendRequest) -> InvalidAppendError:
    return InvalidAppendError(f"append to {request.stream_id!r}: event id already stored")


def _outcome(request: AppendRequest, row: asyncpg.Record) -> AppendResult:
    """The result of one request of append_batch(), or the error it stands for."""
    status = row["status"]
    if status == "conflict":
        raise ConcurrencyError(request.stream_id, request.expected_version)
    if status == "reused":
        raise CommandReusedError
    return AppendResult(
        request.stream_id, row["first_version"], row["last_version"], status == "duplicate"
    )
