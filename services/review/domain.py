"""Review case stream: opened under the policy in force, claimed, decided once, or withdrawn."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import assert_never
from uuid import NAMESPACE_URL, uuid5

from services.review.commands import (
    ApproveCase,
    CaseCommand,
    ClaimCase,
    EscalateCase,
    OpenCase,
    RejectCase,
    WithdrawCase,
)
from services.review.errors import (
    CaseClaimedError,
    CaseDecidedError,
    CaseNotFoundError,
    CaseRegionError,
    CaseWithdrawnError,
    NotePersonalDataError,
    NoteTooLongError,
)
from services.review.events import (
    NOTE_MAX,
    CaseEvent,
    CaseType,
    MaterialsApproved,
    MaterialsRejected,
    OnFailure,
    RejectionReason,
    ReviewCaseClaimed,
    ReviewCaseEscalated,
    ReviewCaseOpened,
    ReviewCaseWithdrawn,
    ReviewMode,
    WithdrawalCause,
)
from services.review.policy import CHECK_REASON, Submission, failed_checks
from services.runtime.decider import Decider
from services.runtime.principal import Principal

_CASE_IDS = uuid5(NAMESPACE_URL, "https://qinqing.invalid/review/case")
_REGION = re.compile(r"^[1-9]\d{5}$")
# Eleven or more digits in a row (a phone or ID number), or an ID number ending in X.
_PERSONAL = re.compile(r"\d{11,}|\d{17}[Xx]")


class CaseStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


def case_id_for(case_type: CaseType, request_id: str) -> str:
    """The same request always names the same case, so a redelivery opens nothing new."""
    return str(uuid5(_CASE_IDS, f"{case_type.value}:{request_id}"))


def case_stream(case_id: str) -> str:
    return f"case-{case_id}"


@dataclass(frozen=True)
class Case:
    opened: ReviewCaseOpened
    status: CaseStatus = CaseStatus.OPEN
    claimed_by: str | None = None
    escalated_at: datetime | None = None
    closed_by: str | None = None  # the decider (reviewer or policy); None when withdrawn
    closed_at: datetime | None = None
    reason: RejectionReason | None = None
    note: str = ""

    @property
    def case_id(self) -> str:
        return self.opened.case_id

    @property
    def region(self) -> str:
        return self.opened.region

    @property
    def is_open(self) -> bool:
        return self.status is CaseStatus.OPEN


# ---------------------------------------------------------------------------- decide


def decide(command: CaseCommand, state: Case | None) -> Sequence[CaseEvent]:
    """Late or repeated events from the requesting service (a redelivered submission, a
    withdrawal of a decided case, a second escalation) record nothing; people's repeated
    decisions are refused, so two reviewers at once get one decision and one conflict."""
    match command:
        case OpenCase():
            return [] if state is not None else _open(command)
        case ClaimCase(reviewer=reviewer, at=at):
            return _claim(_undecided(state, reviewer), reviewer, at)
        case ApproveCase(reviewer=reviewer, at=at):
            case = _decidable(state, reviewer)
            return [_approved(case.opened, reviewer.subject, at)]
        case RejectCase(reviewer=reviewer, reason=reason, note=note, at=at):
            _check_note(note)
            case = _decidable(state, reviewer)
            return [_rejected(case.opened, reason, note, reviewer.subject, at)]
        case EscalateCase(after=after, at=at):
            return _escalate(state, after, at)
        case WithdrawCase(cause=cause, at=at):
            return _withdraw(state, cause, at)
        case _:
            assert_never(command)


def _claim(case: Case, reviewer: Principal, at: datetime) -> Sequence[CaseEvent]:
    if case.claimed_by == reviewer.subject:
        return []
    if case.claimed_by is not None:
        raise CaseClaimedError
    return [ReviewCaseClaimed(case_id=case.case_id, claimed_by=reviewer.subject, claimed_at=at)]


def _escalate(state: Case | None, after: timedelta, at: datetime) -> Sequence[CaseEvent]:
    if state is None or not state.is_open or state.escalated_at is not None:
        return []
    opened = state.opened
    if at - opened.opened_at < after:
        return []
    return [
        ReviewCaseEscalated(
            case_id=opened.case_id,
            region=opened.region,
            opened_at=opened.opened_at,
            escalated_at=at,
        )
    ]


def _withdraw(state: Case | None, cause: WithdrawalCause, at: datetime) -> Sequence[CaseEvent]:
    if state is None or not state.is_open:
        return []  # never opened, or decided before the request ended
    opened = state.opened
    return [
        ReviewCaseWithdrawn(
            case_id=opened.case_id, request_id=opened.request_id, cause=cause, withdrawn_at=at
        )
    ]


def _open(command: OpenCase) -> Sequence[CaseEvent]:
    new, policy, at = command.new, command.policy, command.at
    if not _REGION.fullmatch(new.region):
        raise CaseRegionError
    submission = Submission(new.case_type, new.kind, new.relation, new.materials)
    failed = failed_checks(policy, submission) if policy.mode is ReviewMode.RULES else ()
    opened = ReviewCaseOpened(
        case_id=case_id_for(new.case_type, new.request_id),
        case_type=new.case_type,
        request_id=new.request_id,
        region=new.region,
        holder=new.holder,
        member=new.member,
        kind=new.kind,
        relation=new.relation,
        materials=new.materials,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        mode=policy.mode,
        failed_checks=failed,
        opened_at=at,
    )
    match policy.mode:
        case ReviewMode.MANUAL:
            return [opened]
        case ReviewMode.AUTO_APPROVE:
            return [opened, _approved(opened, policy.decided_by, at)]
        case ReviewMode.RULES:
            if not failed:
                return [opened, _approved(opened, policy.decided_by, at)]
            if policy.on_failure is OnFailure.REJECT:
                reason = CHECK_REASON[failed[0]]
                return [opened, _rejected(opened, reason, "", policy.decided_by, at)]
            return [opened]  # left to a reviewer, who sees the failed checks
        case _:
            assert_never(policy.mode)


def _approved(opened: ReviewCaseOpened, by: str, at: datetime) -> MaterialsApproved:
    return MaterialsApproved(
        case_id=opened.case_id,
        case_type=opened.case_type,
        request_id=opened.request_id,
        decided_by=by,
        decided_at=at,
    )


def _rejected(
    opened: ReviewCaseOpened, reason: RejectionReason, note: str, by: str, at: datetime
) -> MaterialsRejected:
    return MaterialsRejected(
        case_id=opened.case_id,
        case_type=opened.case_type,
        request_id=opened.request_id,
        reason=reason,
        note=note,
        decided_by=by,
        decided_at=at,
    )


def _check_note(note: str) -> None:
    if len(note) > NOTE_MAX:
        raise NoteTooLongError
    if _PERSONAL.search(unicodedata.normalize("NFKC", note)):
        raise NotePersonalDataError


def visible(state: Case | None, reviewer: Principal) -> Case:
    """The case if the reviewer's regions cover it; otherwise it reads as unknown."""
    if state is None or not reviewer.covers(state.region):
        raise CaseNotFoundError
    return state


