"""What identity publishes on `qinqing.identity.v1`: face check outcomes and person events.

Each model is the JSON body of one event type (`qinqing.identity.<Name>.v1`). Persons are
known by pseudonym only; a registration carries its personal fields as ciphertext tokens
sealed with the person's data key, which no other service holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import topic

TOPIC = topic("identity")

FacePurpose = Literal[
    "activation",
    "login",
    "member_binding",
    "newborn_mother",
    "unbinding",
    "proxy_binding",
    "password_reset",
]
FaceFailureReason = Literal["no_match", "not_live", "poor_quality", "cancelled", "provider_error"]
Channel = Literal["national_app", "wechat", "alipay", "bank_app"]
PasswordProof = Literal["old_password", "face_check"]
# `v1.<nonce>.<ciphertext>`, base64url: a plaintext value cannot pass for one.
SealedToken = Annotated[str, Field(pattern=r"^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------- face checks


class FaceCheckRequested(_Contract):
    """Key and subject: `face-<check_id>`. The outcome events follow under the same key."""

    check_id: str
    purpose: FacePurpose
    subject: str = Field(description="Pseudonym of the person whose face is checked.")
    on_behalf_of: str | None = Field(description="Pseudonym of who asked for someone else.")
    correlation_id: str = Field(description="What the check serves, e.g. a bind request id.")
    requested_at: datetime
    deadline: datetime


class FaceVerified(_Contract):
    check_id: str
    verified_at: datetime


class FaceVerificationFailed(_Contract):
    check_id: str
    reason: FaceFailureReason
    failed_at: datetime


class FaceCheckExpired(_Contract):
    check_id: str
    deadline: datetime


# ---------------------------------------------------------------------------- persons


class SealedPersonalData(_Contract):
    """AES-GCM tokens, one per field; unreadable outside identity, for ever once erased."""

    name: SealedToken
    id_number: SealedToken
    birth_date: SealedToken
    sex: SealedToken


class PersonRegistered(_Contract):
    """Key and subject: `person-<pseudonym>`, as for every person event below."""

    pseudonym: str
    insured_place: str
    personal: SealedPersonalData
    id_lookup: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="HMAC-SHA256 of the normalised ID number under the platform's lookup key:"
        " how services find a person by ID number without holding it. Absent in events"
        " recorded before it was added.",
    )
    personal_account: bool = Field(
        default=False,
        description="Insured by employee insurance with a personal account (个人账户), which"
        " family mutual aid draws on.",
    )


class InsuredPlaceAdded(_Contract):
    insured_place: str


class CurrentInsuredPlaceSwitched(_Contract):
    insured_place: str


class VoucherActivated(_Contract):
    channel: Channel
    face_check_id: str


class PaymentPasswordSet(_Contract):
    credential_id: str
    kdf_scheme: str
    channel: Channel


class PaymentPasswordChanged(_Contract):
    """A set password replaced: `proven_by` the old password, or a fresh face check of the
    person (`face_check_id`), which also lifts a lock. Never the password or its hash."""

    credential_id: str
    kdf_scheme: str
    channel: Channel = Field(description="What the client named; recorded, decides nothing.")
    proven_by: PasswordProof
    face_check_id: str | None


class PaymentPasswordVerified(_Contract):
    pass


class PaymentPasswordRejected(_Contract):
    failed_attempts: int = Field(ge=1)


class PaymentPasswordLocked(_Contract):
    locked_until: datetime


class PersonErased(_Contract):
    pass


FACE_CHECK_EVENTS: tuple[type[_Contract], ...] = (
    FaceCheckRequested,
    FaceVerified,
    FaceVerificationFailed,
    FaceCheckExpired,
)
PERSON_EVENTS: tuple[type[_Contract], ...] = (
    PersonRegistered,
    InsuredPlaceAdded,
    CurrentInsuredPlaceSwitched,
    VoucherActivated,
    PaymentPasswordSet,
    PaymentPasswordChanged,
    PaymentPasswordVerified,
    PaymentPasswordRejected,
    PaymentPasswordLocked,
    PersonErased,
)
# Event name (the `<Name>` in the type) -> the model of its v1 body.
EVENTS: dict[str, type[BaseModel]] = {m.__name__: m for m in FACE_CHECK_EVENTS + PERSON_EVENTS}
