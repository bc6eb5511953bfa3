"""In-memory event store with the PostgreSQL store's behaviour, for unit tests only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from services.runtime.events import (
    START,
    AppendResult,
    CommandReusedError,
    ConcurrencyError,
    EventStore,
    InvalidAppendError,
    NewEvent,
    Position,
    RecordedEvent,
    chain,
    prepare,
)


class InMemoryEventStore:
    """Same contract as PostgresEventStore; every append is its own committed transaction."""

    def __init__(self) -> None:
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._log: list[RecordedEvent] = []
        self._commands: dict[UUID, tuple[AppendResult, bytes | None]] = {}
        self._event_ids: set[UUID] = set()
        self._lock = asyncio.Lock()
        self._tx_id = 0

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        prepared = prepare(stream_id, expected_version, events)
        async with self._lock:
            if command_id is not None and command_id in self._commands:
                first, recorded_with = self._commands[command_id]
                if None not in (fingerprint, recorded_with) and fingerprint != recorded_with:
                    raise CommandReusedError
                return AppendResult(first.stream_id, first.first_version, first.last_version, True)
            stream = self._streams.setdefault(stream_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyError(stream_id, expected_version, len(stream))
            if self._event_ids.intersection(p.event.event_id for p in prepared):
                raise InvalidAppendError(f"append to {stream_id!r}: event id already stored")
            self._tx_id += 1
            prev = stream[-1].chain_hash if stream else b""
            now = datetime.now(UTC)
            for p in prepared:
                prev = chain(prev, p.content_hash)
                recorded = RecordedEvent(
                    stream_id=stream_id,
                    stream_version=p.stream_version,
                    position=Position(self._tx_id, len(self._log) + 1),
                    event_id=p.event.event_id,
                    type=p.event.type,
                    schema_version=p.event.schema_version,
                    data_json=p.data_json,
                    metadata_json=p.metadata_json,
                    occurred_at=p.event.occurred_at,
                    recorded_at=now,
                    content_hash=p.content_hash,
                    chain_hash=prev,
                )
                stream.append(recorded)
                self._log.append(recorded)
                self._event_ids.add(recorded.event_id)
            result = AppendResult(stream_id, expected_version + 1, expected_version + len(prepared))
            if command_id is not None:
                self._commands[command_id] = (result, fingerprint)
            return result

    async def command_fingerprint(self, command_id: UUID) -> bytes | None:
        recorded = self._commands.get(command_id)
        return None if recorded is None else recorded[1]

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        return [e for e in self._streams.get(stream_id, []) if e.stream_version >= from_version]

    async def read_all(
        self,
        after: Position = START,
        *,
        until: Position | None = None,
        until_time: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        for event in list(self._log):
            if event.position <= after:
                continue
            if until is not None and event.position > until:
                return
            if until_time is not None and event.recorded_at > until_time:
                return
            yield event


if TYPE_CHECKING:  # mypy proves that the adapters and the fake all implement the port
    from services.runtime.pgstore import GroupCommitEventStore, PostgresEventStore

    _ports: tuple[type[EventStore], ...] = (
        PostgresEventStore,
        GroupCommitEventStore,
        InMemoryEventStore,
    )
