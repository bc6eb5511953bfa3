"""Face check stream: requested, then exactly one of verified, failed or expired."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, assert_never

from services.identity.errors import IdentityError
from services.runtime.codec import DomainEvent
from services.runtime.decider import Decider


class FacePurpose(StrEnum):
    ACTIVATION = "activation"
    LOGIN = "login"
    MEMBER_BINDING = "member_binding"  # the member aged 16+ shows their own face
    NEWBORN_MOTHER = "newborn_mother"  # the newborn's mother shows hers
    UNBINDING = "unbinding"  # the holder, instead of the payment password
    PASSWORD_RESET = "password_reset"  # noqa: S105 - the person forgot their payment password
    PROXY_BINDING = "proxy_binding"  # the proxy member with an ID card


class FaceFailureReason(StrEnum):
    """What the provider adapters map the provider's answers to."""

    NO_MATCH = "no_match"
    NOT_LIVE = "not_live"
    POOR_QUALITY = "poor_quality"
    CANCELLED = "cancelled"
    PROVIDER_ERROR = "provider_error"


class FaceCheckStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"
    EXPIRED = "expired"


# Purposes where someone else's face is checked for a requester (who is `on_behalf_of`);
# for the others the subject acts for themselves and `on_behalf_of` must be None.
ON_BEHALF_PURPOSES = frozenset(
    {FacePurpose.MEMBER_BINDING, FacePurpose.NEWBORN_MOTHER, FacePurpose.PROXY_BINDING}
)
# A mother who binds her own newborn is both the requester and the face checked (seed 000/002).
SELF_REQUEST_PURPOSES = frozenset({FacePurpose.NEWBORN_MOTHER})
# Longest wait a request may set: the person at the phone answers within minutes; a member
# or a mother elsewhere is given a day to open the app.
MAX_WAIT: dict[FacePurpose, timedelta] = {
    FacePurpose.ACTIVATION: timedelta(minutes=10),
    FacePurpose.LOGIN: timedelta(minutes=10),
    FacePurpose.UNBINDING: timedelta(minutes=10),
    FacePurpose.PASSWORD_RESET: timedelta(minutes=10),
    FacePurpose.MEMBER_BINDING: timedelta(hours=24),
    FacePurpose.NEWBORN_MOTHER: timedelta(hours=24),
    FacePurpose.PROXY_BINDING: timedelta(hours=24),
}


# Events: pseudonyms only, no face image, no name; all publishable.
class FaceCheckRequested(DomainEvent):
    check_id: str
    purpose: FacePurpose
    subject: str
    on_behalf_of: str | None
    correlation_id: str
    requested_at: datetime
    deadline: datetime


class FaceVerified(DomainEvent):
    check_id: str
    verified_at: datetime


class FaceVerificationFailed(DomainEvent):
    check_id: str
    reason: FaceFailureReason
    failed_at: datetime


class FaceCheckExpired(DomainEvent):
    check_id: str
    deadline: datetime


FaceCheckEvent = FaceCheckRequested | FaceVerified | FaceVerificationFailed | FaceCheckExpired
FACE_CHECK_EVENTS: tuple[type[FaceCheckEvent], ...] = (
    FaceCheckRequested,
    FaceVerified,
    FaceVerificationFailed,
    FaceCheckExpired,
)


@dataclass(frozen=True)
class RequestFaceCheck:
    check_id: str
    purpose: FacePurpose
    subject: str
    on_behalf_of: str | None
    correlation_id: str
    deadline: datetime
    at: datetime


@dataclass(frozen=True)
class RecordFaceVerified:
    at: datetime


@dataclass(frozen=True)
class RecordFaceVerificationFailed:
    reason: FaceFailureReason
    at: datetime


@dataclass(frozen=True)
class ExpireFaceCheck:
    """Sent by a timer; records the expiry only once the deadline has passed at `at`."""

    at: datetime


FaceCheckCommand = (
    RequestFaceCheck | RecordFaceVerified | RecordFaceVerificationFailed | ExpireFaceCheck
)


@dataclass(frozen=True)
class FaceCheck:
    """A face check's state; commands of other streams carry it as evidence of the outcome."""

    check_id: str
    purpose: FacePurpose
    subject: str
    on_behalf_of: str | None
    correlation_id: str
    deadline: datetime
    status: FaceCheckStatus = FaceCheckStatus.PENDING
    decided_at: datetime | None = None
    reason: FaceFailureReason | None = None

    @property
    def verified(self) -> bool:
        return self.status is FaceCheckStatus.VERIFIED


class FaceCheckNotRequestedError(IdentityError):
    code: ClassVar[str] = "face_check.not_requested"
    message_zh: ClassVar[str] = "没有这个人脸识别请求"
    message_en: ClassVar[str] = "No such face check was requested"


class FaceCheckConflictError(IdentityError):
    code: ClassVar[str] = "face_check.conflict"
    message_zh: ClassVar[str] = "该人脸识别请求编号已用于另一个请求"
    message_en: ClassVar[str] = "This face check id is already used by another request"


