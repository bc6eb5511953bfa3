"""The holder's binding stream: requests, review and face outcomes, expiry and revocation.

One stream per holder, so the member limit is checked against everything the holder has
asked for: concurrent requests race on the stream version and exactly the allowed number win.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, assert_never

from contracts.age import age_on
from contracts.vocabulary import BindingKind, MaterialRef, MaterialRole, Relation
from services.binding.commands import (
    BindingCommand,
    ExpireBindRequest,
    RecordFaceOutcome,
    RecordMaterialsApproved,
    RecordMaterialsRejected,
    RequestMemberBinding,
    RevokeBinding,
    SignCommitmentLetter,
    SubmitMaterials,
)
from services.binding.errors import (
    AlreadyBoundError,
    CommitmentNotSignedError,
    CommitmentRequiredError,
    DeadlineError,
    FamilyFullError,
    MaterialRoleError,
    MaterialsAlreadySubmittedError,
    MaterialsNotNeededError,
    MemberRegionNotAllowedError,
    MethodNotAllowedError,
    MotherRequiredError,
    NotBoundError,
    PersonalAccountRequiredError,
    RelationNotAllowedError,
    RequestConflictError,
    RequestNotFoundError,
    RequestNotPendingError,
    SelfBindingError,
)
from services.binding.events import (
    BindingEvent,
    BindingFaceVerified,
    BindingMaterialsApproved,
    BindingMaterialsSubmitted,
    BindingRejected,
    BindingRejectionReason,
    BindingRevoked,
    BindingTermsRecorded,
    BindRequestExpired,
    CommitmentLetterSigned,
    FaceCheckNeed,
    MemberBindRequested,
    MemberBound,
)
from services.binding.rules import (
    FACE_CHECK_AGE,
    KINDS,
    METHODS,
    FaceWho,
    Method,
    face_check_needed,
)
from services.runtime.decider import Decider


class Status(StrEnum):
    PENDING = "pending"
    BOUND = "bound"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REVOKED = "revoked"


LIVE = frozenset({Status.PENDING, Status.BOUND})


class Step(StrEnum):
    """What a pending request may wait for, declared in the order the flow meets them."""

    COMMITMENT_LETTER = "commitment_letter"  # the holder signs it
    MATERIALS = "materials"  # the holder attaches them
    REVIEW = "review"
    FACE = "face"

    @classmethod
    def in_flow_order(cls, steps: Collection[Step]) -> tuple[Step, ...]:
        return tuple(s for s in cls if s in steps)


def holder_stream(holder: str) -> str:
    """The stream of one holder's bind requests: the member limit is checked within it."""
    return f"holder-{holder}"


@dataclass(frozen=True)
class BindRequest:
    request_id: str
    member: str
    kind: BindingKind
    method: Method
    face: FaceCheckNeed
    deadline: datetime
    relation: Relation | None = None
    needs_review: bool = False
    status: Status = Status.PENDING
    letter: tuple[MaterialRef, MaterialRef] | None = None  # the signed letter and signature
    materials: tuple[MaterialRef, ...] | None = None  # everything submitted for review
    review_passed: bool = False
    face_passed: bool = False

    @property
    def waiting_for(self) -> frozenset[Step]:
        """What the request still waits for (also listed once it is rejected or expired)."""
        waiting = set()
        if self.needs_review and not self.review_passed:
            waiting.add(Step.REVIEW)
            if self.materials is None:
                waiting.add(Step.MATERIALS)
                if self.letter is None:
                    waiting.add(Step.COMMITMENT_LETTER)
        if self.face.who is not FaceWho.NONE and not self.face_passed:
            waiting.add(Step.FACE)
        return frozenset(waiting)

    @property
    def in_review(self) -> bool:
        """Materials submitted and no reviewer's decision recorded yet."""
        return self.materials is not None and not self.review_passed


@dataclass(frozen=True)
class Holder:
    holder: str = ""  # the holder's pseudonym, once a request is recorded
    requests: Mapping[str, BindRequest] = field(default_factory=dict)

    def live(self, kind: BindingKind) -> list[BindRequest]:
        return [r for r in self.requests.values() if r.kind is kind and r.status in LIVE]

    def live_binding(self, member: str, kind: BindingKind) -> BindRequest | None:
        return next((r for r in self.live(kind) if r.member == member), None)

    def pending(self, request_id: str) -> BindRequest | None:
        """The request if it still waits for outcomes; None if unknown or finished."""
        request = self.requests.get(request_id)
        return request if request is not None and request.status is Status.PENDING else None


