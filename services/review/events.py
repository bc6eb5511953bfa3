"""Review's stored events (case streams and the policy stream) and the values they carry."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from contracts.vocabulary import BindingKind, MaterialRef, Relation
from services.runtime.codec import DomainEvent, PydanticCodec

NOTE_MAX = 200


class CaseType(StrEnum):
    MEMBER_BINDING = "member_binding"  # 亲情账户绑定: materials of a binding by ID number
    RESIDENT_REGISTRATION = "resident_registration"  # 城乡居民参保登记 (seed 004)
    FILING = "filing"  # 异地就医备案 (seed 004)


class RejectionReason(StrEnum):
    """The fixed list a reviewer picks from; a free note may add to it."""

    MATERIALS_UNCLEAR = "materials_unclear"  # 材料不清晰
    MATERIALS_MISMATCH = "materials_mismatch"  # 材料与填写信息不符
    RELATION_NOT_PROVEN = "relation_not_proven"  # 无法证明亲属关系
    MATERIALS_MISSING = "materials_missing"  # 材料不全
    OTHER = "other"  # 其他


class ReviewMode(StrEnum):
    MANUAL = "manual"  # a reviewer decides
    AUTO_APPROVE = "auto_approve"  # approved when opened
    RULES = "rules"  # approved when every check passes; otherwise see OnFailure


class Check(StrEnum):
    MATERIALS_PRESENT = "materials_present"  # every required role is there
    MATERIAL_TYPES = "material_types"  # each material has a type its role accepts
    RELATION_ALLOWED = "relation_allowed"  # the binding kind accepts the relation


class OnFailure(StrEnum):
    MANUAL = "manual"  # a failed check leaves the case to a reviewer
    REJECT = "reject"  # a failed check rejects it (seed 004: filings checked by rules)


class WithdrawalCause(StrEnum):
    REQUEST_REJECTED = "request_rejected"  # e.g. the member's face check failed
    REQUEST_EXPIRED = "request_expired"
    BINDING_REVOKED = "binding_revoked"


# Events: pseudonyms, codes and hashes only, all publishable.
class ReviewCaseOpened(DomainEvent):
    case_id: str
    case_type: CaseType
    request_id: str
    region: str
    holder: str
    member: str
    kind: BindingKind | None = None
    relation: Relation | None = None
    materials: tuple[MaterialRef, ...] = ()
    policy_id: str
    policy_version: int = Field(ge=0)  # 0: the default policy (manual)
    mode: ReviewMode
    failed_checks: tuple[Check, ...] = ()
    opened_at: datetime


class ReviewCaseClaimed(DomainEvent):
    case_id: str
    claimed_by: str
    claimed_at: datetime


class MaterialsApproved(DomainEvent):
    case_id: str
    case_type: CaseType
    request_id: str
    decided_by: str
    decided_at: datetime


class MaterialsRejected(DomainEvent):
    case_id: str
    case_type: CaseType
    request_id: str
    reason: RejectionReason
    note: str = Field(default="", max_length=NOTE_MAX)
    decided_by: str
    decided_at: datetime


class ReviewCaseEscalated(DomainEvent):
    case_id: str
    region: str
    opened_at: datetime
    escalated_at: datetime


class ReviewCaseWithdrawn(DomainEvent):
    case_id: str
    request_id: str
    cause: WithdrawalCause
    withdrawn_at: datetime


CaseEvent = (
    ReviewCaseOpened
    | ReviewCaseClaimed
    | MaterialsApproved
    | MaterialsRejected
    | ReviewCaseEscalated
    | ReviewCaseWithdrawn
)
CASE_EVENTS: tuple[type[CaseEvent], ...] = (
    ReviewCaseOpened,
    ReviewCaseClaimed,
    MaterialsApproved,
    MaterialsRejected,
    ReviewCaseEscalated,
    ReviewCaseWithdrawn,
)


class ReviewPolicyChanged(DomainEvent):
    """Who set which policy when; version counts the changes of one policy id."""

    policy_id: str
    region_prefix: str
    case_type: CaseType
    mode: ReviewMode
    checks: tuple[Check, ...] = ()
    on_failure: OnFailure = OnFailure.MANUAL
    version: int = Field(ge=1)
    changed_by: str
    changed_at: datetime


CASE_CODEC = PydanticCodec(CASE_EVENTS)
POLICY_CODEC = PydanticCodec((ReviewPolicyChanged,))