class FaceCheckDeadlineError(IdentityError):
    code: ClassVar[str] = "face_check.deadline"
    message_zh: ClassVar[str] = "人脸识别的截止时间应晚于请求时间且不超过允许的等待时长"
    message_en: ClassVar[str] = "The deadline must be after the request, within the allowed wait"
    field: ClassVar[str | None] = "deadline"


class FaceCheckOnBehalfError(IdentityError):
    code: ClassVar[str] = "face_check.on_behalf_of"
    message_zh: ClassVar[str] = "代他人发起的人脸识别须注明发起人，本人识别则不得注明"
    message_en: ClassVar[str] = (
        "A check for someone else names its requester (not the subject); one for oneself does not"
    )
    field: ClassVar[str | None] = "on_behalf_of"


def decide(command: FaceCheckCommand, state: FaceCheck | None) -> Sequence[FaceCheckEvent]:
    """Outcomes after the first are ignored (no events), so late or repeated answers are safe.

    An answer that arrives at or after the deadline records the expiry, not the answer: the
    requester has been told the check is over, and the deadline is what they rely on.
    """
    match command:
        case RequestFaceCheck():
            return _request(command, state)
        case RecordFaceVerified(at=at):
            return _answer(state, at, lambda c: FaceVerified(check_id=c.check_id, verified_at=at))
        case RecordFaceVerificationFailed(reason=reason, at=at):
            return _answer(
                state,
                at,
                lambda c: FaceVerificationFailed(check_id=c.check_id, reason=reason, failed_at=at),
            )
        case ExpireFaceCheck(at=at):
            check = _open(state)
            return [] if check is None or at < check.deadline else [_expired(check)]
        case _:
            assert_never(command)


def _request(command: RequestFaceCheck, state: FaceCheck | None) -> Sequence[FaceCheckEvent]:
    if state is not None:
        asked = (command.purpose, command.subject, command.on_behalf_of, command.correlation_id)
        held = (state.purpose, state.subject, state.on_behalf_of, state.correlation_id)
        if (asked, command.deadline) == (held, state.deadline):
            return []  # the same request again (a retry), whenever it arrives
        raise FaceCheckConflictError
    if not command.at < command.deadline <= command.at + MAX_WAIT[command.purpose]:
        raise FaceCheckDeadlineError
    for_someone_else = command.purpose in ON_BEHALF_PURPOSES
    requester = command.on_behalf_of
    for_oneself = requester == command.subject and command.purpose not in SELF_REQUEST_PURPOSES
    if (requester is not None) != for_someone_else or for_oneself:
        raise FaceCheckOnBehalfError
    return [
        FaceCheckRequested(
            check_id=command.check_id,
            purpose=command.purpose,
            subject=command.subject,
            on_behalf_of=requester,
            correlation_id=command.correlation_id,
            requested_at=command.at,
            deadline=command.deadline,
        )
    ]


def _answer(
    state: FaceCheck | None, at: datetime, outcome: Callable[[FaceCheck], FaceCheckEvent]
) -> Sequence[FaceCheckEvent]:
    check = _open(state)
    if check is None:
        return []
    return [_expired(check) if at >= check.deadline else outcome(check)]


def _expired(check: FaceCheck) -> FaceCheckExpired:
    return FaceCheckExpired(check_id=check.check_id, deadline=check.deadline)


def _open(state: FaceCheck | None) -> FaceCheck | None:
    """The check if it still waits for its outcome; None once it has one."""
    if state is None:
        raise FaceCheckNotRequestedError
    return state if state.status is FaceCheckStatus.PENDING else None


def evolve(state: FaceCheck | None, event: FaceCheckEvent) -> FaceCheck | None:
    match event:
        case FaceCheckRequested():
            return FaceCheck(
                check_id=event.check_id,
                purpose=event.purpose,
                subject=event.subject,
                on_behalf_of=event.on_behalf_of,
                correlation_id=event.correlation_id,
                deadline=event.deadline,
            )
        case FaceVerified(verified_at=at):
            return _decided(state, FaceCheckStatus.VERIFIED, at)
        case FaceVerificationFailed(reason=reason, failed_at=at):
            return _decided(state, FaceCheckStatus.FAILED, at, reason)
        case FaceCheckExpired(deadline=deadline):
            return _decided(state, FaceCheckStatus.EXPIRED, deadline)
        case _:
            assert_never(event)


def _decided(
    state: FaceCheck | None,
    status: FaceCheckStatus,
    at: datetime,
    reason: FaceFailureReason | None = None,
) -> FaceCheck:
    assert state is not None, "an outcome follows its request"
    return replace(state, status=status, decided_at=at, reason=reason)


def _no_check() -> FaceCheck | None:
    return None


face_check_decider: Decider[FaceCheckCommand, FaceCheck | None, FaceCheckEvent] = Decider(
    decide, evolve, _no_check
)
