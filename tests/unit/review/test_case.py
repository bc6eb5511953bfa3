"""Review case stream: opened under the policy in force, decided once by a reviewer whose
regions cover it, escalated when it waits too long, withdrawn when the request ends."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.review.commands import ApproveCase, ClaimCase, EscalateCase, RejectCase, WithdrawCase
from services.review.domain import CaseStatus, case_decider, case_id_for
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
    CaseType,
    Check,
    MaterialsApproved,
    MaterialsRejected,
    OnFailure,
    RejectionReason,
    ReviewCaseClaimed,
    ReviewCaseEscalated,
    ReviewCaseWithdrawn,
    ReviewMode,
    WithdrawalCause,
)
from services.review.policy import DEFAULT_CHECKS, Policy
from services.runtime.principal import Principal, Role
from tests.specs import DeciderSpec
from tests.unit.review.builders import (
    BEIJING,
    CASE_ID,
    JIANGXI,
    MATERIALS,
    NANCHANG,
    NANCHANG_2,
    NOW,
    REQUEST,
    open_case,
    opened,
)

spec = DeciderSpec(case_decider)
LATER = NOW + timedelta(minutes=30)
BINDING = CaseType.MEMBER_BINDING
AUTO = Policy("36", BINDING, ReviewMode.AUTO_APPROVE, version=3)
RULES = Policy("3601", BINDING, ReviewMode.RULES, DEFAULT_CHECKS[BINDING], version=2)
RULES_REJECT = Policy(
    "3601", BINDING, ReviewMode.RULES, DEFAULT_CHECKS[BINDING], OnFailure.REJECT, version=4
)


def approved(by: str = "rev-nc", at: datetime = LATER) -> MaterialsApproved:
    return MaterialsApproved.model_validate(
        {
            "case_id": CASE_ID,
            "case_type": BINDING,
            "request_id": REQUEST,
            "decided_by": by,
            "decided_at": at,
        }
    )


def rejected(
    reason: RejectionReason, note: str = "", by: str = "rev-nc", at: datetime = LATER
) -> MaterialsRejected:
    return MaterialsRejected(
        case_id=CASE_ID,
        case_type=BINDING,
        request_id=REQUEST,
        reason=reason,
        note=note,
        decided_by=by,
        decided_at=at,
    )


claimed = ReviewCaseClaimed(case_id=CASE_ID, claimed_by="rev-nc", claimed_at=LATER)


# ---------------------------------------------------------------------------- opening


def test_the_case_id_derives_from_the_request_so_a_redelivery_opens_nothing_new() -> None:
    assert case_id_for(BINDING, REQUEST) == CASE_ID
    assert case_id_for(CaseType.FILING, REQUEST) != CASE_ID
    spec.given([]).when(open_case()).then([opened()])
    spec.given([opened()]).when(open_case(at=LATER)).then([])


def test_a_manual_case_records_the_default_policy_and_waits() -> None:
    (event,) = case_decider.decide(open_case(), None)
    assert (event.policy_id, event.policy_version, event.mode) == (  # type: ignore[union-attr]
        "*/member_binding",
        0,
        ReviewMode.MANUAL,
    )


def test_an_auto_approve_region_approves_on_opening_in_the_policys_name() -> None:
    spec.given([]).when(open_case(AUTO)).then(
        [opened(AUTO), approved("policy:36/member_binding/v3", NOW)]
    )


def test_rules_approve_a_case_whose_checks_all_pass() -> None:
    spec.given([]).when(open_case(RULES)).then(
        [opened(RULES), approved("policy:3601/member_binding/v2", NOW)]
    )


def test_rules_leave_a_failed_case_to_a_reviewer_with_the_failed_checks() -> None:
    spec.given([]).when(open_case(RULES, materials=MATERIALS[:3])).then(
        [opened(RULES, materials=MATERIALS[:3], failed_checks=(Check.MATERIALS_PRESENT,))]
    )


def test_rules_that_reject_give_the_first_failed_checks_reason() -> None:
    spec.given([]).when(open_case(RULES_REJECT, materials=MATERIALS[:3])).then(
        [
            opened(RULES_REJECT, materials=MATERIALS[:3], failed_checks=(Check.MATERIALS_PRESENT,)),
            rejected(RejectionReason.MATERIALS_MISSING, by="policy:3601/member_binding/v4", at=NOW),
        ]
    )


def test_a_case_needs_a_six_digit_region() -> None:
    spec.given([]).when(open_case(region="3601")).raises(CaseRegionError)


# ---------------------------------------------------------------------------- decisions


def test_a_reviewer_of_the_region_approves() -> None:
    spec.given([opened()]).when(ApproveCase(NANCHANG, LATER)).then([approved()])


def test_a_provincial_reviewer_covers_the_district() -> None:
    spec.given([opened()]).when(ApproveCase(JIANGXI, LATER)).then([approved("rev-jx")])


def test_a_reviewer_rejects_with_a_reason_from_the_list_and_a_note() -> None:
    command = RejectCase(NANCHANG, RejectionReason.MATERIALS_UNCLEAR, "户口本照片模糊", LATER)
    spec.given([opened()]).when(command).then(
        [rejected(RejectionReason.MATERIALS_UNCLEAR, "户口本照片模糊")]
    )


@pytest.mark.parametrize(
    "command",
    [
        ApproveCase(BEIJING, LATER),
        ClaimCase(BEIJING, LATER),
        RejectCase(BEIJING, RejectionReason.OTHER, "", LATER),
        ApproveCase(Principal("ops-1", Role.OPERATOR), LATER),
    ],
    ids=["approve", "claim", "reject", "operator"],
)
def test_a_case_outside_the_reviewers_regions_reads_as_unknown(command: object) -> None:
    spec.given([opened()]).when(command).raises(CaseNotFoundError)  # type: ignore[arg-type]


def test_a_case_that_never_opened_is_unknown() -> None:
    spec.given([]).when(ApproveCase(NANCHANG, LATER)).raises(CaseNotFoundError)


def test_a_decided_case_cannot_be_decided_again_by_anyone() -> None:
    spec.given([opened(), approved()]).when(ApproveCase(NANCHANG_2, LATER)).raises(CaseDecidedError)
    reject = RejectCase(NANCHANG, RejectionReason.OTHER, "", LATER)
    spec.given([opened(), approved()]).when(reject).raises(CaseDecidedError)


def test_the_second_of_two_racing_reviewers_decides_again_and_gets_a_conflict() -> None:
    # Both read the open case; the first append wins, the second reloads and decides again.
    first = case_decider.decide(ApproveCase(NANCHANG, LATER), case_decider.fold([opened()]))
    spec.given([opened(), *first]).when(
        RejectCase(NANCHANG_2, RejectionReason.OTHER, "", LATER)
    ).raises(CaseDecidedError)


def test_an_automatically_approved_case_cannot_be_decided_by_a_reviewer() -> None:
    history = case_decider.decide(open_case(AUTO), None)
    spec.given(history).when(ApproveCase(NANCHANG, LATER)).raises(CaseDecidedError)


def test_a_withdrawn_case_cannot_be_decided() -> None:
    withdrawn = ReviewCaseWithdrawn(
        case_id=CASE_ID,
        request_id=REQUEST,
        cause=WithdrawalCause.REQUEST_EXPIRED,
        withdrawn_at=LATER,
    )
    spec.given([opened(), withdrawn]).when(ApproveCase(NANCHANG, LATER)).raises(CaseWithdrawnError)


def test_a_note_is_at_most_200_characters() -> None:
    ok = RejectCase(NANCHANG, RejectionReason.OTHER, "字" * 200, LATER)
    spec.given([opened()]).when(ok).then([rejected(RejectionReason.OTHER, "字" * 200)])
    long = RejectCase(NANCHANG, RejectionReason.OTHER, "字" * 201, LATER)
    spec.given([opened()]).when(long).raises(NoteTooLongError)


@pytest.mark.parametrize(
    "note",
    [
        "号码360426199101010048",
        "证件36042619910101004X",
        "电话13800138000",
        "".join(chr(0xFF10 + int(d)) for d in "13800138000"),  # full-width
    ],
)
def test_a_note_holding_an_id_or_phone_number_is_refused(note: str) -> None:
    command = RejectCase(NANCHANG, RejectionReason.OTHER, note, LATER)
    spec.given([opened()]).when(command).raises(NotePersonalDataError)


# ---------------------------------------------------------------------------- claims


def test_a_reviewer_claims_an_open_case_once() -> None:
    spec.given([opened()]).when(ClaimCase(NANCHANG, LATER)).then([claimed])
    spec.given([opened(), claimed]).when(ClaimCase(NANCHANG, LATER)).then([])


def test_a_claimed_case_is_neither_claimed_nor_decided_by_another_reviewer() -> None:
    spec.given([opened(), claimed]).when(ClaimCase(NANCHANG_2, LATER)).raises(CaseClaimedError)
    spec.given([opened(), claimed]).when(ApproveCase(NANCHANG_2, LATER)).raises(CaseClaimedError)
    spec.given([opened(), claimed]).when(ApproveCase(NANCHANG, LATER)).then([approved()])


def test_a_decided_case_cannot_be_claimed() -> None:
    spec.given([opened(), approved()]).when(ClaimCase(NANCHANG, LATER)).raises(CaseDecidedError)


# ---------------------------------------------------------------------------- escalation


def test_a_case_open_longer_than_the_limit_is_escalated_once() -> None:
    after = timedelta(hours=48)
    escalated = ReviewCaseEscalated(
        case_id=CASE_ID, region="360102", opened_at=NOW, escalated_at=NOW + after
    )
    spec.given([opened()]).when(EscalateCase(after, NOW + after - timedelta(seconds=1))).then([])
    spec.given([opened()]).when(EscalateCase(after, NOW + after)).then([escalated])
    spec.given([opened(), escalated]).when(EscalateCase(after, NOW + 2 * after)).then([])


def test_an_escalated_case_can_still_be_decided() -> None:
    escalated = ReviewCaseEscalated(
        case_id=CASE_ID, region="360102", opened_at=NOW, escalated_at=LATER
    )
    spec.given([opened(), escalated]).when(ApproveCase(NANCHANG, LATER)).then([approved()])


def test_decided_or_unknown_cases_are_not_escalated() -> None:
    after = timedelta(hours=1)
    spec.given([opened(), approved()]).when(EscalateCase(after, NOW + 2 * after)).then([])
    spec.given([]).when(EscalateCase(after, NOW)).then([])


# ---------------------------------------------------------------------------- withdrawal


def test_an_open_case_is_withdrawn_when_its_request_ends() -> None:
    command = WithdrawCase(WithdrawalCause.REQUEST_REJECTED, LATER)
    spec.given([opened(), claimed]).when(command).then(
        [
            ReviewCaseWithdrawn(
                case_id=CASE_ID,
                request_id=REQUEST,
                cause=WithdrawalCause.REQUEST_REJECTED,
                withdrawn_at=LATER,
            )
        ]
    )
    state = case_decider.fold(
        [opened(), *case_decider.decide(command, case_decider.fold([opened()]))]
    )
    assert state is not None
    assert state.status is CaseStatus.WITHDRAWN


def test_a_late_withdrawal_of_a_decided_or_unknown_case_records_nothing() -> None:
    command = WithdrawCase(WithdrawalCause.REQUEST_EXPIRED, LATER)
    spec.given([opened(), approved()]).when(command).then([])
    spec.given([]).when(command).then([])
    withdrawn = case_decider.decide(command, case_decider.fold([opened()]))
    spec.given([opened(), *withdrawn]).when(command).then([])