def decide(command: BindingCommand, state: Holder) -> Sequence[BindingEvent]:  # noqa: PLR0911
    """Outcomes for unknown or finished requests, or repeated ones, record nothing."""
    match command:
        case RequestMemberBinding():
            return _request(command, state)
        case SignCommitmentLetter():
            return _sign(command, state)
        case SubmitMaterials():
            return _submit(command, state)
        case RecordMaterialsApproved() | RecordMaterialsRejected():
            return _reviewed(command, state)
        case RecordFaceOutcome(request_id=request_id, verified=verified, at=at, reason=reason):
            request = state.pending(request_id)
            if request is None or Step.FACE not in request.waiting_for:
                return []
            if verified:
                return _passed(request, at, replace(request, face_passed=True))
            return _failed(request, at, BindingRejectionReason.FACE_FAILED, reason)
        case ExpireBindRequest(request_id=request_id, at=at):
            request = state.pending(request_id)
            return [] if request is None or at < request.deadline else [_expired(request)]
        case RevokeBinding():
            return _revoke(command, state)
        case _:
            assert_never(command)


def _request(command: RequestMemberBinding, state: Holder) -> Sequence[BindingEvent]:
    held = state.requests.get(command.request_id)
    if held is not None:
        asked = (command.member, command.kind, command.method, command.relation, command.deadline)
        if asked == (held.member, held.kind, held.method, held.relation, held.deadline):
            return []  # the same request again (a retry), whatever became of it
        raise RequestConflictError
    _check_terms(command)
    if state.live_binding(command.member, command.kind) is not None:
        raise AlreadyBoundError
    limit = KINDS[command.kind].max_members
    if len(state.live(command.kind)) >= limit:
        raise FamilyFullError(limit)
    who = face_check_needed(command.method, command.member_birth_date, command.today)
    subject = {FaceWho.NONE: None, FaceWho.MEMBER: command.member, FaceWho.MOTHER: command.mother}
    requested = MemberBindRequested(
        request_id=command.request_id,
        holder=command.holder,
        member=command.member,
        kind=command.kind,
        method=command.method,
        face_check=FaceCheckNeed(who=who, subject=subject[who]),
        deadline=command.deadline,
    )
    needs_review = METHODS[command.method].review
    terms = BindingTermsRecorded(
        request_id=command.request_id, relation=command.relation, needs_review=needs_review
    )
    if needs_review or who is not FaceWho.NONE:
        return [requested, terms]
    return [requested, terms, _bound(command.request_id, command.member, command.kind)]


def _check_terms(command: RequestMemberBinding) -> None:
    kind, method = KINDS[command.kind], METHODS[command.method]
    if command.member == command.holder:
        raise SelfBindingError
    if command.relation not in kind.relations:
        raise RelationNotAllowedError
    if command.method not in kind.methods:
        raise MethodNotAllowedError
    if kind.needs_personal_account and not command.holder_has_personal_account:
        raise PersonalAccountRequiredError
    provinces = kind.member_provinces
    if provinces is not None and command.member_insured_place[:2] not in provinces:
        raise MemberRegionNotAllowedError
    if method.too_old is not None and (
        age_on(command.member_birth_date, command.today) >= FACE_CHECK_AGE
    ):
        raise method.too_old
    if method.needs_mother and command.mother is None:
        raise MotherRequiredError
    if method.needs_commitment and not command.commitment_accepted:
        raise CommitmentRequiredError
    if command.deadline <= command.at:
        raise DeadlineError


def _reviewed(
    command: RecordMaterialsApproved | RecordMaterialsRejected, state: Holder
) -> Sequence[BindingEvent]:
    """A reviewer's decision counts only while the submitted materials wait for one."""
    request = state.pending(command.request_id)
    if request is None or not request.in_review:
        return []
    if isinstance(command, RecordMaterialsApproved):
        return _passed(request, command.at, replace(request, review_passed=True))
    return _failed(request, command.at, BindingRejectionReason.MATERIALS_REJECTED, command.reason)


def _holder_action(state: Holder, request_id: str) -> BindRequest:
    """The pending request that takes materials; refusals for anything else."""
    request = state.requests.get(request_id)
    if request is None:
        raise RequestNotFoundError
    if not request.needs_review:
        raise MaterialsNotNeededError
    if request.status is not Status.PENDING:
        raise RequestNotPendingError
    return request


def _check_role(ref: MaterialRef, role: MaterialRole) -> None:
    if ref.role is not role:
        raise MaterialRoleError(f"（应为{role.value}）", f" (expected {role.value})")


def _sign(command: SignCommitmentLetter, state: Holder) -> Sequence[BindingEvent]:
    request = _holder_action(state, command.request_id)
    _check_role(command.letter, MaterialRole.COMMITMENT_LETTER)
    _check_role(command.signature, MaterialRole.SIGNATURE)
    if request.letter is not None:
        if request.letter == (command.letter, command.signature):
            return []  # signed already: a retry
        raise MaterialsAlreadySubmittedError
    if command.at >= request.deadline:
        return [_expired(request)]
    signed = CommitmentLetterSigned(
        request_id=request.request_id, letter=command.letter, signature=command.signature
    )
    return [signed]


