"""A request's outcomes in any order, rejection, expiry, revocation, and ignored late answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.vocabulary import BindingKind, Relation
from services.binding.commands import (
    BindingCommand,
    ExpireBindRequest,
    RecordFaceOutcome,
    RecordMaterialsApproved,
    RecordMaterialsRejected,
    RevokeBinding,
)
from services.binding.domain import Status, binding_decider
from services.binding.errors import NotBoundError
from services.binding.events import (
    BindingEvent,
    BindingFaceVerified,
    BindingMaterialsApproved,
    BindingRejected,
    BindingRejectionReason,
    BindingRevoked,
    BindRequestExpired,
    Confirmation,
    MemberBound,
)
from services.binding.rules import FaceWho, Method
from tests.specs import DeciderSpec
from tests.unit.binding.builders import (
    CHILD,
    DEADLINE,
    HOLDER,
    NOW,
    TODAY,
    request,
    requested,
    submitted,
)

spec = DeciderSpec(binding_decider)
LATER = NOW + timedelta(hours=1)
FATHER = request()
RID = FATHER.request_id
KIND = BindingKind.FAMILY_ACCOUNT
pending: list[BindingEvent] = [*requested(FATHER, FaceWho.MEMBER), *submitted(FATHER)]
approve = RecordMaterialsApproved(RID, LATER)
face_ok = RecordFaceOutcome(RID, verified=True, at=LATER)
approved = BindingMaterialsApproved(request_id=RID)
face_verified = BindingFaceVerified(request_id=RID)
bound = MemberBound(request_id=RID, member="p-father", kind=KIND)
expired = BindRequestExpired(request_id=RID, member="p-father", kind=KIND, deadline=DEADLINE)
revoke = RevokeBinding("p-father", KIND, Confirmation.PAYMENT_PASSWORD)
revoked = BindingRevoked(
    request_id=RID, member="p-father", kind=KIND, confirmed_by=Confirmation.PAYMENT_PASSWORD
)


def rejected(reason: BindingRejectionReason, detail: str) -> BindingRejected:
    return BindingRejected(
        request_id=RID, member="p-father", kind=KIND, reason=reason, detail=detail
    )


def test_face_then_review_or_review_then_face_both_bind() -> None:
    spec.given(pending).when(approve).then([approved])
    spec.given([*pending, approved]).when(face_ok).then([face_verified, bound])
    spec.given(pending).when(face_ok).then([face_verified])
    spec.given([*pending, face_verified]).when(approve).then([approved, bound])


def test_a_child_under_16_is_bound_by_the_review_alone() -> None:
    child = request("p-son", member_birth_date=CHILD, relation=Relation.CHILD)
    approval = RecordMaterialsApproved(child.request_id, LATER)
    done = MemberBound(request_id=child.request_id, member="p-son", kind=KIND)
    spec.given([*requested(child, FaceWho.NONE), *submitted(child)]).when(approval).then(
        [BindingMaterialsApproved(request_id=child.request_id), done]
    )


def test_a_newborn_is_bound_by_the_mothers_face_alone() -> None:
    baby = request(
        "p-baby", member_birth_date=TODAY, method=Method.BIRTH_CERTIFICATE, mother=HOLDER
    )
    face = RecordFaceOutcome(baby.request_id, verified=True, at=LATER)
    done = MemberBound(request_id=baby.request_id, member="p-baby", kind=KIND)
    spec.given(requested(baby, FaceWho.MOTHER, HOLDER)).when(face).then(
        [BindingFaceVerified(request_id=baby.request_id), done]
    )


def test_rejected_materials_reject_the_binding_with_the_reason() -> None:
    command = RecordMaterialsRejected(RID, "户口本页面不清晰", LATER)
    expected = rejected(BindingRejectionReason.MATERIALS_REJECTED, "户口本页面不清晰")
    spec.given(pending).when(command).then([expected])
    spec.given([*pending, face_verified]).when(command).then([expected])


def test_a_failed_face_check_rejects_the_binding_with_the_reason() -> None:
    command = RecordFaceOutcome(RID, verified=False, at=LATER, reason="no_match")
    expected = rejected(BindingRejectionReason.FACE_FAILED, "no_match")
    spec.given([*pending, approved]).when(command).then([expected])


def test_an_outcome_nobody_waits_for_records_nothing() -> None:
    child = request("p-son", member_birth_date=CHILD, relation=Relation.CHILD)
    face = RecordFaceOutcome(child.request_id, verified=True, at=LATER)
    spec.given(requested(child, FaceWho.NONE)).when(face).then([])


def test_a_repeated_outcome_records_nothing() -> None:
    spec.given([*pending, approved]).when(approve).then([])
    spec.given([*pending, face_verified]).when(face_ok).then([])


def test_outcome_for_unknown_request_records_nothing() -> None:
    spec.given(pending).when(RecordMaterialsApproved("r-unknown", LATER)).then([])
    spec.given([]).when(RecordFaceOutcome("r-unknown", verified=False, at=LATER)).then([])
    spec.given([]).when(ExpireBindRequest("r-unknown", LATER)).then([])


FINISHED: list[list[BindingEvent]] = [
    [*pending, approved, face_verified, bound],
    [*pending, rejected(BindingRejectionReason.FACE_FAILED, "not_live")],
    [*pending, expired],
    [*pending, approved, face_verified, bound, revoked],
]
LATE: list[BindingCommand] = [
    approve,
    face_ok,
    RecordMaterialsRejected(RID, "late", LATER),
    RecordFaceOutcome(RID, verified=False, at=LATER),
    ExpireBindRequest(RID, DEADLINE + timedelta(days=1)),
]


@pytest.mark.parametrize("history", FINISHED)
@pytest.mark.parametrize("late", LATE)
def test_outcome_for_a_finished_request_records_nothing(
    history: list[BindingEvent], late: BindingCommand
) -> None:
    spec.given(history).when(late).then([])


def test_expiry_before_the_deadline_records_nothing() -> None:
    spec.given(pending).when(ExpireBindRequest(RID, DEADLINE - timedelta(seconds=1))).then([])


def test_expiry_once_the_deadline_has_passed_is_recorded() -> None:
    spec.given([*pending, approved]).when(ExpireBindRequest(RID, DEADLINE)).then([expired])


def test_an_outcome_at_or_after_the_deadline_records_the_expiry() -> None:
    late_face = RecordFaceOutcome(RID, verified=True, at=DEADLINE)
    spec.given([*pending, approved]).when(late_face).then([expired])
    spec.given(pending).when(RecordMaterialsRejected(RID, "x", DEADLINE)).then([expired])


def test_a_bound_member_is_revoked_with_the_confirmation() -> None:
    spec.given([*pending, approved, face_verified, bound]).when(revoke).then([revoked])


def test_a_pending_request_may_be_withdrawn_by_revoking_it() -> None:
    spec.given(pending).when(revoke).then([revoked])


def test_revoking_twice_records_nothing() -> None:
    spec.given([*pending, approved, face_verified, bound, revoked]).when(revoke).then([])


def test_revoking_a_member_never_bound_is_refused() -> None:
    spec.given([]).when(revoke).raises(NotBoundError)
    spec.given([*pending, expired]).when(revoke).raises(NotBoundError)


@pytest.mark.parametrize(
    "finish",
    [
        [rejected(BindingRejectionReason.MATERIALS_REJECTED, "blurred")],
        [expired],
        [approved, face_verified, bound, revoked],
    ],
)
def test_rejected_member_may_be_requested_again(finish: list[BindingEvent]) -> None:
    again = request(request_id="r-again")
    spec.given([*pending, *finish]).when(again).then(requested(again, FaceWho.MEMBER))


def test_the_state_tells_what_a_request_waits_for() -> None:
    state = binding_decider.fold([*pending, face_verified])
    held = state.requests[RID]
    assert (held.status, held.waiting_for, held.relation) == (
        Status.PENDING,
        frozenset({"review"}),
        Relation.PARENT,
    )
    assert (
        binding_decider.fold([*pending, approved, face_verified, bound]).requests[RID].status
        is Status.BOUND
    )
