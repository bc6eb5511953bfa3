"""Insured person stream: registration, insured places, e-voucher activation, payment password."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import assert_never

from contracts.id_number import is_known_region, parse_id_number
from contracts.names import read_name
from services.identity.errors import (
    FaceCheckNotPassedError,
    FaceCheckPurposeError,
    FaceCheckRequiredError,
    FaceCheckStaleError,
    FaceCheckUsedError,
    IdentityError,
    InvalidInsuredPlaceError,
    InvalidNameError,
    OldPasswordRequiredError,
    PasswordChangedMeanwhileError,
    PasswordLockedError,
    PaymentPasswordNotSetError,
    PersonalDataErasedError,
    PersonAlreadyRegisteredError,
    PersonNotRegisteredError,
    UnknownInsuredPlaceError,
    VoucherNotActivatedError,
)
from services.identity.face_check import FaceCheck, FaceCheckNotRequestedError, FacePurpose
from services.identity.password import DEFAULT_LOCKOUT, LockoutPolicy
from services.identity.person_events import (
    Channel,
    CurrentInsuredPlaceSwitched,
    InsuredPlaceAdded,
    PasswordProof,
    PaymentPasswordChanged,
    PaymentPasswordLocked,
    PaymentPasswordRejected,
    PaymentPasswordSet,
    PaymentPasswordVerified,
    PersonalData,
    PersonErased,
    PersonEvent,
    PersonRegistered,
    VoucherActivated,
)
from services.runtime.decider import Decider

# A face check proves presence only briefly: the step it allows must follow it within this
# time. A password reset gets the life of an unbinding proof (services.runtime.auth).
FACE_CHECK_FRESH_FOR: dict[FacePurpose, timedelta] = {
    FacePurpose.ACTIVATION: timedelta(minutes=10),
    FacePurpose.PASSWORD_RESET: timedelta(minutes=5),
}


@dataclass(frozen=True)
class RegisterPerson:
    pseudonym: str  # random and stable, made by the handler
    name: str = field(repr=False)  # kept out of logs and tracebacks
    id_number: str = field(repr=False)
    insured_place: str
    today: date  # the day in China when the command arrives
    # The keyed hash of the normalised ID number (services.runtime.pii.lookup_hash): other
    # services find the person by ID number through it, never through the number itself.
    id_lookup: str | None = None
    # Insured by employee insurance with a personal account (个人账户), which mutual aid
    # (家庭账户共济) draws on; the registry tells, the person does not choose it.
    personal_account: bool = False


@dataclass(frozen=True)
class AddInsuredPlace:
    insured_place: str


@dataclass(frozen=True)
class SwitchCurrentInsuredPlace:
    insured_place: str


@dataclass(frozen=True)
class ActivateVoucher:
    """`face_check` is the state of the person's face check stream, read by the handler."""

    channel: Channel
    face_check: FaceCheck
    at: datetime


@dataclass(frozen=True)
class OldPasswordChecked:
    """The handler compared the old password with the hash of credential `against`."""

    against: str
    matched: bool


@dataclass(frozen=True)
class SetPaymentPassword:
    """The handler has checked the rules and, when the decision names `credential_id`, stored
    the hash under it. `proof` is what the person showed beyond the access token: nothing
    (enough for the first password only), the old password, or the state of a face check.
    `channel` is the client's word: recorded only."""

    credential_id: str
    kdf_scheme: str
    channel: Channel
    proof: OldPasswordChecked | FaceCheck | None
    at: datetime


@dataclass(frozen=True)
class RecordPasswordAttempt:
    """The handler has compared the password with the stored hash; `matched` is the result."""

    matched: bool
    at: datetime


@dataclass(frozen=True)
class ErasePerson:
    """The handler has deleted the person's data key; this records it (once)."""


PersonCommand = (
    RegisterPerson
    | AddInsuredPlace
    | SwitchCurrentInsuredPlace
    | ActivateVoucher
    | SetPaymentPassword
    | RecordPasswordAttempt
    | ErasePerson
)


