"""What `qinqing.binding.v1` carries: every event of the holders' binding streams.

Key and subject of each: the holder's stream (`holder-<pseudonym>`). Persons are known by
pseudonym only; materials by the SHA-256 of their bytes, kept in the blob store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.envelope import topic
from contracts.vocabulary import BindingKind, MaterialRef, Relation

TOPIC = topic("binding")

BindingMethod = Literal["id_number", "birth_certificate", "proxy_with_id", "proxy_without_id"]
BindingRejectionReason = Literal["materials_rejected", "face_failed"]
Confirmation = Literal["payment_password", "face"]
# Whose face the binding waits for: nobody, the member (aged 16+, or a proxy member with an ID
# card), or the mother of a newborn bound by birth certificate.
FaceCheckNeeded = Literal["none", "member", "mother"]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FaceCheckNeed(_Contract):
    who: FaceCheckNeeded
    subject: str | None = Field(
        default=None, description="Pseudonym of the person to check; absent when `who` is none."
    )

    @model_validator(mode="after")
    def _subject_iff_needed(self) -> Self:
        if (self.who == "none") != (self.subject is None):
            raise ValueError("subject is required for a face check and absent without one")
        return self


class MemberBindRequested(_Contract):
    """Identity opens the face check it names."""

    request_id: str
    holder: str = Field(description="Pseudonym of the holder (account owner).")
    member: str = Field(description="Pseudonym of the member to bind.")
    kind: BindingKind
    method: BindingMethod
    face_check: FaceCheckNeed
    deadline: datetime = Field(description="When the request expires without its outcomes.")


class BindingTermsRecorded(_Contract):
    request_id: str
    relation: Relation
    needs_review: bool = Field(description="Materials go to a reviewer (binding by ID number).")


class CommitmentLetterSigned(_Contract):
    request_id: str
    letter: MaterialRef
    signature: MaterialRef


class BindingMaterialsSubmitted(_Contract):
    """Review opens its case from this event."""

    request_id: str
    holder: str
    member: str
    kind: BindingKind
    relation: Relation
    region: str = Field(description="The holder's current insured place (行政区划 code).")
    materials: tuple[MaterialRef, ...]


class BindingMaterialsApproved(_Contract):
    request_id: str


class BindingFaceVerified(_Contract):
    request_id: str


class MemberBound(_Contract):
    """The holder may now show the member's code."""

    request_id: str
    member: str
    kind: BindingKind


class BindingRejected(_Contract):
    request_id: str
    member: str
    kind: BindingKind
    reason: BindingRejectionReason
    detail: str = Field(description="The reviewer's reason code or the face check's failure.")


class BindRequestExpired(_Contract):
    request_id: str
    member: str
    kind: BindingKind
    deadline: datetime


class BindingRevoked(_Contract):
    request_id: str
    member: str
    kind: BindingKind
    confirmed_by: Confirmation


EVENTS: dict[str, type[BaseModel]] = {
    m.__name__: m
    for m in (
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
}
