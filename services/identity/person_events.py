"""Insured person events: what the person stream records, with the sensitive part marked."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.id_number import Sex
from services.runtime.codec import DomainEvent


class Channel(StrEnum):
    NATIONAL_APP = "national_app"  # 国家医保服务平台
    WECHAT = "wechat"
    ALIPAY = "alipay"
    BANK_APP = "bank_app"


class PersonalData(BaseModel):
    """The sensitive part of a registration. The store layer encrypts it with the person's
    data key before it is stored and never publishes it; erasing the key makes it None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # repr=False keeps them out of logs and tracebacks.
    name: str = Field(repr=False)
    id_number: str = Field(repr=False)
    birth_date: date = Field(repr=False)
    sex: Sex = Field(repr=False)


# Events: the person is known by pseudonym; only `personal` is sensitive.
class PersonRegistered(DomainEvent):
    pseudonym: str
    insured_place: str
    personal: PersonalData | None  # None once erased (crypto-shredded); replays still run
    # Keyed hash of the ID number (pii.lookup_hash); absent from early events.
    id_lookup: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    personal_account: bool = False  # an employee-insurance personal account (mutual aid)


class InsuredPlaceAdded(DomainEvent):
    insured_place: str


class CurrentInsuredPlaceSwitched(DomainEvent):
    insured_place: str


class VoucherActivated(DomainEvent):
    channel: Channel
    face_check_id: str


class PasswordProof(StrEnum):
    """What proved the person when a set payment password was replaced."""

    OLD_PASSWORD = "old_password"  # noqa: S105 - changed: the person knew the old one
    FACE_CHECK = "face_check"  # reset: a fresh face check of the person, forgotten or locked


class PaymentPasswordSet(DomainEvent):
    """The first password. The hash is not here: the handler keeps it in a table of its own,
    keyed by (pseudonym, credential_id), and looks it up through the person's current
    credential. `channel` is what the client named, recorded; it decides nothing."""

    credential_id: str
    kdf_scheme: str
    channel: Channel


class PaymentPasswordChanged(DomainEvent):
    """A set password replaced, with what proved the person (no password, no hash)."""

    credential_id: str
    kdf_scheme: str
    channel: Channel
    proven_by: PasswordProof
    face_check_id: str | None  # the check that proved it, used up; None for the old password


class PaymentPasswordVerified(DomainEvent):
    pass


class PaymentPasswordRejected(DomainEvent):
    failed_attempts: int = Field(ge=1)  # consecutive, this one included


class PaymentPasswordLocked(DomainEvent):
    locked_until: datetime


class PersonErased(DomainEvent):
    """The person's data key was deleted: `personal` of their registration reads as None."""


PersonEvent = (
    PersonRegistered
    | InsuredPlaceAdded
    | CurrentInsuredPlaceSwitched
    | VoucherActivated
    | PaymentPasswordSet
    | PaymentPasswordChanged
    | PaymentPasswordVerified
    | PaymentPasswordRejected
    | PaymentPasswordLocked
    | PersonErased
)
PERSON_EVENTS: tuple[type[PersonEvent], ...] = (
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