@dataclass(frozen=True)
class Person:
    pseudonym: str
    personal: PersonalData | None
    places: tuple[str, ...]
    current_place: str
    channels: tuple[Channel, ...] = ()  # in activation order, as the clients named them
    used_face_checks: frozenset[str] = frozenset()
    credential_id: str | None = None
    failed_attempts: int = 0
    locked_until: datetime | None = None
    erased: bool = False

    def password_locked(self, at: datetime) -> bool:
        """Handlers ask this before running the KDF, to spare it while locked."""
        return self.locked_until is not None and at < self.locked_until


def make_person_decider(
    policy: LockoutPolicy = DEFAULT_LOCKOUT,
) -> Decider[PersonCommand, Person | None, PersonEvent]:
    """The insured person's decider, with the lockout policy from the settings."""

    def decide(command: PersonCommand, state: Person | None) -> Sequence[PersonEvent]:  # noqa: PLR0911
        if isinstance(command, RegisterPerson):
            return _register(command, state)
        if state is None:
            raise PersonNotRegisteredError
        match command:
            case AddInsuredPlace(insured_place=place):
                _check_place(place)
                return [] if place in state.places else [InsuredPlaceAdded(insured_place=place)]
            case SwitchCurrentInsuredPlace(insured_place=place):
                if place not in state.places:
                    raise UnknownInsuredPlaceError
                if place == state.current_place:
                    return []
                return [CurrentInsuredPlaceSwitched(insured_place=place)]
            case ActivateVoucher():
                return _activate(command, state)
            case SetPaymentPassword():
                return _set_password(command, state, policy)
            case RecordPasswordAttempt():
                return _attempt(command, state, policy)
            case ErasePerson():
                return [] if state.erased else [PersonErased()]
            case _:
                assert_never(command)

    return Decider(decide, evolve, _nobody)


def _register(command: RegisterPerson, state: Person | None) -> Sequence[PersonEvent]:
    if state is not None:
        raise PersonAlreadyRegisteredError
    name = read_name(command.name)
    if name is None:
        raise InvalidNameError
    number = parse_id_number(command.id_number, command.today)
    _check_place(command.insured_place)
    personal = PersonalData(
        name=name, id_number=number.value, birth_date=number.birth_date, sex=number.sex
    )
    return [
        PersonRegistered(
            pseudonym=command.pseudonym,
            insured_place=command.insured_place,
            personal=personal,
            id_lookup=command.id_lookup,
            personal_account=command.personal_account,
        )
    ]


def _check_place(place: str) -> None:
    if not is_known_region(place):
        raise InvalidInsuredPlaceError


def _activate(command: ActivateVoucher, state: Person) -> Sequence[PersonEvent]:
    if command.channel in state.channels:
        return []
    check = command.face_check
    if _face_check_refusal(check, FacePurpose.ACTIVATION, state, command.at) is not None:
        raise FaceCheckRequiredError  # activation has always answered with one code
    return [VoucherActivated(channel=command.channel, face_check_id=check.check_id)]


def _face_check_refusal(
    check: FaceCheck, purpose: FacePurpose, state: Person, at: datetime
) -> IdentityError | None:
    """Why `check` does not prove `state`'s person for `purpose` at `at`; None if it does:
    their own check, for this purpose, passed within its freshness, used for nothing yet."""
    if check.subject != state.pseudonym:
        return FaceCheckNotRequestedError()  # someone else's check reads as unknown
    if check.purpose is not purpose:
        return FaceCheckPurposeError()
    if not check.verified or check.decided_at is None:
        return FaceCheckNotPassedError()
    if at - check.decided_at > FACE_CHECK_FRESH_FOR[purpose]:
        return FaceCheckStaleError()
    if check.check_id in state.used_face_checks:
        return FaceCheckUsedError()
    return None


