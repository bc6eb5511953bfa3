"""Event-store value types, errors and the store port shared by every adapter."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID, uuid4

from contracts.errors import DomainError

NO_STREAM = 0
"""Expected version of a stream that has no events yet."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class EventStoreError(Exception):
    """Base of the event store's typed errors."""


class ConcurrencyError(EventStoreError):
    """The stream moved on since it was read: reload, decide again, retry."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        found = "another writer got there first" if actual is None else f"it is at {actual}"
        super().__init__(f"stream {stream_id!r}: expected version {expected}, {found}")


class CommandReusedError(EventStoreError, DomainError):
    """A command id came back with another request than the one it was recorded with: an
    Idempotency-Key reused for a different request (422, as the IETF draft on the header says)."""

    code = "request.key_reused"
    message_zh = "该幂等键已用于另一个不同的请求"
    message_en = "This idempotency key was already used for a different request"


class InvalidAppendError(EventStoreError, ValueError):
    """The append itself is malformed (no events, bad version, duplicate event id)."""


def check_schema_name(schema: str) -> str:
    """Schemas are interpolated into SQL, so only plain lower-case identifiers are allowed."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use [a-z_][a-z0-9_]*, 63 chars max")
    return schema


class Position(NamedTuple):
    """A place in a schema's global order: the writing transaction, then the sequence number.

    `seq` alone is unique but not commit-ordered; the pair is both.
    """

    tx_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.tx_id}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Position:
        tx_id, _, seq = text.partition(":")
        try:
            return cls(int(tx_id), int(seq))
        except ValueError:
            raise ValueError(f"invalid position {text!r}: expected <tx_id>:<seq>") from None


START = Position(0, 0)


def _canonical_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. Time and ids come from the caller (the domain holds no clock)."""

    type: str
    data: Mapping[str, Any]
    occurred_at: datetime
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    event_id: UUID = field(default_factory=uuid4)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise InvalidAppendError(f"event {self.type}: occurred_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: `data_json`/`metadata_json` are the exact texts that were hashed."""

    stream_id: str
    stream_version: int
    position: Position
    event_id: UUID
    type: str
    schema_version: int
    data_json: str
    metadata_json: str
    occurred_at: datetime
    recorded_at: datetime
    content_hash: bytes
    chain_hash: bytes

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.data_json)  # type: ignore[no-any-return]

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_json)  # type: ignore[no-any-return]

    def recompute_content_hash(self) -> bytes:
        """What the content hash must be for the row as it stands now."""
        return content_hash(
            stream_id=self.stream_id,
            stream_version=self.stream_version,
            event_id=self.event_id,
            event_type=self.type,
            schema_version=self.schema_version,
            occurred_at=self.occurred_at,
            data_json=self.data_json,
            metadata_json=self.metadata_json,
        )


class EventRecord(Protocol):
    """What a read model sees of an event, from its own log or from another service's topic."""

    @property
    def event_id(self) -> UUID: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def stream_version(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of an append; a repeated command id gives the first outcome with duplicate=True."""

    stream_id: str
    first_version: int
    last_version: int
    duplicate: bool = False


def content_hash(
    *,
    stream_id: str,
    stream_version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    occurred_at: datetime,
    data_json: str,
    metadata_json: str,
) -> bytes:
    """SHA-256 over every field an event states, each length-prefixed so none can bleed over."""
    parts = [
        text.encode()
        for text in (
            stream_id,
            str(stream_version),
            str(event_id),
            event_type,
            str(schema_version),
            occurred_at.astimezone(UTC).isoformat(),
            data_json,
            metadata_json,
        )
    ]
    return hashlib.sha256(b"".join(len(p).to_bytes(8, "big") + p for p in parts)).digest()


def chain(prev_hash: bytes, content: bytes) -> bytes:
    return hashlib.sha256(prev_hash + content).digest()


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A NewEvent serialised and hashed for a given stream version."""

    event: NewEvent
    stream_version: int
    data_json: str
    metadata_json: str
    content_hash: bytes


def prepare(
    stream_id: str, expected_version: int, events: Sequence[NewEvent]
) -> list[PreparedEvent]:
    """Validate an append and serialise its events once, for any adapter."""
    if not stream_id:
        raise InvalidAppendError("stream_id must not be empty")
    if expected_version < NO_STREAM:
        raise InvalidAppendError(f"expected_version must be >= 0, got {expected_version}")
    if not events:
        raise InvalidAppendError(f"append to {stream_id!r} carries no events")
    if len({e.event_id for e in events}) != len(events):
        raise InvalidAppendError(f"append to {stream_id!r} repeats an event id")
    prepared = []
    for offset, event in enumerate(events, start=1):
        version = expected_version + offset
        data_json = _canonical_json(event.data)
        metadata_json = _canonical_json(event.metadata)
        digest = content_hash(
            stream_id=stream_id,
            stream_version=version,
            event_id=event.event_id,
            event_type=event.type,
            schema_version=event.schema_version,
            occurred_at=event.occurred_at,
            data_json=data_json,
            metadata_json=metadata_json,
        )
        prepared.append(PreparedEvent(event, version, data_json, metadata_json, digest))
    return prepared


class EventStore(Protocol):
    """The port every service writes and reads its log through."""

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        """A repeated `command_id` returns the first outcome; with another `fingerprint` than
        the one it was recorded with it raises CommandReusedError (neither writes anything)."""
        ...

    async def command_fingerprint(self, command_id: UUID) -> bytes | None:
        """The fingerprint a command was recorded with (None: without one, or not recorded)."""
        ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]: ...

    def read_all(
        self,
        after: Position = START,
        *,
        until: Position | None = None,
        until_time: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]: ...
