"""The holder's binding stream events: pseudonyms and rule outcomes only, all publishable."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

from contracts.vocabulary import BindingKind, MaterialRef, Relation
from services.binding.rules import FaceWho, Method
from services.runtime.codec import DomainEvent, PydanticCodec


class BindingRejectionReason(StrEnum):
    MATERIALS_REJECTED = "materials_rejected"
    FACE_FAILED = "face_failed"


class Confirmation(StrEnum):
    """How the holder confirmed an unbinding (001: 6-digit payment password or face)."""

    PAYMENT_PASSWORD = "payment_password"  # noqa: S105 (a method's name, not a secret)
    FACE = "face"


class FaceCheckNeed(BaseModel):
    """Whose face the request waits for; `subject` is their pseudonym, absent for nobody."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    who: FaceWho
    subject: str | None = None

    @model_validator(mode="after")
    def _subject_iff_needed(self) -> Self:
        if (self.who is FaceWho.NONE) != (self.subject is None):
            raise ValueError("subject is required for a face check and absent without one")
        return self


class MemberBindRequested(DomainEvent):
    """Exactly the fields of `contracts.binding.MemberBindRequested`: identity validates it
    with `extra="forbid"`, so what only binding needs travels in `BindingTermsRecorded`."""

    request_id: str
    holder: str
    member: str
    kind: BindingKind
    method: Method
    face_check: FaceCheckNeed
    deadline: datetime


class BindingTermsRecorded(DomainEvent):
    """Written with the request: the relation, and whether materials wait for a reviewer."""

    request_id: str
    relation: Relation
    needs_review: bool


class CommitmentLetterSigned(DomainEvent):
    """The holder signed the letter generated for this request: both blobs' hashes."""

    request_id: str
    letter: MaterialRef
    signature: MaterialRef


class BindingMaterialsSubmitted(DomainEvent):
    """Everything a reviewer needs is attached: review opens its case from this event.
    `region` is the holder's current insured place, whose agency reviews the case."""

    request_id: str
    holder: str
    member: str
    kind: BindingKind
    relation: Relation
    region: str
    materials: tuple[MaterialRef, ...]


class BindingMaterialsApproved(DomainEvent):
    request_id: str


class BindingFaceVerified(DomainEvent):
    request_id: str


class MemberBound(DomainEvent):
    request_id: str
    member: str
    kind: BindingKind


class BindingRejected(DomainEvent):
    request_id: str
    member: str
    kind: BindingKind
    reason: BindingRejectionReason
    detail: str  # the reviewer's reason or the face check's failure reason


class BindRequestExpired(DomainEvent):
    request_id: str
    member: str
    kind: BindingKind
    deadline: datetime


class BindingRevoked(DomainEvent):
    request_id: str
    member: str
    kind: BindingKind
    confirmed_by: Confirmation


BindingEvent = (
    MemberBindRequested
    | BindingTermsRecorded
    | CommitmentLetterSigned
    | BindingMaterialsSubmitted
    | BindingMaterialsApproved
    | BindingFaceVerified
    | MemberBound
    | BindingRejected
    | BindRequestExpired
    | BindingRevoked
)
BINDING_EVENTS: tuple[type[BindingEvent], ...] = (
    MemberBindRequested,
    BindingTermsRecorded,
    CommitmentLetterSigned,
    BindingMaterialsSubmitted,
    BindingMaterialsApproved,
    BindingFaceVerified,
    MemberBound,
    BindingRejected,
    BindRequestExpired,
    BindingRevoked,
)

binding_codec: PydanticCodec[BindingEvent] = PydanticCodec(BINDING_EVENTS)