def _set_password(
    command: SetPaymentPassword, state: Person, policy: LockoutPolicy
) -> Sequence[PersonEvent]:
    """The first password needs the access token only (as at activation in the national app);
    a set one is changed with the old one (a wrong one counts towards the lockout, and none
    passes while locked) or reset with a fresh face check, which also lifts the lock."""
    if state.personal is None:
        raise PersonalDataErasedError
    if not state.channels:
        raise VoucherNotActivatedError
    if command.credential_id == state.credential_id:
        return []  # this very command was recorded already
    proof = command.proof
    if proof is None:
        if state.credential_id is None:
            return [
                PaymentPasswordSet(
                    credential_id=command.credential_id,
                    kdf_scheme=command.kdf_scheme,
                    channel=command.channel,
                )
            ]
        _refuse_while_locked(state, command.at)
        raise OldPasswordRequiredError
    if state.credential_id is None:
        raise PaymentPasswordNotSetError
    if isinstance(proof, OldPasswordChecked):
        _refuse_while_locked(state, command.at)
        if proof.against != state.credential_id:
            raise PasswordChangedMeanwhileError
        if not proof.matched:
            return _rejected(state, command.at, policy)
        return [_changed(command, PasswordProof.OLD_PASSWORD)]
    refusal = _face_check_refusal(proof, FacePurpose.PASSWORD_RESET, state, command.at)
    if refusal is not None:
        raise refusal
    return [_changed(command, PasswordProof.FACE_CHECK, proof.check_id)]


def _changed(
    command: SetPaymentPassword, proven_by: PasswordProof, face_check_id: str | None = None
) -> PaymentPasswordChanged:
    return PaymentPasswordChanged(
        credential_id=command.credential_id,
        kdf_scheme=command.kdf_scheme,
        channel=command.channel,
        proven_by=proven_by,
        face_check_id=face_check_id,
    )


def _refuse_while_locked(state: Person, at: datetime) -> None:
    if state.locked_until is not None and state.password_locked(at):
        raise PasswordLockedError(state.locked_until)


def _attempt(
    command: RecordPasswordAttempt, state: Person, policy: LockoutPolicy
) -> Sequence[PersonEvent]:
    if state.credential_id is None:
        raise PaymentPasswordNotSetError
    _refuse_while_locked(state, command.at)
    if command.matched:
        return [PaymentPasswordVerified()]
    return _rejected(state, command.at, policy)


def _rejected(state: Person, at: datetime, policy: LockoutPolicy) -> Sequence[PersonEvent]:
    """A wrong password, whether given to verify or to change it: counted, the last one locks."""
    # A lapsed lock starts a fresh count.
    failures = 1 if state.locked_until is not None else state.failed_attempts + 1
    rejected = PaymentPasswordRejected(failed_attempts=failures)
    if failures < policy.max_failures:
        return [rejected]
    return [rejected, PaymentPasswordLocked(locked_until=at + policy.lock_for)]


def evolve(state: Person | None, event: PersonEvent) -> Person | None:  # noqa: PLR0911
    if isinstance(event, PersonRegistered):
        return Person(
            pseudonym=event.pseudonym,
            personal=event.personal,
            places=(event.insured_place,),
            current_place=event.insured_place,
        )
    assert state is not None, "a person's events follow the registration"
    match event:
        case InsuredPlaceAdded(insured_place=place):
            return replace(state, places=(*state.places, place))
        case CurrentInsuredPlaceSwitched(insured_place=place):
            return replace(state, current_place=place)
        case VoucherActivated(channel=channel, face_check_id=check_id):
            used = state.used_face_checks | {check_id}
            return replace(state, channels=(*state.channels, channel), used_face_checks=used)
        case PaymentPasswordSet(credential_id=credential_id):
            # Now only a first password; earlier ones were also resets and lifted the lock.
            return replace(state, credential_id=credential_id, failed_attempts=0, locked_until=None)
        case PaymentPasswordChanged(credential_id=credential_id, face_check_id=check_id):
            # The old password or a face check proved the person: the count starts again and a
            # lock (only a face check passes one) is lifted, as banks do after a reset.
            used = state.used_face_checks | ({check_id} if check_id else set())
            return replace(
                state,
                credential_id=credential_id,
                failed_attempts=0,
                locked_until=None,
                used_face_checks=used,
            )
        case PaymentPasswordVerified():
            return replace(state, failed_attempts=0, locked_until=None)
        case PaymentPasswordRejected(failed_attempts=failures):
            return replace(state, failed_attempts=failures, locked_until=None)
        case PaymentPasswordLocked(locked_until=until):
            return replace(state, locked_until=until)
        case PersonErased():
            return replace(state, personal=None, erased=True)
        case _:
            assert_never(event)


def _nobody() -> Person | None:
    return None
