"""Shared test data for review's specs: a binding's materials, reviewers, an opened case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.vocabulary import BindingKind, MaterialRef, MaterialRole, Relation
from services.review.commands import NewCase, OpenCase
from services.review.domain import case_id_for
from services.review.events import CaseType, ReviewCaseOpened, ReviewMode
from services.review.policy import Policy, default_policy
from services.runtime.principal import Principal, Role

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
REGION = "360102"  # a district of Nanchang, Jiangxi
REQUEST = "req-1"
CASE_ID = case_id_for(CaseType.MEMBER_BINDING, REQUEST)
NANCHANG = Principal("rev-nc", Role.REVIEWER, ("360100",))
NANCHANG_2 = Principal("rev-nc-2", Role.REVIEWER, ("360100",))
JIANGXI = Principal("rev-jx", Role.REVIEWER, ("360000",))
BEIJING = Principal("rev-bj", Role.REVIEWER, ("110000",))


def material(role: MaterialRole, content_type: str, digit: str = "a") -> MaterialRef:
    return MaterialRef.model_validate(
        {"role": role, "sha256": digit * 64, "content_type": content_type}
    )


MATERIALS = (
    material(MaterialRole.COMMITMENT_LETTER, "application/pdf", "a"),
    material(MaterialRole.SIGNATURE, "image/png", "b"),
    material(MaterialRole.HOLDER_HOUSEHOLD, "image/jpeg", "c"),
    material(MaterialRole.MEMBER_HOUSEHOLD, "image/jpeg", "d"),
)


def open_case(policy: Policy | None = None, at: datetime = NOW, **over: Any) -> OpenCase:
    fields: dict[str, Any] = {
        "case_type": CaseType.MEMBER_BINDING,
        "request_id": REQUEST,
        "region": REGION,
        "holder": "p_holder",
        "member": "p_member",
        "kind": BindingKind.FAMILY_ACCOUNT,
        "relation": Relation.PARENT,
        "materials": MATERIALS,
    } | over
    return OpenCase(NewCase(**fields), policy or default_policy(CaseType.MEMBER_BINDING), at)


def opened(policy: Policy | None = None, **over: Any) -> ReviewCaseOpened:
    applied = policy or default_policy(CaseType.MEMBER_BINDING)
    fields: dict[str, Any] = {
        "case_id": CASE_ID,
        "case_type": CaseType.MEMBER_BINDING,
        "request_id": REQUEST,
        "region": REGION,
        "holder": "p_holder",
        "member": "p_member",
        "kind": BindingKind.FAMILY_ACCOUNT,
        "relation": Relation.PARENT,
        "materials": MATERIALS,
        "policy_id": applied.policy_id,
        "policy_version": applied.version,
        "mode": ReviewMode(applied.mode),
        "opened_at": NOW,
    } | over
    return ReviewCaseOpened(**fields)
