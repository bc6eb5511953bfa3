"""Face check stream: one request, then exactly one outcome; late and repeated answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.identity.face_check import (
    ExpireFaceCheck,
    FaceCheckConflictError,
    FaceCheckDeadlineError,
    FaceCheckExpired,
    FaceCheckNotRequestedError,
    FaceCheckOnBehalfError,
    FaceCheckRequested,
    FaceCheckStatus,
    FaceFailureReason,
    FacePurpose,
    FaceVerificationFailed,
    FaceVerified,
    RecordFaceVerificationFailed,
    RecordFaceVerified,
    RequestFaceCheck,
    face_check_decider,
)
from tests.specs import DeciderSpec

spec = DeciderSpec(face_check_decider)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(minutes=5)

request = RequestFaceCheck(
    check_id="fc-1",
    purpose=FacePurpose.MEMBER_BINDING,
    subject="p-member",
    on_behalf_of="p-holder",
    correlation_id="bind-1",
    deadline=DEADLINE,
    at=NOW,
)
requested = FaceCheckRequested(
    check_id="fc-1",
    purpose=FacePurpose.MEMBER_BINDING,
    subject="p-member",
    on_behalf_of="p-holder",
    correlation_id="bind-1",
    requested_at=NOW,
    deadline=DEADLINE,
)
verified = FaceVerified(check_id="fc-1", verified_at=NOW + timedelta(minutes=1))
expired = FaceCheckExpired(check_id="fc-1", deadline=DEADLINE)


def test_a_request_records_who_is_checked_for_whom_and_until_when() -> None:
    spec.given([]).when(request).then([requested])


def test_the_same_request_again_records_nothing() -> None:
    retry = replace(request, at=NOW + timedelta(seconds=30))
    spec.given([requested]).when(retry).then([])


def test_another_request_under_the_same_id_is_a_conflict() -> None:
    other = replace(request, subject="p-other")
    spec.given([requested]).when(other).raises(FaceCheckConflictError)


def test_a_deadline_not_after_the_request_is_refused() -> None:
    spec.given([]).when(replace(request, deadline=NOW)).raises(FaceCheckDeadlineError)


def test_a_deadline_beyond_the_purposes_longest_wait_is_refused() -> None:
    login = replace(request, purpose=FacePurpose.LOGIN, on_behalf_of=None)
    too_late = replace(login, deadline=NOW + timedelta(minutes=11))  # a login waits 10 minutes
    spec.given([]).when(replace(login, deadline=NOW + timedelta(minutes=10))).then(
        [
            requested.model_copy(
                update={
                    "purpose": FacePurpose.LOGIN,
                    "on_behalf_of": None,
                    "deadline": NOW + timedelta(minutes=10),
                }
            )
        ]
    )
    spec.given([]).when(too_late).raises(FaceCheckDeadlineError)


def test_a_check_for_someone_else_must_name_the_requester() -> None:
    anonymous = replace(request, on_behalf_of=None)
    spec.given([]).when(anonymous).raises(FaceCheckOnBehalfError)


def test_the_requester_cannot_be_the_subject() -> None:
    oneself = replace(request, on_behalf_of="p-member")
    spec.given([]).when(oneself).raises(FaceCheckOnBehalfError)


def test_a_mother_binding_her_own_newborn_is_checked_at_her_own_request() -> None:
    mother = replace(
        request, purpose=FacePurpose.NEWBORN_MOTHER, subject="p-mother", on_behalf_of="p-mother"
    )
    expected = requested.model_copy(
        update={
            "purpose": FacePurpose.NEWBORN_MOTHER,
            "subject": "p-mother",
            "on_behalf_of": "p-mother",
        }
    )
    spec.given([]).when(mother).then([expected])


def test_an_activation_check_is_for_oneself_only() -> None:
    activation = replace(request, purpose=FacePurpose.ACTIVATION)
    spec.given([]).when(activation).raises(FaceCheckOnBehalfError)


def test_a_match_before_the_deadline_is_verified() -> None:
    spec.given([requested]).when(RecordFaceVerified(at=NOW + timedelta(minutes=1))).then([verified])


def test_a_failure_before_the_deadline_records_the_reason() -> None:
    at = NOW + timedelta(minutes=2)
    spec.given([requested]).when(RecordFaceVerificationFailed(FaceFailureReason.NOT_LIVE, at)).then(
        [FaceVerificationFailed(check_id="fc-1", reason=FaceFailureReason.NOT_LIVE, failed_at=at)]
    )


def test_an_answer_at_or_after_the_deadline_records_the_expiry() -> None:
    spec.given([requested]).when(RecordFaceVerified(at=DEADLINE)).then([expired])


def test_expiry_before_the_deadline_records_nothing() -> None:
    spec.given([requested]).when(ExpireFaceCheck(at=DEADLINE - timedelta(seconds=1))).then([])


def test_expiry_once_the_deadline_has_passed_is_recorded() -> None:
    spec.given([requested]).when(ExpireFaceCheck(at=DEADLINE)).then([expired])


@pytest.mark.parametrize(
    "second",
    [
        RecordFaceVerified(at=NOW + timedelta(minutes=2)),
        RecordFaceVerificationFailed(FaceFailureReason.NO_MATCH, NOW + timedelta(minutes=2)),
        ExpireFaceCheck(at=DEADLINE + timedelta(hours=1)),
    ],
)
def test_a_second_outcome_is_ignored(
    second: RecordFaceVerified | RecordFaceVerificationFailed | ExpireFaceCheck,
) -> None:
    spec.given([requested, verified]).when(second).then([])
    spec.given([requested, expired]).when(second).then([])


def test_an_outcome_for_a_check_never_requested_is_refused() -> None:
    spec.given([]).when(RecordFaceVerified(at=NOW)).raises(FaceCheckNotRequestedError)


def test_the_state_carries_the_outcome_for_other_streams_to_check() -> None:
    check = face_check_decider.fold([requested, verified])
    assert check is not None
    assert check.verified
    assert (check.status, check.decided_at) == (FaceCheckStatus.VERIFIED, verified.verified_at)
