"""What `qinqing.review.v1` carries that other services act on: reviewers' decisions.

Key and subject: the review case's stream (`case-<case_id>`). The review service may publish
more (cases opened, claimed, escalated, withdrawn; policy changes); these two are what the
requesting services consume, matched by `request_id` to their own request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import topic

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


EVENTS: dict[str, type[BaseModel]] = {m.__name__: m for m in (MaterialsApproved, MaterialsRejected)}
