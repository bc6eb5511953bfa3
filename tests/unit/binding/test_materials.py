"""The commitment letter and household pages of a binding by ID number, before its review."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from contracts.vocabulary import MaterialRole
from services.binding.commands import (
    RecordMaterialsApproved,
    SignCommitmentLetter,
    SubmitMaterials,
)
from services.binding.domain import binding_decider
from services.binding.errors import (
    CommitmentNotSignedError,
    MaterialRoleError,
    MaterialsAlreadySubmittedError,
    MaterialsNotNeededError,
    RequestNotFoundError,
    RequestNotPendingError,
)
from services.binding.events import (
    BindingEvent,
    BindingRejected,
    BindingRejectionReason,
    BindRequestExpired,
)
from services.binding.rules import FaceWho, Method
from tests.specs import DeciderSpec
from tests.unit.binding.builders import (
    CHILD,
    DEADLINE,
    HOLDER,
    HOLDER_PAGE,
    JIANGXI,
    LETTER,
    MEMBER_PAGE,
    NOW,
    SIGNATURE,
    material,
    request,
    requested,
    submitted,
)

spec = DeciderSpec(binding_decider)
FATHER = request()
RID = FATHER.request_id
LATER = NOW + timedelta(minutes=5)
sign = SignCommitmentLetter(RID, LETTER, SIGNATURE, LATER)
submit = SubmitMaterials(RID, HOLDER_PAGE, MEMBER_PAGE, JIANGXI, LATER)
signed_event, submitted_event = submitted(FATHER)
pending: list[BindingEvent] = [*requested(FATHER, FaceWho.MEMBER)]


def test_the_holder_signs_the_letter_then_submits_the_pages() -> None:
    spec.given(pending).when(sign).then([signed_event])
    spec.given([*pending, signed_event]).when(submit).then([submitted_event])


def test_the_submission_names_everything_the_reviewer_needs() -> None:
    assert submitted_event.materials == (LETTER, SIGNATURE, HOLDER_PAGE, MEMBER_PAGE)
    assert (submitted_event.holder, submitted_event.region) == (HOLDER, JIANGXI)


def test_pages_before_the_signed_letter_are_refused() -> None:
    spec.given(pending).when(submit).raises(CommitmentNotSignedError)


def test_a_material_in_the_wrong_place_is_refused() -> None:
    swapped = replace(submit, holder_household=MEMBER_PAGE, member_household=HOLDER_PAGE)
    spec.given([*pending, signed_event]).when(swapped).raises(MaterialRoleError)
    unsigned = replace(sign, signature=material(MaterialRole.HOLDER_HOUSEHOLD))
    spec.given(pending).when(unsigned).raises(MaterialRoleError)


def test_signing_or_submitting_again_the_same_records_nothing() -> None:
    spec.given([*pending, signed_event]).when(sign).then([])
    spec.given([*pending, signed_event, submitted_event]).when(submit).then([])


def test_other_materials_after_submission_are_refused() -> None:
    other = replace(submit, member_household=material(MaterialRole.MEMBER_HOUSEHOLD, "9"))
    history = [*pending, signed_event, submitted_event]
    spec.given(history).when(other).raises(MaterialsAlreadySubmittedError)
    resign = replace(sign, signature=material(MaterialRole.SIGNATURE, "8"))
    spec.given([*pending, signed_event]).when(resign).raises(MaterialsAlreadySubmittedError)


def test_methods_without_review_take_no_materials() -> None:
    baby = request(
        "p-baby", member_birth_date=CHILD, method=Method.BIRTH_CERTIFICATE, mother=HOLDER
    )
    history = requested(baby, FaceWho.MOTHER, HOLDER)
    command = replace(sign, request_id=baby.request_id)
    spec.given(history).when(command).raises(MaterialsNotNeededError)


def test_materials_for_an_unknown_or_finished_request_are_refused() -> None:
    spec.given([]).when(sign).raises(RequestNotFoundError)
    rejected = BindingRejected(
        request_id=RID,
        member=FATHER.member,
        kind=FATHER.kind,
        reason=BindingRejectionReason.FACE_FAILED,
        detail="no_match",
    )
    spec.given([*pending, rejected]).when(sign).raises(RequestNotPendingError)


def test_materials_at_or_after_the_deadline_record_the_expiry() -> None:
    late = replace(sign, at=DEADLINE)
    expired = BindRequestExpired(
        request_id=RID, member=FATHER.member, kind=FATHER.kind, deadline=DEADLINE
    )
    spec.given(pending).when(late).then([expired])


def test_a_decision_before_the_materials_are_submitted_records_nothing() -> None:
    spec.given(pending).when(RecordMaterialsApproved(RID, LATER)).then([])
    spec.given([*pending, signed_event]).when(RecordMaterialsApproved(RID, LATER)).then([])


def test_what_the_request_waits_for_narrows_step_by_step() -> None:
    steps = [pending, [*pending, signed_event], [*pending, signed_event, submitted_event]]
    waits = [binding_decider.fold(h).requests[RID].waiting_for for h in steps]
    assert waits == [
        {"commitment_letter", "materials", "review", "face"},
        {"materials", "review", "face"},
        {"review", "face"},
    ]
