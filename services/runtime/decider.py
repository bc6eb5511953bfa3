"""Decider helpers: pure decide/evolve, and the load -> decide -> append command handler."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID
from weakref import WeakValueDictionary

import structlog
from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from services.runtime.events import (
    CommandReusedError,
    ConcurrencyError,
    EventStore,
    NewEvent,
    RecordedEvent,
)

C = TypeVar("C")  # command
S = TypeVar("S")  # state
E = TypeVar("E", bound=BaseModel)  # domain event (a pydantic model)

# structlog itself, not services.runtime.logging: that one classifies the drivers' outage errors,
# and the deciders here must reach no driver (the import-linter contract `pure-no-io`).
log: structlog.stdlib.BoundLogger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Decider(Generic[C, S, E]):
    """A stream's behaviour as three pure functions (Chassaing's decider)."""

    decide: Callable[[C, S], Sequence[E]]
    evolve: Callable[[S, E], S]
    initial_state: Callable[[], S]

    def fold(self, events: Sequence[E], state: S | None = None) -> S:
        current = self.initial_state() if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current


class EventCodec(Protocol[E]):
    """Turns domain events into stored ones and back (upcasting old schema versions on read)."""

    def encode(self, event: E) -> tuple[str, int, Mapping[str, Any]]: ...

    def decode(self, recorded: RecordedEvent) -> E: ...


@dataclass(frozen=True)
class CommandContext:
    """What a command brings that the domain must not invent: ids, time, who and why."""

    command_id: UUID
    now: datetime
    correlation_id: str
    actor: str
    causation_id: str | None = None
    # The request an Idempotency-Key came with (services.runtime.idempotency); kept with the
    # command, never in the events' metadata.
    fingerprint: bytes | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "command_id": str(self.command_id),
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "actor": self.actor,
        }


class RetriesExhaustedError(ConcurrencyError):
    """The stream kept moving under the handler until the retry deadline passed: other writers
    outside this process held it all that time. The caller may retry the whole request."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a command that lost its stream to another writer tries again: it reloads and decides
    again after a random pause in a window that doubles from `first_window_s` to at most
    `max_window_s` (full jitter, so writers that collided do not collide again in step), until
    `deadline_s` has passed since its first attempt.

    Bound by time, not by a count: each retry against a crowded stream loses again with a
    chance that grows with the crowd, so a small count answered "busy" to requests that would
    have had a definite answer a moment later (6 of 30 of one holder's requests lost 5 races
    in a row). Writers in one process do not race at all (they take turns, see
    `CommandHandler`); those of other processes converge within milliseconds. Reaching the
    deadline means the stream stayed contended for seconds: pathological, answered 409
    `request.busy`."""

    deadline_s: float = 5.0
    first_window_s: float = 0.002
    max_window_s: float = 0.1

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(ConcurrencyError),
            stop=stop_after_delay(self.deadline_s),
            wait=wait_random_exponential(multiplier=self.first_window_s, max=self.max_window_s),
            before_sleep=_lost_race,
        )


def _lost_race(state: RetryCallState) -> None:
    log.info("stream moved, deciding again", attempt=state.attempt_number)


@dataclass(frozen=True)
class CommandResult(Generic[S, E]):
    stream_id: str
    version: int
    state: S
    events: Sequence[E]
    duplicate: bool


class CommandHandler(Generic[C, S, E]):
    """Load the stream, decide, append with the expected version; retry on a lost race.

    The commands this handler runs on one stream take turns: with one holder's 30 requests
    at once, each reads the stream its predecessor left, so none of them loses a race and the
    sixth is refused as soon as it reads five. Only writers in other processes (or through
    another handler) still race, and those are retried under `retry`."""

    def __init__(
        self,
        store: EventStore,
        decider: Decider[C, S, E],
        codec: EventCodec[E],
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.store, self.decider, self.codec, self.retry = store, decider, codec, retry
        # A stream's lock lives while a command holds or awaits it.
        self._turns: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    async def handle(self, stream_id: str, command: C, ctx: CommandContext) -> CommandResult[S, E]:
        with structlog.contextvars.bound_contextvars(
            stream_id=stream_id, correlation_id=ctx.correlation_id
        ):
            turn = self._turns.setdefault(stream_id, asyncio.Lock())
            async with turn:
                try:
                    result: CommandResult[S, E] = await self.retry.retrying()(
                        self._attempt, stream_id, command, ctx
                    )
                except RetryError as exc:
                    raise RetriesExhaustedError(stream_id, -1) from exc
                return result

    async def _attempt(
        self, stream_id: str, command: C, ctx: CommandContext
    ) -> CommandResult[S, E]:
        recorded = await self.store.read_stream(stream_id)
        repeat = await self._repeat(stream_id, recorded, ctx)
        if repeat is not None:
            return repeat
        history = [self.codec.decode(r) for r in recorded]
        state = self.decider.fold(history)
        events = self.decider.decide(command, state)
        if not events:
            return CommandResult(stream_id, len(recorded), state, [], duplicate=False)
        new = [self._to_new(e, ctx) for e in events]
        result = await self.store.append(
            stream_id, len(recorded), new, ctx.command_id, ctx.fingerprint
        )
        if result.duplicate:
            # The same command, sent again, won a race against this very attempt: the next
            # attempt finds its outcome in the stream.
            raise ConcurrencyError(stream_id, len(recorded))
        return CommandResult(
            stream_id, result.last_version, self.decider.fold(events, state), events, False
        )

    async def first_outcome(
        self, stream_id: str, ctx: CommandContext
    ) -> CommandResult[S, E] | None:
        """The outcome of `ctx`'s command if it has written to the stream already (a retry);
        None if it has not. For a handler whose work before the append must not be done again
        on a retry (a KDF run against a password that has changed since, a new pseudonym)."""
        return await self._repeat(stream_id, await self.store.read_stream(stream_id), ctx)

    async def _repeat(
        self, stream_id: str, recorded: Sequence[RecordedEvent], ctx: CommandContext
    ) -> CommandResult[S, E] | None:
        outcome = _outcome_of(ctx.command_id, recorded)
        if outcome is None:
            return None
        # The command ran before: answer as it did then, whatever the stream holds now,
        # unless its id came back with another request.
        await self._same_request(ctx)
        first, last = outcome
        history = [self.codec.decode(r) for r in recorded[:last]]
        return CommandResult(
            stream_id, last, self.decider.fold(history), history[first - 1 :], True
        )

    async def _same_request(self, ctx: CommandContext) -> None:
        if ctx.fingerprint is None:
            return
        recorded_with = await self.store.command_fingerprint(ctx.command_id)
        if recorded_with is not None and recorded_with != ctx.fingerprint:
            raise CommandReusedError

    def _to_new(self, event: E, ctx: CommandContext) -> NewEvent:
        event_type, schema_version, data = self.codec.encode(event)
        return NewEvent(event_type, data, ctx.now, schema_version, ctx.metadata())


def _outcome_of(command_id: UUID, recorded: Sequence[RecordedEvent]) -> tuple[int, int] | None:
    """First and last stream version a command wrote, found through the events' metadata."""
    wanted = str(command_id)
    versions = [r.stream_version for r in recorded if r.metadata.get("command_id") == wanted]
    return (versions[0], versions[-1]) if versions else None
