"""Commands to the holder's binding stream: what the handlers have resolved, time included."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from contracts.vocabulary import BindingKind, MaterialRef, Relation
from services.binding.events import Confirmation
from services.binding.rules import Method


@dataclass(frozen=True)
class RequestMemberBinding:
    """The handler has resolved both people to pseudonyms and read the member's birth date,
    the member's insured place and whether the holder has a personal account."""

    request_id: str
    holder: str
    member: str
    member_birth_date: date = field(repr=False)
    member_insured_place: str
    relation: Relation
    kind: BindingKind
    method: Method
    today: date  # the day in China when the request arrives: the age is counted on it
    at: datetime
    deadline: datetime
    mother: str | None = None  # the newborn's mother, for a birth certificate
    commitment_accepted: bool = False
    holder_has_personal_account: bool = False


@dataclass(frozen=True)
class SignCommitmentLetter:
    """The holder signed the letter the service generated for the request (both stored)."""

    request_id: str
    letter: MaterialRef
    signature: MaterialRef
    at: datetime


@dataclass(frozen=True)
class SubmitMaterials:
    """The household register pages; `region` is the holder's current insured place."""

    request_id: str
    holder_household: MaterialRef
    member_household: MaterialRef
    region: str
    at: datetime


@dataclass(frozen=True)
class RecordMaterialsApproved:
    request_id: str
    at: datetime


@dataclass(frozen=True)
class RecordMaterialsRejected:
    request_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class RecordFaceOutcome:
    """The outcome of the face check identity opened for the request (its correlation id)."""

    request_id: str
    verified: bool
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class ExpireBindRequest:
    """Sent by a timer; records the expiry only once the deadline has passed at `at`."""

    request_id: str
    at: datetime


@dataclass(frozen=True)
class RevokeBinding:
    """Made only once the handler has checked identity's proof, so it is confirmed by
    construction; `confirmed_by` says whether by payment password or face check."""

    member: str
    kind: BindingKind
    confirmed_by: Confirmation


BindingCommand = (
    RequestMemberBinding
    | SignCommitmentLetter
    | SubmitMaterials
    | RecordMaterialsApproved
    | RecordMaterialsRejected
    | RecordFaceOutcome
    | ExpireBindRequest
    | RevokeBinding
)
