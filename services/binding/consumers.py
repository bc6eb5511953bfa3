"""Binding's consumers: the persons directory and face outcomes from identity, review decisions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from contracts import identity, review
from contracts.envelope import Envelope, event_type
from services.binding.handlers import BindingHandlers
from services.binding.tables import BindingTables
from services.runtime.consumer import DeadLetters, Inbox, InboxConsumer, event_context
from services.runtime.logging import get_logger

log = get_logger(__name__)

IDENTITY_CONSUMER = "binding.identity"
REVIEW_CONSUMER = "binding.review"
# Face checks identity opens for a bind request; the others (activation, login, unbinding)
# are the person's own business.
BINDING_PURPOSES = frozenset({"member_binding", "newborn_mother", "proxy_binding"})


def _identity(name: str) -> str:
    return event_type("identity", name, 1)


_PERSON_EVENTS = ("PersonRegistered", "CurrentInsuredPlaceSwitched", "PersonErased")
_APPROVED = event_type("review", "MaterialsApproved", 1)
_REJECTED = event_type("review", "MaterialsRejected", 1)
_DECISIONS = frozenset({_APPROVED, _REJECTED})


def _pseudonym(envelope: Envelope) -> str:
    return envelope.subject.removeprefix("person-")


class IdentityEvents:
    """The inbox handler for `qinqing.identity.v1`. Directory rows and the check -> request map
    are written in the inbox's transaction; face outcomes go to the holder's stream through
    the handlers, their command id derived from the event id."""

    def __init__(
        self, handlers: BindingHandlers, tables: BindingTables, clock: Callable[[], datetime]
    ) -> None:
        self.handlers, self.tables, self.clock = handlers, tables, clock

    async def __call__(
        self, conn: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]
    ) -> None:
        kind = envelope.type
        if kind == _identity("PersonRegistered"):
            person = identity.PersonRegistered.model_validate(data)
            await self.tables.person_registered(
                conn,
                person.pseudonym,
                person.id_lookup,
                person.insured_place,
                personal_account=person.personal_account,
            )
        elif kind == _identity("CurrentInsuredPlaceSwitched"):
            switched = identity.CurrentInsuredPlaceSwitched.model_validate(data)
            await self.tables.insured_place_switched(
                conn, _pseudonym(envelope), switched.insured_place
            )
        elif kind == _identity("PersonErased"):
            await self.tables.person_erased(conn, _pseudonym(envelope))
        elif kind == _identity("FaceCheckRequested"):
            requested = identity.FaceCheckRequested.model_validate(data)
            if requested.purpose in BINDING_PURPOSES:
                await self.tables.face_check_opened(
                    conn, requested.check_id, requested.correlation_id
                )
        elif kind in _OUTCOMES:
            await self._face_outcome(conn, envelope, data)

    async def _face_outcome(
        self, conn: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]
    ) -> None:
        model = _OUTCOMES[envelope.type]
        outcome = model.model_validate(data)
        request_id = await self.tables.request_of_check(conn, data["check_id"])
        if request_id is None:
            return  # a check for something else (activation, login, unbinding)
        verified = isinstance(outcome, identity.FaceVerified)
        reason = (
            outcome.reason
            if isinstance(outcome, identity.FaceVerificationFailed)
            else ("" if verified else "expired")
        )
        ctx = event_context(envelope, self.clock, "face-outcome")
        await self.handlers.record_face_outcome(request_id, verified, reason, ctx)


_OUTCOMES: dict[
    str, type[identity.FaceVerified | identity.FaceVerificationFailed | identity.FaceCheckExpired]
] = {
    _identity("FaceVerified"): identity.FaceVerified,
    _identity("FaceVerificationFailed"): identity.FaceVerificationFailed,
    _identity("FaceCheckExpired"): identity.FaceCheckExpired,
}


class ReviewDecisions:
    """The inbox handler for `qinqing.review.v1`: decisions on member-binding cases."""

    def __init__(self, handlers: BindingHandlers, clock: Callable[[], datetime]) -> None:
        self.handlers, self.clock = handlers, clock

    async def __call__(
        self, _: asyncpg.Connection, envelope: Envelope, data: dict[str, Any]
    ) -> None:
        decision: review.MaterialsApproved | review.MaterialsRejected
        if envelope.type == _APPROVED:
            decision = review.MaterialsApproved.model_validate(data)
        elif envelope.type == _REJECTED:
            decision = review.MaterialsRejected.model_validate(data)
        else:
            return  # cases opened, claimed, escalated: review's own business
        if decision.case_type != "member_binding":
            return
        approved = isinstance(decision, review.MaterialsApproved)
        reason = "" if approved else decision.reason  # type: ignore[union-attr]
        ctx = event_context(envelope, self.clock, "review-decision")
        if not await self.handlers.record_review(decision.request_id, approved, reason, ctx):
            log.info("decision for a request binding does not know; ignored")


def identity_consumer(
    handlers: BindingHandlers,
    tables: BindingTables,
    inbox: Inbox,
    dead_letters: DeadLetters,
    clock: Callable[[], datetime],
) -> InboxConsumer:
    """Subscribe the result to `contracts.identity.TOPIC` (group id: its name)."""
    handler = IdentityEvents(handlers, tables, clock)
    wants = {_identity(n) for n in _PERSON_EVENTS} | {_identity("FaceCheckRequested"), *_OUTCOMES}
    return InboxConsumer(IDENTITY_CONSUMER, handler, inbox, dead_letters, wants=wants)


def review_consumer(
    handlers: BindingHandlers,
    inbox: Inbox,
    dead_letters: DeadLetters,
    clock: Callable[[], datetime],
) -> InboxConsumer:
    """Subscribe the result to `contracts.review.TOPIC` (group id: its name)."""
    return InboxConsumer(
        REVIEW_CONSUMER, ReviewDecisions(handlers, clock), inbox, dead_letters, wants=_DECISIONS
    )
