"""Test data builders: events as another service's store would have recorded them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.runtime.events import NewEvent, Position, RecordedEvent, chain, prepare

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
