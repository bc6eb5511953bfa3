"""Insured person stream: registration, insured places, activation, the payment password: the
first one, changes by the old one, resets by a face check, and the lockout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.id_number import IdNumberCheckDigitError, Sex
from services.identity.domain import (
    ActivateVoucher,
    AddInsuredPlace,
    OldPasswordChecked,
    RecordPasswordAttempt,
    RegisterPerson,
    SetPaymentPassword,
    SwitchCurrentInsuredPlace,
    make_person_decider,
)
from services.identity.errors import (
    FaceCheckNotPassedError,
    FaceCheckPurposeError,
    FaceCheckRequiredError,
    FaceCheckStaleError,
    FaceCheckUsedError,
    InvalidInsuredPlaceError,
    InvalidNameError,
    OldPasswordRequiredError,
    PasswordChangedMeanwhileError,
    PasswordLockedError,
    PaymentPasswordNotSetError,
    PersonalDataErasedError,
    PersonAlreadyRegisteredError,
    PersonNotRegisteredError,
    UnknownInsuredPlaceError,
    VoucherNotActivatedError,
)
from services.identity.face_check import (
    FaceCheck,
    FaceCheckNotRequestedError,
    FaceCheckStatus,
    FacePurpose,
)
from services.identity.password import LockoutPolicy
from services.identity.password_hashing import KDF_SCHEME
from services.identity.person_events import (
    Channel,
    CurrentInsuredPlaceSwitched,
    InsuredPlaceAdded,
    PasswordProof,
    PaymentPasswordChanged,
    PaymentPasswordLocked,
    PaymentPasswordRejected,
    PaymentPasswordSet,
    PaymentPasswordVerified,
    PersonalData,
    PersonRegistered,
    VoucherActivated,
)
from services.runtime.codec import PydanticCodec
from tests.specs import DeciderSpec

person_decider = make_person_decider()
spec = DeciderSpec(person_decider)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TODAY = date(2026, 11, 25)
NAME, ID_NUMBER = "张三", "360426199101010071"

register = RegisterPerson("p-1", NAME, ID_NUMBER, "360100", TODAY)
personal = PersonalData(name=NAME, id_number=ID_NUMBER, birth_date=date(1991, 1, 1), sex=Sex.MALE)
registered = PersonRegistered(pseudonym="p-1", insured_place="360100", personal=personal)
face_ok = FaceCheck(
    check_id="fc-1",
    purpose=FacePurpose.ACTIVATION,
    subject="p-1",
    on_behalf_of=None,
    correlation_id="act-1",
    deadline=NOW + timedelta(minutes=5),
    status=FaceCheckStatus.VERIFIED,
    decided_at=NOW - timedelta(minutes=1),
)
activated = VoucherActivated(channel=Channel.WECHAT, face_check_id="fc-1")
password_set = PaymentPasswordSet(
    credential_id="c-1", kdf_scheme=KDF_SCHEME, channel=Channel.WECHAT
)
with_password = [registered, activated, password_set]


def wrong(minutes: int = 0) -> RecordPasswordAttempt:
    return RecordPasswordAttempt(matched=False, at=NOW + timedelta(minutes=minutes))


def rejections(count: int) -> list[PaymentPasswordRejected]:
    return [PaymentPasswordRejected(failed_attempts=n) for n in range(1, count + 1)]


# Registration


def test_registration_derives_birth_date_and_sex_and_keeps_them_sensitive() -> None:
    spec.given([]).when(register).then([registered])


def test_registration_normalises_a_lower_case_x() -> None:
    (event,) = person_decider.decide(replace(register, id_number="11010519491231002x"), None)
    assert isinstance(event, PersonRegistered)
    assert event.personal is not None
    assert event.personal.id_number == "11010519491231002X"


def test_registration_refuses_an_invalid_id_number_with_its_code() -> None:
    bad = replace(register, id_number="360426199101010072")
    spec.given([]).when(bad).raises(IdNumberCheckDigitError)


@pytest.mark.parametrize("name", ["", "   ", "张3", "a\x00b", "长" * 31, "*王", "王"])
def test_registration_refuses_what_is_not_a_name_by_the_published_rule(name: str) -> None:
    spec.given([]).when(replace(register, name=name)).raises(InvalidNameError)


def test_a_minority_name_with_a_middle_dot_is_accepted() -> None:
    (event,) = person_decider.decide(replace(register, name="买买提·艾力"), None)
    assert isinstance(event, PersonRegistered)


@pytest.mark.parametrize("place", ["990000", "36010", "119999", "abcdef"])
def test_registration_refuses_an_insured_place_that_is_not_a_region_code(place: str) -> None:
    spec.given([]).when(replace(register, insured_place=place)).raises(InvalidInsuredPlaceError)


def test_a_person_cannot_be_registered_twice_in_one_stream() -> None:
    spec.given([registered]).when(register).raises(PersonAlreadyRegisteredError)


def test_commands_for_an_unregistered_person_are_refused() -> None:
    spec.given([]).when(AddInsuredPlace("360100")).raises(PersonNotRegisteredError)


def test_sensitive_values_stay_out_of_reprs_and_the_published_fields() -> None:
    for text in (repr(register), repr(registered), repr(person_decider.fold([registered]))):
        assert NAME not in text
        assert ID_NUMBER not in text
    published = registered.model_dump(mode="json", exclude={"personal"})
    assert NAME not in str(published)
    assert ID_NUMBER not in str(published)


def test_an_erased_registration_still_replays() -> None:
    erased = registered.model_copy(update={"personal": None})
    codec = PydanticCodec([PersonRegistered])
    _, _, data = codec.encode(erased)
    assert data["personal"] is None
    state = person_decider.fold([erased, activated])
    assert state is not None
    assert state.personal is None


# Insured places


def test_adding_an_insured_place_records_it() -> None:
    spec.given([registered]).when(AddInsuredPlace("110105")).then(
        [InsuredPlaceAdded(insured_place="110105")]
    )


def test_adding_a_place_the_person_has_records_nothing() -> None:
    spec.given([registered]).when(AddInsuredPlace("360100")).then([])


def test_switching_to_one_of_the_persons_places_makes_it_current() -> None:
    spec.given([registered, InsuredPlaceAdded(insured_place="110105")]).when(
        SwitchCurrentInsuredPlace("110105")
    ).then([CurrentInsuredPlaceSwitched(insured_place="110105")])


def test_switching_to_a_place_the_person_does_not_have_is_refused() -> None:
    spec.given([registered]).when(SwitchCurrentInsuredPlace("110105")).raises(
        UnknownInsuredPlaceError
    )


def test_switching_to_the_current_place_records_nothing() -> None:
    spec.given([registered]).when(SwitchCurrentInsuredPlace("360100")).then([])


# Activation


def test_activation_with_a_fresh_passed_face_check_of_the_person_is_recorded() -> None:
    spec.given([registered]).when(ActivateVoucher(Channel.WECHAT, face_ok, NOW)).then([activated])


@pytest.mark.parametrize(
    "check",
    [
        replace(face_ok, status=FaceCheckStatus.FAILED),
        replace(face_ok, status=FaceCheckStatus.PENDING, decided_at=None),
        replace(face_ok, status=FaceCheckStatus.EXPIRED),
        replace(face_ok, purpose=FacePurpose.LOGIN),
        replace(face_ok, subject="p-2"),
        replace(face_ok, decided_at=NOW - timedelta(minutes=11)),
    ],
    ids=["failed", "pending", "expired", "other purpose", "other person", "stale"],
)
def test_activation_needs_a_fresh_passed_activation_check_of_the_person(check: FaceCheck) -> None:
    spec.given([registered]).when(ActivateVoucher(Channel.ALIPAY, check, NOW)).raises(
        FaceCheckRequiredError
    )


def test_one_face_check_activates_one_channel_only() -> None:
    spec.given([registered, activated]).when(ActivateVoucher(Channel.ALIPAY, face_ok, NOW)).raises(
        FaceCheckRequiredError
    )


def test_activating_an_active_channel_again_records_nothing() -> None:
    spec.given([registered, activated]).when(ActivateVoucher(Channel.WECHAT, face_ok, NOW)).then([])


# Payment password: the first one, and changing or resetting a set one


def first(credential_id: str = "c-1", channel: Channel = Channel.WECHAT) -> SetPaymentPassword:
    return SetPaymentPassword(credential_id, KDF_SCHEME, channel, None, NOW)


def replace_with(proof: OldPasswordChecked | FaceCheck, at: datetime = NOW) -> SetPaymentPassword:
    return SetPaymentPassword("c-2", KDF_SCHEME, Channel.WECHAT, proof, at)


def changed(
    proven_by: PasswordProof = PasswordProof.OLD_PASSWORD, face_check_id: str | None = None
) -> PaymentPasswordChanged:
    return PaymentPasswordChanged(
        credential_id="c-2",
        kdf_scheme=KDF_SCHEME,
        channel=Channel.WECHAT,
        proven_by=proven_by,
        face_check_id=face_check_id,
    )


right_old = OldPasswordChecked(against="c-1", matched=True)
wrong_old = OldPasswordChecked(against="c-1", matched=False)
reset_check = replace(
    face_ok, check_id="fc-9", purpose=FacePurpose.PASSWORD_RESET, correlation_id="reset-1"
)
reset = changed(PasswordProof.FACE_CHECK, "fc-9")
LOCKED_UNTIL = NOW + timedelta(hours=3)
locked = [*with_password, *rejections(5), PaymentPasswordLocked(locked_until=LOCKED_UNTIL)]


def test_the_first_password_needs_only_an_activated_voucher_and_records_no_hash() -> None:
    spec.given([registered, activated]).when(first()).then([password_set])
    assert "hash" not in PaymentPasswordSet.model_fields
    assert "hash" not in PaymentPasswordChanged.model_fields


def test_no_password_is_set_before_the_voucher_is_activated() -> None:
    spec.given([registered]).when(first()).raises(VoucherNotActivatedError)


def test_the_channel_a_client_names_is_recorded_and_decides_nothing() -> None:
    spec.given([registered, activated]).when(first(channel=Channel.ALIPAY)).then(
        [password_set.model_copy(update={"channel": Channel.ALIPAY})]
    )
    alipay = VoucherActivated(channel=Channel.ALIPAY, face_check_id="fc-2")
    spec.given([*with_password, alipay]).when(first("c-2", Channel.WECHAT)).raises(
        OldPasswordRequiredError
    )


def test_the_same_command_again_records_nothing() -> None:
    spec.given(with_password).when(first()).then([])


def test_a_set_password_is_not_replaced_with_the_access_token_alone() -> None:
    spec.given(with_password).when(first("c-2")).raises(OldPasswordRequiredError)


def test_a_set_password_changes_with_the_right_old_one_and_the_count_starts_again() -> None:
    history = [*with_password, *rejections(3)]
    spec.given(history).when(replace_with(right_old)).then([changed()])
    spec.given([*history, changed()]).when(wrong()).then(rejections(1))


def test_a_wrong_old_password_is_a_failed_attempt_and_changes_nothing() -> None:
    spec.given([*with_password, *rejections(1)]).when(replace_with(wrong_old)).then(
        rejections(2)[-1:]
    )


def test_the_5th_wrong_old_password_locks_password_use() -> None:
    spec.given([*with_password, *rejections(4)]).when(replace_with(wrong_old)).then(
        [
            PaymentPasswordRejected(failed_attempts=5),
            PaymentPasswordLocked(locked_until=LOCKED_UNTIL),
        ]
    )


@pytest.mark.parametrize("proof", [None, right_old], ids=["token alone", "old password"])
def test_while_locked_a_password_is_set_only_after_a_face_check(
    proof: OldPasswordChecked | None,
) -> None:
    command = SetPaymentPassword("c-2", KDF_SCHEME, Channel.WECHAT, proof, NOW)
    error = spec.given(locked).when(command).raises(PasswordLockedError)
    assert isinstance(error, PasswordLockedError)
    assert error.locked_until == LOCKED_UNTIL


def test_an_old_password_compared_with_a_replaced_one_proves_nothing() -> None:
    stale = OldPasswordChecked(against="c-0", matched=True)
    spec.given(with_password).when(replace_with(stale)).raises(PasswordChangedMeanwhileError)


def test_a_fresh_passed_reset_check_of_the_person_resets_and_lifts_the_lock() -> None:
    spec.given(locked).when(replace_with(reset_check)).then([reset])
    after = person_decider.fold([*locked, reset])
    assert after is not None
    assert (after.credential_id, after.locked_until, after.failed_attempts) == ("c-2", None, 0)
    spec.given([*locked, reset]).when(wrong()).then(rejections(1))


@pytest.mark.parametrize(
    ("check", "error"),
    [
        (replace(reset_check, status=FaceCheckStatus.FAILED), FaceCheckNotPassedError),
        (
            replace(reset_check, status=FaceCheckStatus.PENDING, decided_at=None),
            FaceCheckNotPassedError,
        ),
        (replace(reset_check, status=FaceCheckStatus.EXPIRED), FaceCheckNotPassedError),
        (
            replace(reset_check, decided_at=NOW - timedelta(minutes=5, seconds=1)),
            FaceCheckStaleError,
        ),
        (replace(reset_check, purpose=FacePurpose.UNBINDING), FaceCheckPurposeError),
        (replace(reset_check, purpose=FacePurpose.ACTIVATION), FaceCheckPurposeError),
        (replace(reset_check, subject="p-2"), FaceCheckNotRequestedError),
    ],
    ids=["failed", "pending", "expired", "stale", "unbinding's", "activation's", "other person's"],
)
def test_a_reset_needs_a_fresh_passed_reset_check_of_the_persons_own(
    check: FaceCheck, error: type[Exception]
) -> None:
    spec.given(with_password).when(replace_with(check)).raises(error)


def test_a_reset_check_decided_5_minutes_ago_still_proves_the_person() -> None:
    check = replace(reset_check, decided_at=NOW - timedelta(minutes=5))
    spec.given(with_password).when(replace_with(check)).then([reset])


def test_a_face_check_resets_the_password_once() -> None:
    again = SetPaymentPassword("c-3", KDF_SCHEME, Channel.WECHAT, reset_check, NOW)
    spec.given([*with_password, reset]).when(again).raises(FaceCheckUsedError)


@pytest.mark.parametrize("proof", [right_old, reset_check], ids=["old password", "face check"])
def test_nothing_is_changed_or_reset_before_a_first_password(
    proof: OldPasswordChecked | FaceCheck,
) -> None:
    spec.given([registered, activated]).when(replace_with(proof)).raises(PaymentPasswordNotSetError)


def test_a_password_cannot_be_set_for_an_erased_person() -> None:
    erased = registered.model_copy(update={"personal": None})
    spec.given([erased, activated]).when(first()).raises(PersonalDataErasedError)


# Payment password: attempts and the lockout


def test_an_attempt_before_any_password_is_set_is_refused() -> None:
    spec.given([registered]).when(wrong()).raises(PaymentPasswordNotSetError)


def test_a_matching_password_is_verified() -> None:
    spec.given(with_password).when(RecordPasswordAttempt(matched=True, at=NOW)).then(
        [PaymentPasswordVerified()]
    )


def test_a_wrong_password_is_rejected_and_counted() -> None:
    spec.given([*with_password, *rejections(2)]).when(wrong()).then(rejections(3)[-1:])


def test_the_5th_consecutive_wrong_password_locks_password_use() -> None:
    spec.given([*with_password, *rejections(4)]).when(wrong()).then(
        [
            PaymentPasswordRejected(failed_attempts=5),
            PaymentPasswordLocked(locked_until=NOW + timedelta(hours=3)),
        ]
    )


def test_a_success_resets_the_count() -> None:
    history = [*with_password, *rejections(4), PaymentPasswordVerified()]
    spec.given(history).when(wrong()).then([PaymentPasswordRejected(failed_attempts=1)])


def test_any_attempt_while_locked_is_refused_with_the_end_of_the_lock() -> None:
    error = (
        spec.given(locked)
        .when(RecordPasswordAttempt(matched=True, at=LOCKED_UNTIL - timedelta(seconds=1)))
        .raises(PasswordLockedError)
    )
    assert isinstance(error, PasswordLockedError)
    assert error.locked_until == LOCKED_UNTIL
    state = person_decider.fold(locked)
    assert state is not None
    assert state.password_locked(NOW)
    assert not state.password_locked(LOCKED_UNTIL)


def test_after_the_lock_lapses_the_count_starts_again() -> None:
    spec.given(locked).when(wrong(minutes=180)).then([PaymentPasswordRejected(failed_attempts=1)])


def test_a_reset_recorded_as_a_password_set_by_earlier_versions_still_lifts_the_lock() -> None:
    old_reset = password_set.model_copy(update={"credential_id": "c-2"})
    spec.given([*locked, old_reset]).when(wrong()).then(rejections(1))


def test_the_lockout_policy_is_configurable() -> None:
    strict = DeciderSpec(make_person_decider(LockoutPolicy(max_failures=2, lock_for=timedelta(1))))
    strict.given([*with_password, *rejections(1)]).when(wrong()).then(
        [
            PaymentPasswordRejected(failed_attempts=2),
            PaymentPasswordLocked(locked_until=NOW + timedelta(days=1)),
        ]
    )
