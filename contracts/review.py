"""What `qinqing.review.v1` carries: review cases, reviewers' decisions, policy changes.

Key and subject of a case's events: the review case's stream (`case-<case_id>`); of policy
changes: `review-policies`. MaterialsApproved and MaterialsRejected are what the requesting
services consume, matched by `request_id` to their own request; the others are for analytics
and auditors (which policy version decided each case, who claimed it, how long it waited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import topic
from contracts.vocabulary import BindingKind, MaterialRef, Relation

TOPIC = topic("review")

CaseType = Literal["member_binding", "resident_registration", "filing"]
# The fixed list a reviewer picks from; `note` adds free text.
RejectionReason = Literal[
    "materials_unclear",  # 材料不清晰
    "materials_mismatch",  # 材料与填写信息不符
    "relation_not_proven",  # 无法证明亲属关系
    "materials_missing",  # 材料不全
    "other",  # 其他
]
ReviewMode = Literal["manual", "auto_approve", "rules"]
Check = Literal["materials_present", "material_types", "relation_allowed"]
OnFailure = Literal["manual", "reject"]
WithdrawalCause = Literal["request_rejected", "request_expired", "binding_revoked"]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MaterialsApproved(_Contract):
    case_id: str
    case_type: CaseType
    request_id: str = Field(description="The request the case reviews, in its own service.")
    decided_by: str = Field(description="The reviewer's staff id, or `policy:<id>` when automatic.")
    decided_at: datetime


class MaterialsRejected(_Contract):
    case_id: str
    case_type: CaseType
    request_id: str
    reason: RejectionReason
    note: str = Field(default="", max_length=200, description="Free text; never personal data.")
    decided_by: str
    decided_at: datetime


class ReviewCaseOpened(_Contract):
    case_id: str
    case_type: CaseType
    request_id: str
    region: str = Field(description="行政区划 code of the case; reviewers covering it see it.")
    holder: str = Field(description="Pseudonym of the requester.")
    member: str = Field(description="Pseudonym of the person the request is for.")
    kind: BindingKind | None = None
    relation: Relation | None = None
    materials: tuple[MaterialRef, ...] = ()
    policy_id: str = Field(description="`<region prefix or *>/<case_type>`: the policy applied.")
    policy_version: int = Field(ge=0, description="Its version; 0 is the default (manual).")
    mode: ReviewMode
    failed_checks: tuple[Check, ...] = ()
    opened_at: datetime


class ReviewCaseClaimed(_Contract):
    case_id: str
    claimed_by: str = Field(description="The reviewer's staff id.")
    claimed_at: datetime


class ReviewCaseEscalated(_Contract):
    case_id: str
    region: str
    opened_at: datetime
    escalated_at: datetime


class ReviewCaseWithdrawn(_Contract):
    case_id: str
    request_id: str
    cause: WithdrawalCause
    withdrawn_at: datetime


class ReviewPolicyChanged(_Contract):
    policy_id: str
    region_prefix: str = Field(description="行政区划 code prefix; empty for everywhere.")
    case_type: CaseType
    mode: ReviewMode
    checks: tuple[Check, ...] = ()
    on_failure: OnFailure = "manual"
    version: int = Field(ge=1)
    changed_by: str = Field(description="The operator's staff id.")
    changed_at: datetime


EVENTS: dict[str, type[BaseModel]] = {
    m.__name__: m
    for m in (
        ReviewCaseOpened,
        ReviewCaseClaimed,
        MaterialsApproved,
        MaterialsRejected,
        ReviewCaseEscalated,
        ReviewCaseWithdrawn,
        ReviewPolicyChanged,
    )
}
