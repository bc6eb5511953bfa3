"""An event-store view that keeps a person's PersonalData encrypted at rest with their data key.

Why a store wrapper and not a codec: the runtime's CommandHandler calls its codec
synchronously, while the key vault is asynchronous (keys live in PostgreSQL and are read on
every use, so an erasure takes effect at once). The store port is asynchronous already, so
sealing on append and opening on read sits there, and the domain keeps plain PersonalData.
Records read through this view are opened copies: their data no longer matches the content
hash, so integrity checks and the relay read the inner store (which publishes ciphertext).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from services.runtime.events import (
    START,
    AppendResult,
    EventStore,
    NewEvent,
    Position,
    RecordedEvent,
)
from services.runtime.pii import ERASED, KeyVault

# The event field that holds a person's PersonalData, and the field naming whose data it is.
SEALED_FIELD = "personal"
OWNER_FIELD = "pseudonym"


class SealingEventStore:
    """Encrypts each `personal` value field by field (context = field name) before the append;
    decrypts on read, where an erased person's `personal` reads as None."""

    def __init__(self, inner: EventStore, vault: KeyVault) -> None:
        self.inner, self.vault = inner, vault

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        command_id: UUID | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        sealed = [await self._seal(e) for e in events]
        return await self.inner.append(stream_id, expected_version, sealed, command_id, fingerprint)

    async def command_fingerprint(self, command_id: UUID) -> bytes | None:
        return await self.inner.command_fingerprint(command_id)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        return [await self._open(r) for r in await self.inner.read_stream(stream_id, from_version)]

    async def read_all(
        self,
        after: Position = START,
        *,
        until: Position | None = None,
        until_time: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        events = self.inner.read_all(
            after, until=until, until_time=until_time, batch_size=batch_size
        )
        async for recorded in events:
            yield await self._open(recorded)

    async def _seal(self, event: NewEvent) -> NewEvent:
        personal = event.data.get(SEALED_FIELD)
        if not isinstance(personal, Mapping):
            return event
        owner = str(event.data[OWNER_FIELD])
        names = list(personal)
        tokens = await asyncio.gather(
            *(self.vault.encrypt(owner, str(personal[n]), context=n) for n in names)
        )
        data = {**event.data, SEALED_FIELD: dict(zip(names, tokens, strict=True))}
        return dataclasses.replace(event, data=data)

    async def _open(self, recorded: RecordedEvent) -> RecordedEvent:
        data = recorded.data
        sealed = data.get(SEALED_FIELD)
        if not isinstance(sealed, dict):
            return recorded
        owner = str(data[OWNER_FIELD])
        plain = await asyncio.gather(
            *(self.vault.decrypt(owner, token, context=n) for n, token in sealed.items())
        )
        opened: dict[str, Any] | None = dict(zip(sealed, plain, strict=True))
        if any(p is ERASED for p in plain):
            opened = None
        data_json = json.dumps({**data, SEALED_FIELD: opened}, ensure_ascii=False)
        return dataclasses.replace(recorded, data_json=data_json)
