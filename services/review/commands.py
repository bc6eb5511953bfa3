"""Commands of the review case stream: what the consumers, reviewers and the timer ask for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.vocabulary import BindingKind, MaterialRef, Relation
from services.review.events import CaseType, RejectionReason, WithdrawalCause
from services.review.policy import Policy
from services.runtime.principal import Principal


@dataclass(frozen=True)
class NewCase:
    """A request that needs review, as the requesting service described it."""

    case_type: CaseType
    request_id: str
    region: str
    holder: str
    member: str
    kind: BindingKind | None
    relation: Relation | None
    materials: tuple[MaterialRef, ...]


@dataclass(frozen=True)
class OpenCase:
    new: NewCase
    policy: Policy  # the one in force for the region and type when the case opens
    at: datetime


@dataclass(frozen=True)
class ClaimCase:
    reviewer: Principal
    at: datetime


@dataclass(frozen=True)
class ApproveCase:
    reviewer: Principal
    at: datetime


@dataclass(frozen=True)
class RejectCase:
    reviewer: Principal
    reason: RejectionReason
    note: str
    at: datetime


@dataclass(frozen=True)
class EscalateCase:
    """Sent by a timer; records the escalation once the case has waited `after` at `at`."""

    after: timedelta
    at: datetime


@dataclass(frozen=True)
class WithdrawCase:
    cause: WithdrawalCause
    at: datetime


CaseCommand = OpenCase | ClaimCase | ApproveCase | RejectCase | EscalateCase | WithdrawCase
