"""The review API's request and response models, and the views of cases, queues and policies
built from the handlers' and queries' results (the console page renders the same views)."""

# No `from __future__ import annotations`: FastAPI reads these models' annotations at run time.

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from contracts.vocabulary import BindingKind, ContentType, MaterialRole, Relation
from services.review.domain import CaseStatus
from services.review.events import (
    NOTE_MAX,
    CaseType,
    Check,
    OnFailure,
    RejectionReason,
    ReviewMode,
)
from services.review.handlers import CaseDetail
from services.review.policy import Policy
from services.review.queries import MAX_PAGE, QueueItem, QueuePage, QueueStats


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RejectBody(_Body):
    reason: RejectionReason
    note: str = Field(default="", max_length=NOTE_MAX, description="Never personal data.")


class SearchBody(_Body):
    """In the body, not the URL, so the number never lands in an access log."""

    id_number: str = Field(max_length=64, repr=False)
    case_type: CaseType | None = None
    limit: StrictInt = Field(default=20, ge=1, le=MAX_PAGE)


class PolicyBody(_Body):
    mode: ReviewMode
    checks: list[Check] = Field(
        default_factory=list, description="For `rules`; empty runs the case type's default checks."
    )
    on_failure: OnFailure = OnFailure.MANUAL


class QueueEntry(_Body):
    case_id: str
    case_type: CaseType
    region: str
    holder: str = Field(description="Masked pseudonym.")
    member: str = Field(description="Masked pseudonym.")
    opened_at: datetime
    age_seconds: int
    claimed_by: str | None
    escalated: bool
    failed_checks: list[Check]


class QueueView(_Body):
    items: list[QueueEntry]
    next_after: str | None = Field(description="Pass as `after` for the next page.")


class MaterialView(_Body):
    role: MaterialRole
    sha256: str
    content_type: ContentType
    href: str = Field(description="Where an authorised reviewer reads the bytes.")


class HistoryView(_Body):
    version: int
    event: str
    at: datetime
    actor: str | None


class CaseView(_Body):
    case_id: str
    case_type: CaseType
    request_id: str
    region: str
    holder: str
    member: str
    kind: BindingKind | None
    relation: Relation | None
    status: CaseStatus
    opened_at: datetime
    claimed_by: str | None
    escalated_at: datetime | None
    decided_by: str | None
    closed_at: datetime | None
    reason: RejectionReason | None
    note: str
    policy_id: str
    policy_version: int
    mode: ReviewMode
    failed_checks: list[Check]
    materials: list[MaterialView]
    history: list[HistoryView]


class RegionStatsView(_Body):
    region: str
    open_cases: int
    escalated: int
    oldest_opened_at: datetime
    oldest_age_seconds: int


class StatsView(_Body):
    regions: list[RegionStatsView]
    open_cases: int
    decisions_last_hour: int
    automatic_last_hour: int


class PolicyView(_Body):
    policy_id: str
    region_prefix: str
    case_type: CaseType
    mode: ReviewMode
    checks: list[Check]
    on_failure: OnFailure
    version: int
    changed_by: str | None
    changed_at: datetime | None


def queue_view(page: QueuePage) -> QueueView:
    return QueueView(items=[_entry(i) for i in page.items], next_after=page.next_after)


def _entry(item: QueueItem) -> QueueEntry:
    return QueueEntry(
        case_id=item.case_id,
        case_type=item.case_type,
        region=item.region,
        holder=item.holder,
        member=item.member,
        opened_at=item.opened_at,
        age_seconds=int(item.age.total_seconds()),
        claimed_by=item.claimed_by,
        escalated=item.escalated,
        failed_checks=list(item.failed_checks),
    )


def material_href(case_id: str, sha256: str) -> str:
    return f"/cases/{case_id}/materials/{sha256}"


def case_view(detail: CaseDetail) -> CaseView:
    case, opened = detail.case, detail.case.opened
    return CaseView(
        case_id=opened.case_id,
        case_type=opened.case_type,
        request_id=opened.request_id,
        region=opened.region,
        holder=opened.holder,
        member=opened.member,
        kind=opened.kind,
        relation=opened.relation,
        status=case.status,
        opened_at=opened.opened_at,
        claimed_by=case.claimed_by,
        escalated_at=case.escalated_at,
        decided_by=case.closed_by,
        closed_at=case.closed_at,
        reason=case.reason,
        note=case.note,
        policy_id=opened.policy_id,
        policy_version=opened.policy_version,
        mode=opened.mode,
        failed_checks=list(opened.failed_checks),
        materials=[
            MaterialView(
                role=m.role,
                sha256=m.sha256,
                content_type=m.content_type,
                href=material_href(opened.case_id, m.sha256),
            )
            for m in opened.materials
        ],
        history=[
            HistoryView(version=h.version, event=h.event, at=h.at, actor=h.actor)
            for h in detail.history
        ],
    )


def stats_view(stats: QueueStats) -> StatsView:
    return StatsView(
        regions=[
            RegionStatsView(
                region=r.region,
                open_cases=r.open_cases,
                escalated=r.escalated,
                oldest_opened_at=r.oldest_opened_at,
                oldest_age_seconds=int(r.oldest_age.total_seconds()),
            )
            for r in stats.regions
        ],
        open_cases=stats.open_cases,
        decisions_last_hour=stats.decisions_last_hour,
        automatic_last_hour=stats.automatic_last_hour,
    )


def policy_view(policy: Policy) -> PolicyView:
    return PolicyView(
        policy_id=policy.policy_id,
        region_prefix=policy.region_prefix,
        case_type=policy.case_type,
        mode=policy.mode,
        checks=list(policy.checks),
        on_failure=policy.on_failure,
        version=policy.version,
        changed_by=policy.changed_by,
        changed_at=policy.changed_at,
    )
