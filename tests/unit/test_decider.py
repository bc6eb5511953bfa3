"""Decider helpers: given/when/then specs and the load -> decide -> append handler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar
from uuid import uuid4

import pytest
from tenacity import RetryCallState

from services.runtime.codec import DomainEvent, PydanticCodec, UnknownEventTypeError
from services.runtime.decider import (
    CommandContext,
    CommandHandler,
    Decider,
    RetriesExhaustedError,
    RetryPolicy,
)
from services.runtime.events import NO_STREAM, ConcurrencyError, NewEvent
from services.runtime.memory import InMemoryEventStore
from tests.builders import InterleavingStore
from tests.specs import DeciderSpec

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


# A toy stream: a list that holds at most two names.
class NameAdded(DomainEvent):
    name: str


class NameAddedV2(DomainEvent):
    """Version 2 of the same fact, stored under the same type name through an upcaster."""

    schema_version: ClassVar[int] = 2
    name: str
    source: str


@dataclass(frozen=True)
class AddName:
    name: str


class ListFullError(Exception):
    pass


def decide(command: AddName, state: tuple[str, ...]) -> Sequence[NameAdded]:
    if command.name in state:
        return []
    if len(state) >= 2:
        raise ListFullError(f"{command.name}: the list already holds {len(state)} names")
    return [NameAdded(name=command.name)]


def evolve(state: tuple[str, ...], event: NameAdded) -> tuple[str, ...]:
    return (*state, event.name)


names: Decider[AddName, tuple[str, ...], NameAdded] = Decider(decide, evolve, tuple)
spec = DeciderSpec(names)
codec = PydanticCodec([NameAdded])


def ctx() -> CommandContext:
    return CommandContext(command_id=uuid4(), now=NOW, correlation_id="corr-1", actor="tester")


def test_adding_a_new_name_records_it() -> None:
    spec.given([]).when(AddName("a")).then([NameAdded(name="a")])


def test_adding_a_known_name_records_nothing() -> None:
    spec.given([NameAdded(name="a")]).when(AddName("a")).then([])


def test_a_full_list_refuses_a_third_name() -> None:
    spec.given([NameAdded(name="a"), NameAdded(name="b")]).when(AddName("c")).raises(
        ListFullError, match="already holds 2"
    )


def test_a_wrong_expectation_fails_the_spec() -> None:
    with pytest.raises(AssertionError):
        spec.given([]).when(AddName("a")).then([NameAdded(name="b")])


async def test_handler_appends_decided_events_with_context_metadata() -> None:
    store = InMemoryEventStore()
    handler = CommandHandler(store, names, codec)
    result = await handler.handle("list-1", AddName("a"), ctx())
    assert result.state == ("a",)
    assert result.version == 1
    (stored,) = await store.read_stream("list-1")
    assert stored.metadata["correlation_id"] == "corr-1"
    assert stored.occurred_at == NOW


async def test_handler_repeat_of_a_command_returns_the_first_outcome() -> None:
    store = InMemoryEventStore()
    handler = CommandHandler(store, names, codec)
    context = ctx()
    first = await handler.handle("list-1", AddName("a"), context)
    await handler.handle("list-1", AddName("b"), ctx())
    again = await handler.handle("list-1", AddName("zzz"), context)
    assert again.duplicate
    assert (again.version, again.state, list(again.events)) == (first.version, ("a",), first.events)
    assert len(await store.read_stream("list-1")) == 2


class RacingStore(InMemoryEventStore):
    """Lets another writer slip in before each of the handler's first `races` appends."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races, self.appends = races, 0

    async def append(self, stream_id, expected_version, events, command_id=None, fingerprint=None):  # type: ignore[no-untyped-def]
        self.appends += 1
        if self.races > 0:
            self.races -= 1
            other = NewEvent("NameAdded", {"name": f"other-{self.races}"}, NOW)
            await super().append(stream_id, expected_version, [other])
        return await super().append(stream_id, expected_version, events, command_id, fingerprint)


