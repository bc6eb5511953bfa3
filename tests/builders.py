"""Test data builders: events as another service's store would have recorded them, and an
in-memory store that makes concurrent commands interleave."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from services.runtime.events import (
    AppendResult,
    ConcurrencyError,
    NewEvent,
    Position,
    RecordedEvent,
    chain,
    prepare,
)
from services.runtime.memory import InMemoryEventStore

FIRST = Position(1, 1)


def recorded_event(
    stream_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    at: datetime,
    metadata: dict[str, Any] | None = None,
    position: Position = FIRST,
) -> RecordedEvent:
    """The first event of `stream_id`, serialised and hashed as every store does it."""
    (p,) = prepare(stream_id, 0, [NewEvent(event_type, data, at, metadata=metadata or {})])
    return RecordedEvent(
        stream_id=stream_id,
        stream_version=p.stream_version,
        position=position,
        event_id=p.event.event_id,
        type=event_type,
        schema_version=p.event.schema_version,
        data_json=p.data_json,
        metadata_json=p.metadata_json,
        occurred_at=at,
        recorded_at=at,
        content_hash=p.content_hash,
        chain_hash=chain(b"", p.content_hash),
    )


class InterleavingStore(InMemoryEventStore):
    """Yields after each read, so that commands running at once would all read the stream
    before any of them appends; counts the appends that lost the race."""

    lost_races = 0

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        events = await super().read_stream(stream_id, from_version)
        await asyncio.sleep(0)
        return events

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        try:
            return await super().append(
                stream_id, expected_version, events, command_id, fingerprint
            )
        except ConcurrencyError:
            self.lost_races += 1
            raise
