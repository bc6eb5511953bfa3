"""Review's published models read exactly what the review service stores and sends."""

from __future__ import annotations

import typing
from datetime import timedelta
from enum import StrEnum

import pytest

from contracts import review
from services.review.commands import (
    ApproveCase,
    CaseCommand,
    ClaimCase,
    EscalateCase,
    RejectCase,
    WithdrawCase,
)
from services.review.domain import case_decider
from services.review.events import (
    CASE_EVENTS,
    CaseEvent,
    CaseType,
    Check,
    OnFailure,
    RejectionReason,
    ReviewMode,
    ReviewPolicyChanged,
    WithdrawalCause,
)
from services.review.policy import ChangePolicy, policy_decider
from services.runtime.codec import DomainEvent
from tests.unit.review.builders import NANCHANG, NOW, opened

DOMAIN_EVENTS: tuple[type[DomainEvent], ...] = (*CASE_EVENTS, ReviewPolicyChanged)


def samples() -> list[DomainEvent]:
    later = NOW + timedelta(days=3)
    first: list[CaseEvent] = [opened()]
    commands: list[CaseCommand] = [
        ClaimCase(NANCHANG, NOW),
        EscalateCase(timedelta(days=2), later),
        ApproveCase(NANCHANG, later),
        RejectCase(NANCHANG, RejectionReason.MATERIALS_UNCLEAR, "模糊", later),
        WithdrawCase(WithdrawalCause.REQUEST_EXPIRED, later),
    ]
    decided = [e for c in commands for e in case_decider.decide(c, case_decider.fold(first))]
    change = ChangePolicy(
        "36", CaseType.MEMBER_BINDING, ReviewMode.RULES, (), OnFailure.REJECT, "ops", NOW
    )
    return [*first, *decided, *policy_decider.decide(change, policy_decider.initial_state())]


def test_every_review_event_has_a_contract_with_the_same_fields() -> None:
    assert sorted(review.EVENTS) == sorted(e.__name__ for e in DOMAIN_EVENTS)
    for event in DOMAIN_EVENTS:
        assert set(review.EVENTS[event.__name__].model_fields) == set(event.model_fields)
    assert {type(s).__name__ for s in samples()} == set(review.EVENTS)


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_the_contract_reads_the_stored_json_of_the_domain_event(event: DomainEvent) -> None:
    published = review.EVENTS[type(event).__name__].model_validate_json(event.model_dump_json())
    assert published.model_dump(mode="json") == event.model_dump(mode="json")


@pytest.mark.parametrize(
    ("literal", "enum"),
    [
        (review.CaseType, CaseType),
        (review.RejectionReason, RejectionReason),
        (review.ReviewMode, ReviewMode),
        (review.Check, Check),
        (review.OnFailure, OnFailure),
        (review.WithdrawalCause, WithdrawalCause),
    ],
)
def test_contract_literals_list_exactly_the_domain_values(
    literal: object, enum: type[StrEnum]
) -> None:
    assert set(typing.get_args(literal)) == {member.value for member in enum}
