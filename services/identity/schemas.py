"""The identity API's request and response models, and the masked views of a person and a check."""

# No `from __future__ import annotations`: FastAPI reads these models' annotations at run time.

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from contracts.id_number import mask_id_number
from contracts.names import PersonName, mask_name
from services.identity.domain import Person
from services.identity.face_check import FaceCheck, FaceCheckStatus, FaceFailureReason, FacePurpose
from services.identity.person_events import Channel
from services.runtime.params import Id


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterPersonBody(_Body):
    name: PersonName = Field(repr=False)
    id_number: str = Field(max_length=64, description="18 characters; a lower-case x is accepted")
    insured_place: str = Field(max_length=16, description="6-digit region code")
    personal_account: StrictBool = Field(
        default=False,
        description="Insured by employee insurance with a personal account (个人账户).",
    )


class Registered(_Body):
    pseudonym: str


class Profile(_Body):
    """Masked: the name's first character, the ID number's first 3 and last 4; no birth date,
    since it is the ID number's middle the mask hides. Both None once the person is erased."""

    pseudonym: str
    name: str | None
    id_number: str | None
    insured_places: list[str]
    current_insured_place: str
    activated_channels: list[Channel]
    payment_password_set: bool
    payment_password_locked_until: datetime | None
    erased: bool


class InsuredPlaceBody(_Body):
    insured_place: str = Field(max_length=16)


class ActivateBody(_Body):
    channel: Channel
    face_check_id: Id


class SetPasswordBody(_Body):
    """The first password needs neither proof; a set one needs exactly one of them."""

    password: str = Field(max_length=64, repr=False, description="The new password.")
    channel: Channel = Field(description="The app the request comes from; recorded only.")
    old_password: str | None = Field(
        default=None,
        max_length=64,
        repr=False,
        description="To change a set password; a wrong one counts towards the lockout.",
    )
    face_check_id: str | None = Field(
        default=None,
        max_length=64,
        description="To reset a forgotten or locked password: the person's own verified"
        " `password_reset` check, decided within 5 minutes, not used before.",
    )

    @model_validator(mode="after")
    def _one_proof(self) -> Self:
        if self.old_password is not None and self.face_check_id is not None:
            raise ValueError("give old_password or face_check_id, not both")
        return self


class VerifyPasswordBody(_Body):
    password: str = Field(max_length=64, repr=False)


class PasswordVerified(_Body):
    matched: bool
    confirmation: str | None = Field(
        default=None,
        description="When matched: a signed proof, valid for minutes, that another service"
        " (binding's unbinding) accepts instead of the password.",
    )


class OwnFacePurpose(StrEnum):
    """Checks a person asks for themselves; those on someone's behalf come from binding."""

    ACTIVATION = FacePurpose.ACTIVATION.value
    LOGIN = FacePurpose.LOGIN.value
    UNBINDING = FacePurpose.UNBINDING.value
    PASSWORD_RESET = FacePurpose.PASSWORD_RESET.value


class FaceCheckBody(_Body):
    purpose: OwnFacePurpose


class FaceCheckView(_Body):
    check_id: str
    purpose: FacePurpose
    status: FaceCheckStatus
    deadline: datetime
    decided_at: datetime | None
    reason: FaceFailureReason | None
    confirmation: str | None = Field(
        default=None, description="For a verified unbinding check: the proof binding accepts."
    )


class CallbackOutcome(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"


class ProviderCallback(_Body):
    check_id: Id
    outcome: CallbackOutcome
    reason: FaceFailureReason | None = None  # required when failed; provider_error if missing


def profile_of(person: Person) -> Profile:
    personal = person.personal
    return Profile(
        pseudonym=person.pseudonym,
        name=None if personal is None else mask_name(personal.name),
        id_number=None if personal is None else mask_id_number(personal.id_number),
        insured_places=list(person.places),
        current_insured_place=person.current_place,
        activated_channels=list(person.channels),
        payment_password_set=person.credential_id is not None,
        payment_password_locked_until=person.locked_until,
        erased=person.erased,
    )


def view_of(check: FaceCheck) -> FaceCheckView:
    return FaceCheckView(
        check_id=check.check_id,
        purpose=check.purpose,
        status=check.status,
        deadline=check.deadline,
        decided_at=check.decided_at,
        reason=check.reason,
    )