def _submit(command: SubmitMaterials, state: Holder) -> Sequence[BindingEvent]:
    request = _holder_action(state, command.request_id)
    _check_role(command.holder_household, MaterialRole.HOLDER_HOUSEHOLD)
    _check_role(command.member_household, MaterialRole.MEMBER_HOUSEHOLD)
    if request.letter is None:
        raise CommitmentNotSignedError
    materials = (*request.letter, command.holder_household, command.member_household)
    if request.materials is not None:
        if request.materials == materials:
            return []  # submitted already: a retry
        raise MaterialsAlreadySubmittedError
    if command.at >= request.deadline:
        return [_expired(request)]
    assert request.relation is not None  # recorded with the request
    submitted = BindingMaterialsSubmitted(
        request_id=request.request_id,
        holder=state.holder,
        member=request.member,
        kind=request.kind,
        relation=request.relation,
        region=command.region,
        materials=materials,
    )
    return [submitted]


def _passed(request: BindRequest, at: datetime, after: BindRequest) -> Sequence[BindingEvent]:
    """One needed outcome passed; the member is bound once nothing else is awaited."""
    if at >= request.deadline:
        return [_expired(request)]
    step: BindingEvent = (
        BindingMaterialsApproved(request_id=request.request_id)
        if after.review_passed != request.review_passed
        else BindingFaceVerified(request_id=request.request_id)
    )
    if after.waiting_for:
        return [step]
    return [step, _bound(request.request_id, request.member, request.kind)]


def _failed(
    request: BindRequest, at: datetime, reason: BindingRejectionReason, detail: str
) -> Sequence[BindingEvent]:
    if at >= request.deadline:
        return [_expired(request)]
    return [
        BindingRejected(
            request_id=request.request_id,
            member=request.member,
            kind=request.kind,
            reason=reason,
            detail=detail,
        )
    ]


def _revoke(command: RevokeBinding, state: Holder) -> Sequence[BindingEvent]:
    live = state.live_binding(command.member, command.kind)
    if live is None:
        revoked = any(
            r.member == command.member and r.kind is command.kind and r.status is Status.REVOKED
            for r in state.requests.values()
        )
        if revoked:
            return []  # revoked already: a repeated unbinding
        raise NotBoundError
    return [
        BindingRevoked(
            request_id=live.request_id,
            member=live.member,
            kind=live.kind,
            confirmed_by=command.confirmed_by,
        )
    ]


def _bound(request_id: str, member: str, kind: BindingKind) -> MemberBound:
    return MemberBound(request_id=request_id, member=member, kind=kind)


def _expired(request: BindRequest) -> BindRequestExpired:
    return BindRequestExpired(
        request_id=request.request_id,
        member=request.member,
        kind=request.kind,
        deadline=request.deadline,
    )


def evolve(state: Holder, event: BindingEvent) -> Holder:  # noqa: PLR0911
    match event:
        case MemberBindRequested():
            request = BindRequest(
                request_id=event.request_id,
                member=event.member,
                kind=event.kind,
                method=event.method,
                face=event.face_check,
                deadline=event.deadline,
            )
            return Holder(event.holder, {**state.requests, event.request_id: request})
        case BindingTermsRecorded(request_id=request_id, relation=relation, needs_review=review):
            return _update(state, request_id, relation=relation, needs_review=review)
        case CommitmentLetterSigned(request_id=request_id, letter=letter, signature=signature):
            return _update(state, request_id, letter=(letter, signature))
        case BindingMaterialsSubmitted(request_id=request_id, materials=materials):
            return _update(state, request_id, materials=materials)
        case BindingMaterialsApproved(request_id=request_id):
            return _update(state, request_id, review_passed=True)
        case BindingFaceVerified(request_id=request_id):
            return _update(state, request_id, face_passed=True)
        case MemberBound(request_id=request_id):
            return _update(state, request_id, status=Status.BOUND)
        case BindingRejected(request_id=request_id):
            return _update(state, request_id, status=Status.REJECTED)
        case BindRequestExpired(request_id=request_id):
            return _update(state, request_id, status=Status.EXPIRED)
        case BindingRevoked(request_id=request_id):
            return _update(state, request_id, status=Status.REVOKED)
        case _:
            assert_never(event)


def _update(state: Holder, request_id: str, **changes: Any) -> Holder:
    changed = replace(state.requests[request_id], **changes)
    return replace(state, requests={**state.requests, request_id: changed})


binding_decider: Decider[BindingCommand, Holder, BindingEvent] = Decider(decide, evolve, Holder)