# The default deadline, shorter pauses: tests that lose many races need not wait long.
QUICK = RetryPolicy(first_window_s=0.001, max_window_s=0.005)

# Adds every name: a stream that never refuses, so only the races decide the outcome.
ANY_NAME: Decider[AddName, tuple[str, ...], NameAdded] = Decider(
    lambda c, s: [NameAdded(name=c.name)], evolve, tuple
)


async def test_handler_decides_again_after_losing_a_race() -> None:
    store = RacingStore(races=1)
    result = await CommandHandler(store, names, codec).handle("list-1", AddName("a"), ctx())
    assert result.state == ("other-0", "a")


async def test_handler_decides_again_against_the_new_state_and_may_refuse() -> None:
    store = RacingStore(races=2)
    with pytest.raises(ListFullError):
        await CommandHandler(store, names, codec).handle("list-1", AddName("a"), ctx())


async def test_a_command_that_loses_many_races_in_a_row_still_gets_a_definite_answer() -> None:
    store = RacingStore(races=20)  # a count of 5 attempts answered "busy" here
    handler = CommandHandler(store, ANY_NAME, codec, QUICK)
    result = await handler.handle("list-1", AddName("a"), ctx())
    assert (result.state[-1], len(result.state), store.appends) == ("a", 21, 21)


async def test_a_refusal_the_stream_already_decides_comes_at_once() -> None:
    store = RacingStore(races=0)
    handler = CommandHandler(store, names, codec)
    for name in ("a", "b"):
        await handler.handle("list-1", AddName(name), ctx())
    with pytest.raises(ListFullError):
        await handler.handle("list-1", AddName("c"), ctx())
    assert store.appends == 2  # the refusal tried no append, so it waited for no retry


async def test_handler_gives_up_only_when_the_stream_stays_contended_past_its_deadline() -> None:
    store = RacingStore(races=10**9)
    handler = CommandHandler(store, ANY_NAME, codec, replace(QUICK, deadline_s=0.1))
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError):
        await handler.handle("list-1", AddName("a"), ctx())
    assert time.monotonic() - started >= 0.1
    assert store.appends > 5  # bound by time, not by a count of attempts
    assert issubclass(RetriesExhaustedError, ConcurrencyError)


def test_the_pause_before_a_retry_is_drawn_from_a_window_that_doubles_up_to_a_maximum() -> None:
    policy = RetryPolicy(first_window_s=0.002, max_window_s=0.1)
    wait = policy.retrying().wait
    for attempt in range(1, 12):
        state = RetryCallState(policy.retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        pauses = {wait(state) for _ in range(50)}
        window = min(0.002 * 2 ** (attempt - 1), 0.1)
        assert all(0 <= p <= window for p in pauses)
        assert len(pauses) > 1  # jittered: writers that collided do not retry in step


async def test_commands_on_one_stream_in_one_process_take_turns_and_never_race() -> None:
    store = InterleavingStore()
    handler = CommandHandler(store, ANY_NAME, codec)
    await asyncio.gather(*(handler.handle("list-1", AddName(f"n{k}"), ctx()) for k in range(30)))
    assert (store.lost_races, len(await store.read_stream("list-1"))) == (0, 30)
    other = CommandHandler(store, ANY_NAME, codec)  # another process's writers do race
    await asyncio.gather(
        *(h.handle("list-2", AddName(f"n{k}"), ctx()) for k in range(30) for h in (handler, other))
    )
    assert store.lost_races > 0
    assert len(await store.read_stream("list-2")) == 60


async def test_codec_upcasts_old_versions_on_read() -> None:
    store = InMemoryEventStore()
    await store.append(
        "l", NO_STREAM, [NewEvent("NameAddedV2", {"name": "a"}, NOW, schema_version=1)]
    )
    upcasting = PydanticCodec([NameAddedV2], {("NameAddedV2", 1): lambda d: {**d, "source": "v1"}})
    (stored,) = await store.read_stream("l")
    assert upcasting.decode(stored) == NameAddedV2(name="a", source="v1")
    with pytest.raises(UnknownEventTypeError):
        codec.decode(stored)
