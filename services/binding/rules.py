"""Binding rules as data: which relations each kind accepts, its limit, what each method needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import assert_never

from contracts.age import age_on
from contracts.vocabulary import BindingKind, Relation
from services.binding.errors import (
    BindingError,
    BirthCertificateTooOldError,
    ProxyWithoutIdTooOldError,
)

# 年满16周岁: a member aged 16 or over must pass a face check themselves to be bound
# (DOMAIN.md section 2, decision: on the 16th birthday itself the member is 16). Binding's rule,
# not published language: identity checks whichever face a request names, at any age.
FACE_CHECK_AGE = 16


class Method(StrEnum):
    ID_NUMBER = "id_number"  # 使用身份证号绑定: materials, review
    BIRTH_CERTIFICATE = "birth_certificate"  # 使用出生医学证明绑定: the mother's face
    PROXY_WITH_ID = "proxy_with_id"  # 已办理身份证人员绑定: the member's face
    PROXY_WITHOUT_ID = "proxy_without_id"  # 未办理身份证人员绑定: commitment letter only


class FaceWho(StrEnum):
    """Whose face check a binding waits for (the values of the contract's `face_check.who`)."""

    NONE = "none"
    MEMBER = "member"
    MOTHER = "mother"


class FaceRule(StrEnum):
    NONE = "none"
    MEMBER = "member"
    MEMBER_FROM_FACE_CHECK_AGE = "member_from_face_check_age"  # 年满16周岁 shows their own face
    MOTHER = "mother"


@dataclass(frozen=True)
class KindRule:
    relations: frozenset[Relation]
    max_members: int  # active or pending members per holder
    methods: frozenset[Method]
    needs_personal_account: bool = False  # the holder's employee-insurance personal account
    # Province codes (first two digits of the insured place) the member must be insured in.
    member_provinces: frozenset[str] | None = None


@dataclass(frozen=True)
class MethodRule:
    review: bool  # materials go to a reviewer and wait for MaterialsApproved
    face: FaceRule
    # A member aged 16 or over is refused with this error (they must show their own face).
    too_old: type[BindingError] | None = None
    needs_commitment: bool = False  # the holder ticks 我已阅读并同意 the commitment letter
    needs_mother: bool = False


_FAMILY = frozenset(Relation) - {Relation.NON_RELATIVE}
_HOUSEHOLD_METHODS = frozenset({Method.ID_NUMBER, Method.BIRTH_CERTIFICATE})

KINDS: dict[BindingKind, KindRule] = {
    # 001/003: at most 5 members; any family relation the app lists.
    BindingKind.FAMILY_ACCOUNT: KindRule(_FAMILY, 5, _HOUSEHOLD_METHODS),
    # 004: only spouse, children and parents share the holder's personal account.
    BindingKind.MUTUAL_AID: KindRule(
        frozenset({Relation.SPOUSE, Relation.CHILD, Relation.PARENT}),
        5,
        _HOUSEHOLD_METHODS,
        needs_personal_account=True,
    ),
    # 004: relatives and non-relatives, insured in Jiangxi (36).
    BindingKind.PROXY: KindRule(
        frozenset(Relation),
        5,
        frozenset({Method.PROXY_WITH_ID, Method.PROXY_WITHOUT_ID}),
        member_provinces=frozenset({"36"}),
    ),
}

METHODS: dict[Method, MethodRule] = {
    Method.ID_NUMBER: MethodRule(review=True, face=FaceRule.MEMBER_FROM_FACE_CHECK_AGE),
    # A birth certificate binds a newborn; a member aged 16+ must show their own face instead.
    Method.BIRTH_CERTIFICATE: MethodRule(
        review=False, face=FaceRule.MOTHER, too_old=BirthCertificateTooOldError, needs_mother=True
    ),
    Method.PROXY_WITH_ID: MethodRule(review=False, face=FaceRule.MEMBER),
    Method.PROXY_WITHOUT_ID: MethodRule(
        review=False, face=FaceRule.NONE, too_old=ProxyWithoutIdTooOldError, needs_commitment=True
    ),
}


def face_check_needed(method: Method, member_birth: date, today: date) -> FaceWho:
    """Whose face the binding waits for; the 16th birthday itself counts as 16."""
    match METHODS[method].face:
        case FaceRule.NONE:
            return FaceWho.NONE
        case FaceRule.MEMBER:
            return FaceWho.MEMBER
        case FaceRule.MOTHER:
            return FaceWho.MOTHER
        case FaceRule.MEMBER_FROM_FACE_CHECK_AGE:
            old_enough = age_on(member_birth, today) >= FACE_CHECK_AGE
            return FaceWho.MEMBER if old_enough else FaceWho.NONE
        case _:
            assert_never(METHODS[method].face)
