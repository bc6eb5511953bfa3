"""Requesting a binding: who may be bound, by which method, whose face, and the limit of 5."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from contracts import binding as contract
from contracts.vocabulary import BindingKind, Relation
from services.binding.commands import RequestMemberBinding
from services.binding.domain import binding_decider
from services.binding.errors import (
    AlreadyBoundError,
    BirthCertificateTooOldError,
    CommitmentRequiredError,
    DeadlineError,
    FamilyFullError,
    MemberRegionNotAllowedError,
    MethodNotAllowedError,
    MotherRequiredError,
    PersonalAccountRequiredError,
    ProxyWithoutIdTooOldError,
    RelationNotAllowedError,
    RequestConflictError,
    SelfBindingError,
)
from services.binding.events import (
    BindingEvent,
    BindingRejected,
    BindingRejectionReason,
    BindingRevoked,
    BindRequestExpired,
    Confirmation,
    MemberBound,
)
from services.binding.rules import FaceWho, Method
from tests.specs import DeciderSpec
from tests.unit.binding.builders import CHILD, HOLDER, NOW, TODAY, request, requested

spec = DeciderSpec(binding_decider)
SIXTEENTH_BIRTHDAY = date(2010, 11, 25)  # TODAY is the member's 16th birthday
FIFTEEN = date(2010, 11, 26)  # 16 tomorrow


def five_requested(kind: BindingKind = BindingKind.FAMILY_ACCOUNT) -> list[BindingEvent]:
    history: list[BindingEvent] = []
    for n in range(5):
        history += requested(request(f"p-m{n}", kind=kind), FaceWho.MEMBER)
    return history


def test_an_adult_by_id_number_waits_for_review_and_their_own_face() -> None:
    command = request()
    spec.given([]).when(command).then(requested(command, FaceWho.MEMBER))


def test_member_aged_16_on_birthday_needs_face_check() -> None:
    command = request("p-teen", member_birth_date=SIXTEENTH_BIRTHDAY, relation=Relation.CHILD)
    spec.given([]).when(command).then(requested(command, FaceWho.MEMBER))


def test_member_under_16_by_id_number_waits_for_review_only() -> None:
    command = request("p-teen", member_birth_date=FIFTEEN, relation=Relation.CHILD)
    spec.given([]).when(command).then(requested(command, FaceWho.NONE))


def test_a_newborn_by_birth_certificate_waits_for_the_mothers_face_and_no_review() -> None:
    command = request(
        "p-baby",
        member_birth_date=TODAY,
        relation=Relation.CHILD,
        method=Method.BIRTH_CERTIFICATE,
        mother=HOLDER,
    )
    spec.given([]).when(command).then(requested(command, FaceWho.MOTHER, HOLDER))


def test_birth_certificate_needs_the_mother() -> None:
    command = request("p-baby", member_birth_date=TODAY, method=Method.BIRTH_CERTIFICATE)
    spec.given([]).when(command).raises(MotherRequiredError)


def test_birth_certificate_refused_for_16_or_over() -> None:
    command = request(method=Method.BIRTH_CERTIFICATE, mother="p-mother")
    spec.given([]).when(command).raises(BirthCertificateTooOldError)


def test_proxy_with_id_waits_for_the_members_face() -> None:
    command = request(kind=BindingKind.PROXY, method=Method.PROXY_WITH_ID)
    spec.given([]).when(command).then(requested(command, FaceWho.MEMBER))


def test_proxy_without_id_with_the_commitment_binds_at_once() -> None:
    command = request(
        "p-kid",
        member_birth_date=CHILD,
        relation=Relation.NON_RELATIVE,
        kind=BindingKind.PROXY,
        method=Method.PROXY_WITHOUT_ID,
        commitment_accepted=True,
    )
    bound = MemberBound(request_id="r-p-kid", member="p-kid", kind=BindingKind.PROXY)
    spec.given([]).when(command).then([*requested(command, FaceWho.NONE), bound])


def test_proxy_without_id_needs_the_commitment_letter_accepted() -> None:
    command = request(
        "p-kid", member_birth_date=CHILD, kind=BindingKind.PROXY, method=Method.PROXY_WITHOUT_ID
    )
    spec.given([]).when(command).raises(CommitmentRequiredError)


@pytest.mark.parametrize("birth", [SIXTEENTH_BIRTHDAY, date(1956, 3, 1)])
def test_proxy_without_id_refused_for_16_or_over(birth: date) -> None:
    command = request(
        member_birth_date=birth,
        kind=BindingKind.PROXY,
        method=Method.PROXY_WITHOUT_ID,
        commitment_accepted=True,
    )
    error = spec.given([]).when(command).raises(ProxyWithoutIdTooOldError)
    assert isinstance(error, ProxyWithoutIdTooOldError)
    assert error.code == "binding.proxy_without_id_too_old"


def test_proxy_is_for_members_insured_in_jiangxi() -> None:
    command = request(kind=BindingKind.PROXY, method=Method.PROXY_WITH_ID)
    spec.given([]).when(replace(command, member_insured_place="110101")).raises(
        MemberRegionNotAllowedError
    )


def test_proxy_accepts_a_non_relative() -> None:
    command = request(
        relation=Relation.NON_RELATIVE, kind=BindingKind.PROXY, method=Method.PROXY_WITH_ID
    )
    spec.given([]).when(command).then(requested(command, FaceWho.MEMBER))


def test_family_account_refuses_a_non_relative() -> None:
    command = request(relation=Relation.NON_RELATIVE)
    spec.given([]).when(command).raises(RelationNotAllowedError)


def test_mutual_aid_refuses_a_sibling() -> None:
    command = request(
        relation=Relation.SIBLING, kind=BindingKind.MUTUAL_AID, holder_has_personal_account=True
    )
    spec.given([]).when(command).raises(RelationNotAllowedError)


@pytest.mark.parametrize("relation", [Relation.SPOUSE, Relation.CHILD, Relation.PARENT])
def test_mutual_aid_accepts_spouse_child_and_parent(relation: Relation) -> None:
    command = request(
        relation=relation, kind=BindingKind.MUTUAL_AID, holder_has_personal_account=True
    )
    spec.given([]).when(command).then(requested(command, FaceWho.MEMBER))


def test_mutual_aid_needs_the_holders_personal_account() -> None:
    command = request(kind=BindingKind.MUTUAL_AID)
    spec.given([]).when(command).raises(PersonalAccountRequiredError)


def test_a_family_account_is_not_bound_by_a_proxy_method() -> None:
    command = request(method=Method.PROXY_WITH_ID)
    spec.given([]).when(command).raises(MethodNotAllowedError)


def test_a_holder_cannot_bind_themselves() -> None:
    spec.given([]).when(request(HOLDER)).raises(SelfBindingError)


def test_a_deadline_not_after_the_request_is_refused() -> None:
    spec.given([]).when(request(deadline=NOW)).raises(DeadlineError)


def test_sixth_member_is_refused_with_the_limit() -> None:
    error = spec.given(five_requested()).when(request("p-sixth")).raises(FamilyFullError)
    assert isinstance(error, FamilyFullError)
    assert error.code == "binding.family_full"
    assert "5" in error.zh
    assert "5" in error.en


def test_the_limit_counts_each_kind_apart() -> None:
    command = request("p-sixth", kind=BindingKind.PROXY, method=Method.PROXY_WITH_ID)
    spec.given(five_requested()).when(command).then(requested(command, FaceWho.MEMBER))


@pytest.mark.parametrize(
    "finish",
    [
        BindingRejected(
            request_id="r-p-m0",
            member="p-m0",
            kind=BindingKind.FAMILY_ACCOUNT,
            reason=BindingRejectionReason.FACE_FAILED,
            detail="no_match",
        ),
        BindRequestExpired(
            request_id="r-p-m0",
            member="p-m0",
            kind=BindingKind.FAMILY_ACCOUNT,
            deadline=request().deadline,
        ),
        BindingRevoked(
            request_id="r-p-m0",
            member="p-m0",
            kind=BindingKind.FAMILY_ACCOUNT,
            confirmed_by=Confirmation.FACE,
        ),
    ],
)
def test_a_finished_binding_frees_its_place(finish: BindingEvent) -> None:
    command = request("p-sixth")
    spec.given([*five_requested(), finish]).when(command).then(requested(command, FaceWho.MEMBER))


def test_a_pending_member_cannot_be_requested_twice() -> None:
    first = request()
    second = request(request_id="r-again")
    spec.given(requested(first, FaceWho.MEMBER)).when(second).raises(AlreadyBoundError)


def test_a_bound_member_cannot_be_requested_again_for_the_same_kind() -> None:
    first = request()
    bound = MemberBound(request_id=first.request_id, member=first.member, kind=first.kind)
    history = [*requested(first, FaceWho.MEMBER), bound]
    spec.given(history).when(request(request_id="r-again")).raises(AlreadyBoundError)


def test_the_same_member_may_be_bound_for_another_kind() -> None:
    first = request()
    proxy = request(request_id="r-proxy", kind=BindingKind.PROXY, method=Method.PROXY_WITH_ID)
    spec.given(requested(first, FaceWho.MEMBER)).when(proxy).then(requested(proxy, FaceWho.MEMBER))


def test_the_same_request_again_records_nothing() -> None:
    command = request()
    spec.given(requested(command, FaceWho.MEMBER)).when(command).then([])


def test_another_request_under_the_same_id_is_a_conflict() -> None:
    command = request()
    other = request("p-other", request_id=command.request_id)
    spec.given(requested(command, FaceWho.MEMBER)).when(other).raises(RequestConflictError)


@pytest.mark.parametrize(
    "command",
    [
        request(),
        request("p-kid", member_birth_date=CHILD, relation=Relation.CHILD),
        request("p-baby", member_birth_date=TODAY, method=Method.BIRTH_CERTIFICATE, mother=HOLDER),
    ],
)
def test_the_request_event_is_what_identity_consumes(command: RequestMemberBinding) -> None:
    event = binding_decider.decide(command, binding_decider.initial_state())[0]
    published = contract.MemberBindRequested.model_validate(event.model_dump(mode="json"))
    assert published.model_dump(mode="json") == event.model_dump(mode="json")
