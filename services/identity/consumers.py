"""Identity's consumers of other services' topics: a bind request opens the face check it needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid5

import asyncpg

from contracts import binding
from contracts.envelope import Envelope, event_type
from services.identity.face_check import MAX_WAIT, FacePurpose
from services.identity.handlers import IdentityHandlers
from services.runtime.consumer import DeadLetters, Inbox, InboxConsumer
from services.runtime.decider import CommandContext
from services.runtime.logging import get_logger

log = get_logger(__name__)

BIND_REQUESTS_CONSUMER = "identity.bind-requests"
MEMBER_BIND_REQUESTED = event_type("binding", "MemberBindRequested", 1)
PURPOSE_OF: dict[binding.FaceCheckNeeded, FacePurpose] = {
    "member": FacePurpose.MEMBER_BINDING,
    "mother": FacePurpose.NEWBORN_MOTHER,
}


class BindRequests:
    """The inbox handler. Its effect is not in the inbox's transaction (the handlers write
    through their own stores), so a redelivery is made harmless by the command id instead: it
    derives from the event id, and the face check id from the command id."""

    def __init__(self, handlers: IdentityHandlers, clock: Callable[[], datetime]) -> None:
        self.handlers, self.clock = handlers, clock

    async def __call__(
        self, _: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]
    ) -> None:
        if envelope.type != MEMBER_BIND_REQUESTED:
            return  # binding's other events are for binding's own readers
        request = binding.MemberBindRequested.model_validate(data)
        need = request.face_check
        if need.who == "none" or need.subject is None:
            return
        purpose = (
            FacePurpose.PROXY_BINDING if request.method == "proxy_with_id" else PURPOSE_OF[need.who]
        )
        now = self.clock()
        # From the event's time, not the clock, so a redelivery asks for the very same check
        # (the pending-checks table keeps the first deadline it is given).
        deadline = min(request.deadline, min(envelope.time, now) + MAX_WAIT[purpose])
        if deadline <= now:
            log.info("bind request past its deadline; no face check opened", purpose=purpose)
            return
        on_behalf_of = request.holder  # a mother binding her own newborn asks for herself
        ctx = CommandContext(
            command_id=uuid5(envelope.id, "face-check"),
            now=now,
            correlation_id=request.request_id,  # binding matches the check to its request
            actor=envelope.actor or "binding",
            causation_id=str(envelope.id),
        )
        await self.handlers.request_face_check(purpose, need.subject, on_behalf_of, deadline, ctx)


def bind_request_consumer(
    handlers: IdentityHandlers,
    inbox: Inbox,
    dead_letters: DeadLetters,
    clock: Callable[[], datetime],
) -> InboxConsumer:
    """Subscribe the result to `contracts.binding.TOPIC` (group id: its name)."""
    return InboxConsumer(
        BIND_REQUESTS_CONSUMER,
        BindRequests(handlers, clock),
        inbox,
        dead_letters,
        wants={MEMBER_BIND_REQUESTED},
    )
