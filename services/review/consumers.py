"""Review's consumers: binding's submissions open cases and its ended requests withdraw them;
identity's registrations feed the ID-number lookup of the queue search."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from contracts import binding
from contracts.envelope import Envelope, event_type
from services.review.commands import NewCase
from services.review.events import CaseType, WithdrawalCause
from services.review.handlers import ReviewHandlers
from services.review.projections import PersonLookups
from services.runtime.consumer import DeadLetters, Inbox, InboxConsumer, event_context
from services.runtime.projection import kafka_projection

BINDING_CONSUMER = "review.binding"


def _binding(name: str) -> str:
    return event_type("binding", name, 1)


SUBMITTED = _binding("BindingMaterialsSubmitted")
# Binding's events that end a request: its open case, if any, is withdrawn.
ENDED: dict[
    str,
    tuple[
        type[binding.BindingRejected | binding.BindRequestExpired | binding.BindingRevoked],
        WithdrawalCause,
    ],
] = {
    _binding("BindingRejected"): (binding.BindingRejected, WithdrawalCause.REQUEST_REJECTED),
    _binding("BindRequestExpired"): (binding.BindRequestExpired, WithdrawalCause.REQUEST_EXPIRED),
    _binding("BindingRevoked"): (binding.BindingRevoked, WithdrawalCause.BINDING_REVOKED),
}


class BindingEvents:
    """The inbox handler for `qinqing.binding.v1`. Its effects go to case streams through the
    handlers (not the inbox's transaction); the case id derives from the request id and the
    command id from the event id, so a redelivery opens or withdraws nothing twice."""

    def __init__(self, handlers: ReviewHandlers, clock: Callable[[], datetime]) -> None:
        self.handlers, self.clock = handlers, clock

    async def __call__(
        self, _: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]
    ) -> None:
        if envelope.type == SUBMITTED:
            submitted = binding.BindingMaterialsSubmitted.model_validate(data)
            new = NewCase(
                case_type=CaseType.MEMBER_BINDING,
                request_id=submitted.request_id,
                region=submitted.region,
                holder=submitted.holder,
                member=submitted.member,
                kind=submitted.kind,
                relation=submitted.relation,
                materials=submitted.materials,
            )
            await self.handlers.open_case(new, event_context(envelope, self.clock, "open-case"))
        elif envelope.type in ENDED:
            model, cause = ENDED[envelope.type]
            ended = model.model_validate(data)
            ctx = event_context(envelope, self.clock, "withdraw-case")
            await self.handlers.withdraw(CaseType.MEMBER_BINDING, ended.request_id, cause, ctx)
        # binding's other events are for binding's own readers


def binding_consumer(
    handlers: ReviewHandlers,
    inbox: Inbox,
    dead_letters: DeadLetters,
    clock: Callable[[], datetime],
) -> InboxConsumer:
    """Subscribe the result to `contracts.binding.TOPIC` (group id: its name)."""
    wants = {SUBMITTED, *ENDED}
    return InboxConsumer(
        BINDING_CONSUMER, BindingEvents(handlers, clock), inbox, dead_letters, wants=wants
    )


def identity_consumer(schema: str, inbox: Inbox, dead_letters: DeadLetters) -> InboxConsumer:
    """The person lookups projection, fed from `contracts.identity.TOPIC` through the inbox."""
    wants = {event_type("identity", name, 1) for name in ("PersonRegistered", "PersonErased")}
    return kafka_projection(PersonLookups(schema), inbox, dead_letters, wants=wants)