def _undecided(state: Case | None, reviewer: Principal) -> Case:
    case = visible(state, reviewer)
    match case.status:
        case CaseStatus.OPEN:
            return case
        case CaseStatus.APPROVED | CaseStatus.REJECTED:
            raise CaseDecidedError
        case CaseStatus.WITHDRAWN:
            raise CaseWithdrawnError
        case _:
            assert_never(case.status)


def _decidable(state: Case | None, reviewer: Principal) -> Case:
    """A claimed case is decided by the reviewer who claimed it; an unclaimed one by any."""
    case = _undecided(state, reviewer)
    if case.claimed_by not in (None, reviewer.subject):
        raise CaseClaimedError
    return case


# ---------------------------------------------------------------------------- evolve


def evolve(state: Case | None, event: CaseEvent) -> Case | None:
    match event:
        case ReviewCaseOpened():
            return Case(event)
        case ReviewCaseClaimed(claimed_by=by):
            return replace(_known(state), claimed_by=by)
        case MaterialsApproved(decided_by=by, decided_at=at):
            return replace(_known(state), status=CaseStatus.APPROVED, closed_by=by, closed_at=at)
        case MaterialsRejected(decided_by=by, decided_at=at, reason=reason, note=note):
            return replace(
                _known(state),
                status=CaseStatus.REJECTED,
                closed_by=by,
                closed_at=at,
                reason=reason,
                note=note,
            )
        case ReviewCaseEscalated(escalated_at=at):
            return replace(_known(state), escalated_at=at)
        case ReviewCaseWithdrawn(withdrawn_at=at):
            return replace(_known(state), status=CaseStatus.WITHDRAWN, closed_at=at)
        case _:
            assert_never(event)


def _known(state: Case | None) -> Case:
    assert state is not None, "every case event follows the case's opening"
    return state


def _no_case() -> Case | None:
    return None


case_decider: Decider[CaseCommand, Case | None, CaseEvent] = Decider(decide, evolve, _no_case)
