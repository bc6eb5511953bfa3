"""Decider helpers: pure decide/evolve, and the load -> decide -> append command handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

import structlog
from pydantic import BaseModel

from services.runtime.events import (
    CommandReusedError,
    ConcurrencyError,
    EventStore,
    NewEvent,
    RecordedEvent,
)
from services.runtime.logging import get_logger

C = TypeVar("C")  # command
S = TypeVar("S")  # state
E = TypeVar("E", bound=BaseModel)  # domain event (a pydantic model)

log = get_logger(__name__)


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
    """The stream kept moving under the handler; the caller may retry the whole request."""


@dataclass(frozen=True)
class CommandResult(Generic[S, E]):
    stream_id: str
    version: int
    state: S
    events: Sequence[E]
    duplicate: bool


class CommandHandler(Generic[C, S, E]):
    """Load the stream, decide, append with the expected version; retry on a lost race."""

    def __init__(
        self,
        store: EventStore,
        decider: Decider[C, S, E],
        codec: EventCodec[E],
        max_attempts: int = 5,
    ) -> None:
        self.store, self.decider, self.codec, self.max_attempts = (
            store,
            decider,
            codec,
            max_attempts,
        )

    async def handle(self, stream_id: str, command: C, ctx: CommandContext) -> CommandResult[S, E]:
        with structlog.contextvars.bound_contextvars(
            stream_id=stream_id, correlation_id=ctx.correlation_id
        ):
            return await self._handle(stream_id, command, ctx)

    async def _handle(self, stream_id: str, command: C, ctx: CommandContext) -> CommandResult[S, E]:
        for attempt in range(1, self.max_attempts + 1):
            recorded = await self.store.read_stream(stream_id)
            history = [self.codec.decode(r) for r in recorded]
            repeat = _outcome_of(ctx.command_id, recorded)
            if repeat is not None:
                # The command ran before: answer as it did then, whatever the stream holds now,
                # unless its id came back with another request.
                await self._same_request(ctx)
                first, last = repeat
                done = history[first - 1 : last]
                return CommandResult(stream_id, last, self.decider.fold(history[:last]), done, True)
            state = self.decider.fold(history)
            events = self.decider.decide(command, state)
            if not events:
                return CommandResult(stream_id, len(recorded), state, [], duplicate=False)
            new = [self._to_new(e, ctx) for e in events]
            try:
                result = await self.store.append(
                    stream_id, len(recorded), new, ctx.command_id, ctx.fingerprint
                )
            except ConcurrencyError:
                log.info("stream moved, deciding again", stream_id=stream_id, attempt=attempt)
                continue
            if result.duplicate:  # the same command won a race against this very attempt
                continue
            return CommandResult(
                stream_id, result.last_version, self.decider.fold(events, state), events, False
            )
        raise RetriesExhaustedError(stream_id, -1)

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
