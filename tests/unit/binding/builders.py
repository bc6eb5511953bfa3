"""Commands and events of the holder's binding stream, for the specs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contracts.vocabulary import BindingKind, MaterialRef, MaterialRole, Relation
from services.binding.commands import RequestMemberBinding
from services.binding.events import (
    BindingMaterialsSubmitted,
    BindingTermsRecorded,
    CommitmentLetterSigned,
    FaceCheckNeed,
    MemberBindRequested,
)
from services.binding.rules import FaceWho, Method

TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in China
DEADLINE = NOW + timedelta(days=7)
HOLDER = "p-holder"
ADULT = date(1956, 3, 1)  # 70
CHILD = date(2016, 6, 1)  # 10
JIANGXI = "360102"


def request(member: str = "p-father", request_id: str = "", **changes: Any) -> RequestMemberBinding:
    """By ID number, for an adult parent's family account, unless changed."""
    command = RequestMemberBinding(
        request_id=request_id or f"r-{member}",
        holder=HOLDER,
        member=member,
        member_birth_date=ADULT,
        member_insured_place=JIANGXI,
        relation=Relation.PARENT,
        kind=BindingKind.FAMILY_ACCOUNT,
        method=Method.ID_NUMBER,
        today=TODAY,
        at=NOW,
        deadline=DEADLINE,
    )
    return replace(command, **changes)


def requested(
    command: RequestMemberBinding, who: FaceWho, subject: str | None = None
) -> list[MemberBindRequested | BindingTermsRecorded]:
    """The two events a request records, waiting for `who`'s face (the member's by default)."""
    if who is FaceWho.MEMBER and subject is None:
        subject = command.member
    return [
        MemberBindRequested(
            request_id=command.request_id,
            holder=command.holder,
            member=command.member,
            kind=command.kind,
            method=command.method,
            face_check=FaceCheckNeed(who=who, subject=subject),
            deadline=command.deadline,
        ),
        BindingTermsRecorded(
            request_id=command.request_id,
            relation=command.relation,
            needs_review=command.method is Method.ID_NUMBER,
        ),
    ]


def material(role: MaterialRole, digit: str = "a") -> MaterialRef:
    content_type = "application/pdf" if role is MaterialRole.COMMITMENT_LETTER else "image/png"
    return MaterialRef(role=role, sha256=digit * 64, content_type=content_type)


LETTER = material(MaterialRole.COMMITMENT_LETTER, "1")
SIGNATURE = material(MaterialRole.SIGNATURE, "2")
HOLDER_PAGE = material(MaterialRole.HOLDER_HOUSEHOLD, "3")
MEMBER_PAGE = material(MaterialRole.MEMBER_HOUSEHOLD, "4")


def submitted(
    command: RequestMemberBinding,
) -> tuple[CommitmentLetterSigned, BindingMaterialsSubmitted]:
    """The letter signed and the household pages submitted: the case goes to a reviewer."""
    return (
        CommitmentLetterSigned(request_id=command.request_id, letter=LETTER, signature=SIGNATURE),
        BindingMaterialsSubmitted(
            request_id=command.request_id,
            holder=command.holder,
            member=command.member,
            kind=command.kind,
            relation=command.relation,
            region=JIANGXI,
            materials=(LETTER, SIGNATURE, HOLDER_PAGE, MEMBER_PAGE),
        ),
    )
