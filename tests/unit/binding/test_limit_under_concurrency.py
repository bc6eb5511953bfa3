"""The limit holds under concurrent requests because it is checked in the holder's one stream,
and every request gets a definite answer: admitted or refused as full, never "busy"."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from services.binding.domain import Status, binding_decider
from services.binding.errors import FamilyFullError
from services.binding.events import binding_codec
from services.runtime.decider import CommandContext, CommandHandler
from tests.builders import InterleavingStore
from tests.unit.binding.builders import HOLDER, NOW, request


async def thirty_requests(*handlers: CommandHandler[Any, Any, Any]) -> list[object]:
    """Thirty requests of one holder for different members at once, spread over `handlers`."""

    async def ask(n: int) -> object:
        ctx = CommandContext(command_id=uuid4(), now=NOW, correlation_id=f"c{n}", actor=HOLDER)
        return await handlers[n % len(handlers)].handle(HOLDER, request(f"p-m{n}"), ctx)

    return await asyncio.gather(*(ask(n) for n in range(30)), return_exceptions=True)


async def admitted(store: InterleavingStore) -> int:
    history = [binding_codec.decode(r) for r in await store.read_stream(HOLDER)]
    live = binding_decider.fold(history).requests.values()
    return sum(r.status is Status.PENDING for r in live)


async def test_thirty_concurrent_requests_in_one_process_admit_five_and_refuse_25_as_full() -> None:
    store = InterleavingStore()
    outcomes = await thirty_requests(CommandHandler(store, binding_decider, binding_codec))
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert [type(o) for o in refused] == [FamilyFullError] * 25
    assert await admitted(store) == 5
    assert store.lost_races == 0  # they took turns on the holder's stream


async def test_thirty_requests_over_three_processes_race_yet_every_answer_is_definite() -> None:
    store = InterleavingStore()
    handlers = [CommandHandler(store, binding_decider, binding_codec) for _ in range(3)]
    outcomes = await thirty_requests(*handlers)
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert store.lost_races > 0  # the requests did race
    assert [type(o) for o in refused] == [FamilyFullError] * 25  # none "busy, try again"
    assert await admitted(store) == 5
