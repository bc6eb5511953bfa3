"""The family view's fold: each status the app shows, outcomes in either order, and the times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from contracts.vocabulary import BindingKind, Relation
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
from services.binding.projections import FamilyMember, ViewStatus, evolve_view, fold_family_view
from services.binding.rules import FaceWho, Method
from tests.unit.binding.builders import CHILD, DEADLINE, HOLDER, NOW, request, requested, submitted

KIND = BindingKind.FAMILY_ACCOUNT
FATHER = request()  # adult, by ID number: materials, review and the member's face
RID = FATHER.request_id
SON = request("p-son", member_birth_date=CHILD, relation=Relation.CHILD)  # no face check
LETTER, PAGES = submitted(FATHER)

approved = BindingMaterialsApproved(request_id=RID)
face_verified = BindingFaceVerified(request_id=RID)
bound = MemberBound(request_id=RID, member="p-father", kind=KIND)

Step = tuple[int, Sequence[BindingEvent]]  # the minute an append was recorded, its events


def minute(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


def view(*steps: Step) -> list[FamilyMember]:
    """The view after events recorded at the given minutes (an append's events share one)."""
    return fold_family_view((event, minute(n)) for n, events in steps for event in events)


def only(*steps: Step) -> FamilyMember:
    (row,) = view(*steps)
    return row


def test_a_request_by_id_number_awaits_the_signed_letter_and_the_pages() -> None:
    row = only((0, requested(FATHER, FaceWho.MEMBER)))
    assert row.status is ViewStatus.AWAITING_MATERIALS
    assert row.waiting_for == ("commitment_letter", "materials", "review", "face")
    assert (row.holder, row.request_id, row.member) == (HOLDER, RID, "p-father")
    assert (row.relation, row.kind, row.method) == (Relation.PARENT, KIND, Method.ID_NUMBER)
    assert (row.rejection_reason, row.rejection_detail) == (None, None)
    assert row.requested_at == row.since == row.updated_at == minute(0)


def test_the_signed_letter_alone_still_awaits_materials_and_keeps_since() -> None:
    row = only((0, requested(FATHER, FaceWho.MEMBER)), (3, [LETTER]))
    assert row.status is ViewStatus.AWAITING_MATERIALS
    assert row.waiting_for == ("materials", "review", "face")
    assert (row.since, row.updated_at) == (minute(0), minute(3))


def test_submitted_materials_of_an_adult_wait_for_review_and_face() -> None:
    row = only((0, requested(FATHER, FaceWho.MEMBER)), (3, [LETTER]), (5, [PAGES]))
    assert row.status is ViewStatus.PENDING_REVIEW_AND_FACE
    assert row.waiting_for == ("review", "face")
    assert (row.requested_at, row.since) == (minute(0), minute(5))


def test_a_child_under_16_waits_for_review_only() -> None:
    row = only((0, requested(SON, FaceWho.NONE)), (5, list(submitted(SON))))
    assert row.status is ViewStatus.PENDING_REVIEW
    assert row.waiting_for == ("review",)


def test_review_passed_first_then_the_face_binds() -> None:
    pending: list[Step] = [(0, requested(FATHER, FaceWho.MEMBER)), (5, [LETTER, PAGES])]
    after_review = only(*pending, (20, [approved]))
    assert after_review.status is ViewStatus.PENDING_FACE
    assert after_review.waiting_for == ("face",)
    assert after_review.since == minute(20)
    row = only(*pending, (20, [approved]), (30, [face_verified, bound]))
    assert (row.status, row.waiting_for, row.since) == (ViewStatus.BOUND, (), minute(30))


def test_face_passed_first_then_the_review_binds() -> None:
    pending: list[Step] = [(0, requested(FATHER, FaceWho.MEMBER)), (5, [LETTER, PAGES])]
    after_face = only(*pending, (20, [face_verified]))
    assert after_face.status is ViewStatus.PENDING_REVIEW
    assert after_face.waiting_for == ("review",)
    row = only(*pending, (20, [face_verified]), (30, [approved, bound]))
    assert (row.status, row.waiting_for, row.since) == (ViewStatus.BOUND, (), minute(30))


def test_a_newborn_by_birth_certificate_waits_for_the_mothers_face() -> None:
    newborn = request("p-baby", member_birth_date=CHILD, method=Method.BIRTH_CERTIFICATE)
    asked = requested(newborn, FaceWho.MOTHER, "p-mother")
    row = only((0, asked))
    assert (row.status, row.waiting_for) == (ViewStatus.PENDING_FACE, ("face",))
    verified = BindingFaceVerified(request_id=newborn.request_id)
    done = MemberBound(request_id=newborn.request_id, member="p-baby", kind=KIND)
    assert only((0, asked), (9, [verified, done])).status is ViewStatus.BOUND


@pytest.mark.parametrize(
    ("reason", "detail"),
    [
        (BindingRejectionReason.MATERIALS_REJECTED, "户口本照片不清晰"),
        (BindingRejectionReason.FACE_FAILED, "liveness check failed"),
    ],
)
def test_a_rejection_shows_its_reason_and_detail(
    reason: BindingRejectionReason, detail: str
) -> None:
    rejected = BindingRejected(
        request_id=RID, member="p-father", kind=KIND, reason=reason, detail=detail
    )
    row = only((0, requested(FATHER, FaceWho.MEMBER)), (5, [LETTER, PAGES]), (20, [rejected]))
    assert (row.status, row.waiting_for) == (ViewStatus.REJECTED, ())
    assert (row.rejection_reason, row.rejection_detail) == (reason, detail)
    assert row.since == minute(20)


def test_an_expired_request_waits_for_nothing_any_more() -> None:
    expired = BindRequestExpired(request_id=RID, member="p-father", kind=KIND, deadline=DEADLINE)
    row = only((0, requested(FATHER, FaceWho.MEMBER)), (10_080, [expired]))
    assert (row.status, row.waiting_for, row.since) == (ViewStatus.EXPIRED, (), minute(10_080))
    assert (row.rejection_reason, row.rejection_detail) == (None, None)


def test_a_revoked_binding_shows_when_it_was_revoked() -> None:
    revoked = BindingRevoked(
        request_id=RID, member="p-father", kind=KIND, confirmed_by=Confirmation.FACE
    )
    binding: list[Step] = [(0, requested(FATHER, FaceWho.MEMBER)), (5, [LETTER, PAGES])]
    row = only(*binding, (20, [approved]), (30, [face_verified, bound]), (99, [revoked]))
    assert (row.status, row.since, row.updated_at) == (ViewStatus.REVOKED, minute(99), minute(99))
    assert row.requested_at == minute(0)


def test_a_new_request_after_a_rejection_is_a_second_row() -> None:
    rejected = BindingRejected(
        request_id=RID,
        member="p-father",
        kind=KIND,
        reason=BindingRejectionReason.MATERIALS_REJECTED,
        detail="材料不全",
    )
    again = request(request_id="r-again")
    first, second = view(
        (0, requested(FATHER, FaceWho.MEMBER)),
        (5, [LETTER, PAGES]),
        (20, [rejected]),
        (40, requested(again, FaceWho.MEMBER)),
    )
    assert (first.request_id, first.status) == (RID, ViewStatus.REJECTED)
    assert (second.request_id, second.status) == ("r-again", ViewStatus.AWAITING_MATERIALS)
    assert second.member == first.member
    assert (second.rejection_reason, second.requested_at) == (None, minute(40))


def test_requests_of_a_holder_are_listed_oldest_first() -> None:
    rows = view((7, requested(SON, FaceWho.NONE)), (8, requested(FATHER, FaceWho.MEMBER)))
    assert [r.request_id for r in rows] == [SON.request_id, RID]


def test_an_outcome_before_its_request_is_refused() -> None:
    with pytest.raises(LookupError, match=RID):
        evolve_view(None, approved, minute(0))
