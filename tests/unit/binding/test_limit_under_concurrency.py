"""The limit holds under concurrent requests because it is checked in the holder's one stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID, uuid4

from services.binding.domain import Status, binding_decider
from services.binding.errors import FamilyFullError
from services.binding.events import binding_codec
from services.runtime.decider import CommandContext, CommandHandler
from services.runtime.events import AppendResult, ConcurrencyError, NewEvent, RecordedEvent
from services.runtime.memory import InMemoryEventStore
from tests.unit.binding.builders import HOLDER, NOW, request


class InterleavingStore(InMemoryEventStore):
    """Yields after each read, so every request reads the stream before any of them appends."""

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


async def test_thirty_concurrent_requests_for_different_members_admit_exactly_five() -> None:
    store = InterleavingStore()
    handler = CommandHandler(store, binding_decider, binding_codec, max_attempts=10)

    async def ask(n: int) -> object:
        ctx = CommandContext(command_id=uuid4(), now=NOW, correlation_id=f"c{n}", actor=HOLDER)
        return await handler.handle(HOLDER, request(f"p-m{n}"), ctx)

    outcomes = await asyncio.gather(*(ask(n) for n in range(30)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert store.lost_races > 0  # the requests did race
    assert len(refused) == 25
    assert all(isinstance(o, FamilyFullError) for o in refused)
    history = [binding_codec.decode(r) for r in await store.read_stream(HOLDER)]
    live = binding_decider.fold(history).requests.values()
    assert sum(r.status is Status.PENDING for r in live) == 5
