"""Binding use cases on the in-memory store, blob store and tables, with a fixed clock:
resolving members, retries, the commitment letter, materials, outcomes, expiry, revocation."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from contracts.id_number import IdNumberError, check_char
from contracts.vocabulary import BindingKind, Relation
from services.binding.domain import Status, holder_stream
from services.binding.errors import (
    AlreadyBoundError,
    BirthDateInFutureError,
    CommitmentNotSignedError,
    HolderUnknownError,
    MaterialNotUploadedError,
    MaterialsNotNeededError,
    MaterialTypeError,
    MethodNotAllowedError,
    NotBoundError,
    PersonalAccountRequiredError,
    PersonNotFoundError,
    RequestNotFoundError,
    RevocationNotConfirmedError,
    SelfBindingError,
)
from services.binding.events import (
    BindingEvent,
    BindingMaterialsSubmitted,
    BindingRevoked,
    BindRequestExpired,
    Confirmation,
    MemberBound,
    binding_codec,
)
from services.binding.forms import BindingForm
from services.binding.handlers import Accepted, BindingDeps, BindingHandlers
from services.binding.rules import FaceWho, Method
from services.binding.tables import InMemoryBindingTables, RequestRow
from services.runtime.auth import ConfirmationMethod, issue_confirmation
from services.runtime.blobs import InMemoryBlobStore
from services.runtime.decider import CommandContext
from services.runtime.memory import InMemoryEventStore
from services.runtime.pii import lookup_hash
from tests.contract.blob_store import JPEG, PDF, PNG
from tests.unit.binding.builders import ADULT, CHILD, DEADLINE, HOLDER, JIANGXI, NOW

LOOKUP_KEY = b"L" * 32
TOKEN_SECRET = "t" * 32
OTHER_HOLDER = "p-other-holder"
FATHER, SON, MOTHER = "p-father", "p-son", "p-mother"
NEWBORN = date(2026, 10, 1)
CERTIFICATE = "Q360121000123"


def id_number(birth: date, serial: str = "001") -> str:
    """A valid resident ID number: 360121 is a county code in every birth year."""
    body = f"360121{birth:%Y%m%d}{serial}"
    return body + check_char(body)


HOLDER_ID = id_number(date(1988, 4, 2), "011")
FATHER_ID = id_number(ADULT, "013")
SON_ID = id_number(CHILD, "015")
MOTHER_ID = id_number(date(1995, 7, 9), "022")
UNKNOWN_ID = id_number(date(1970, 1, 1), "017")


def ctx(now: datetime = NOW) -> CommandContext:
    return CommandContext(uuid4(), now, f"corr-{uuid4().hex[:8]}", "test")


def by_id(number: str = FATHER_ID, **changes: Any) -> BindingForm:
    """The father, by ID number, for the family account, unless changed."""
    fields: dict[str, Any] = {
        "kind": BindingKind.FAMILY_ACCOUNT,
        "method": Method.ID_NUMBER,
        "relation": Relation.PARENT,
        "member_name": "张三丰",
        "member_id_number": number,
    }
    return BindingForm(**(fields | changes))


def by_proxy(number: str = FATHER_ID) -> BindingForm:
    """Proxy with an ID card: no materials, the member's face only."""
    return by_id(number, kind=BindingKind.PROXY, method=Method.PROXY_WITH_ID)


def by_birth_certificate(certificate: str = CERTIFICATE) -> BindingForm:
    return BindingForm(
        kind=BindingKind.FAMILY_ACCOUNT,
        method=Method.BIRTH_CERTIFICATE,
        relation=Relation.CHILD,
        member_name="张小宝",
        member_birth_date=NEWBORN,
        mother_name="李梅",
        mother_id_number=MOTHER_ID,
        birth_certificate_number=certificate,
    )


class World:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.tables = InMemoryBindingTables()
        self.blobs = InMemoryBlobStore()
        self.handlers = BindingHandlers(
            BindingDeps(self.store, self.tables, self.blobs, LOOKUP_KEY, TOKEN_SECRET)
        )

    async def person(self, pseudonym: str, number: str, place: str = JIANGXI) -> None:
        """As identity's PersonRegistered puts them in the directory."""
        await self.tables.person_registered(None, pseudonym, lookup_hash(LOOKUP_KEY, number), place)

    async def events(self, holder: str = HOLDER) -> list[BindingEvent]:
        recorded = await self.store.read_stream(holder_stream(holder))
        return [binding_codec.decode(r) for r in recorded]

    async def event_count(self) -> int:
        return len([e async for e in self.store.read_all()])

    async def ask(self, form: BindingForm, holder: str = HOLDER) -> Accepted:
        return await self.handlers.request_binding(holder, form, ctx())

    async def signed(self, request_id: str) -> None:
        signature = await self.blobs.put(PNG)
        await self.handlers.sign_commitment_letter(HOLDER, request_id, signature.sha256, ctx())

    async def submitted(self, request_id: str, holder_page: bytes = JPEG) -> None:
        await self.signed(request_id)
        pages = await self.blobs.put(holder_page), await self.blobs.put(PDF)
        await self.handlers.submit_materials(
            HOLDER, request_id, pages[0].sha256, pages[1].sha256, ctx()
        )

    async def bound_by_proxy(self) -> str:
        accepted = await self.ask(by_proxy())
        await self.handlers.record_face_outcome(accepted.request_id, True, "", ctx())
        return accepted.request_id


@pytest.fixture
async def world() -> World:
    world = World()
    await world.person(HOLDER, HOLDER_ID, "360102")
    await world.person(FATHER, FATHER_ID)
    await world.person(SON, SON_ID)
    await world.person(MOTHER, MOTHER_ID)
    return world


# ---------------------------------------------------------------------------- requests


async def test_a_request_by_id_number_finds_the_member_by_the_keyed_hash_and_says_what_it_waits_for(
    world: World,
) -> None:
    accepted = await world.ask(by_id(FATHER_ID))
    assert accepted.request.member == FATHER
    assert accepted.request.status is Status.PENDING
    assert accepted.request.face.who is FaceWho.MEMBER  # 70 years old
    assert accepted.request.waiting_for == {"commitment_letter", "materials", "review", "face"}
    assert accepted.request.deadline == DEADLINE
    row = await world.tables.request(accepted.request_id)
    assert row == RequestRow(
        accepted.request_id, HOLDER, "张**", "360***********" + FATHER_ID[-4:], NOW.date(), DEADLINE
    )


async def test_a_member_under_16_by_id_number_waits_for_no_face_check(world: World) -> None:
    accepted = await world.ask(by_id(SON_ID, relation=Relation.CHILD))
    assert accepted.request.member == SON
    assert accepted.request.waiting_for == {"commitment_letter", "materials", "review"}


async def test_a_member_nobody_registered_is_refused_on_the_member_id_number_field(
    world: World,
) -> None:
    with pytest.raises(PersonNotFoundError) as refused:
        await world.ask(by_id(UNKNOWN_ID))
    assert refused.value.input_field == "member_id_number"
    assert world.tables.requests == {}


async def test_a_holder_the_directory_does_not_know_yet_is_refused(world: World) -> None:
    with pytest.raises(HolderUnknownError):
        await world.ask(by_id(FATHER_ID), holder="p-not-registered-yet")
    assert world.tables.requests == {}


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(FATHER_ID[:-1], id="too-short"),
        pytest.param(FATHER_ID[:-1] + ("0" if FATHER_ID[-1] != "0" else "1"), id="check-digit"),
        pytest.param("36012119560301001A", id="format"),
    ],
)
async def test_a_malformed_member_id_number_is_refused_on_the_forms_field(
    world: World, number: str
) -> None:
    with pytest.raises(IdNumberError) as refused:
        await world.ask(by_id(number))
    assert refused.value.input_field == "member_id_number"


async def test_a_malformed_mother_id_number_is_refused_on_the_mothers_field(world: World) -> None:
    form = by_birth_certificate().model_copy(update={"mother_id_number": MOTHER_ID[:-2]})
    with pytest.raises(IdNumberError) as refused:
        await world.ask(form)
    assert refused.value.input_field == "mother_id_number"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        pytest.param(by_id(HOLDER_ID, relation=Relation.SPOUSE), SelfBindingError, id="self"),
        pytest.param(by_id(kind=BindingKind.PROXY), MethodNotAllowedError, id="method"),
    ],
)
async def test_a_request_the_domain_refuses_leaves_no_request_row_behind(
    world: World, form: BindingForm, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await world.ask(form)
    assert world.tables.requests == {}
    assert await world.events() == []


async def test_mutual_aid_is_open_only_to_a_holder_with_a_personal_account(
    world: World,
) -> None:
    mutual_aid = by_id(kind=BindingKind.MUTUAL_AID)
    with pytest.raises(PersonalAccountRequiredError):
        await world.ask(mutual_aid)
    await world.tables.person_registered(
        None, HOLDER, lookup_hash(LOOKUP_KEY, HOLDER_ID), "360102", personal_account=True
    )
    accepted = await world.ask(mutual_aid)
    assert accepted.request.kind is BindingKind.MUTUAL_AID


async def test_a_birth_date_after_today_is_refused_on_its_field(world: World) -> None:
    tomorrow = NOW.date() + timedelta(days=2)
    form = by_birth_certificate().model_copy(update={"member_birth_date": tomorrow})
    with pytest.raises(BirthDateInFutureError) as refused:
        await world.ask(form)
    assert refused.value.input_field == "member_birth_date"
    assert world.tables.requests == {}


async def test_a_retry_failing_after_the_first_attempt_appended_keeps_the_requests_row(
    world: World,
) -> None:
    once = ctx()
    first = await world.handlers.request_binding(HOLDER, by_id(), once)

    async def unavailable(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the store is unavailable")

    world.handlers.holders.handle = unavailable  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await world.handlers.request_binding(HOLDER, by_id(), once)
    assert list(world.tables.requests) == [first.request_id]


async def test_a_retried_request_answers_the_first_request_id_and_records_nothing_new(
    world: World,
) -> None:
    once = ctx()
    first = await world.handlers.request_binding(HOLDER, by_id(), once)
    recorded = await world.event_count()
    again = await world.handlers.request_binding(HOLDER, by_id(), once)
    assert again == first
    assert await world.event_count() == recorded
    assert list(world.tables.requests) == [first.request_id]


async def test_a_newborn_by_birth_certificate_is_the_same_member_for_the_same_certificate(
    world: World,
) -> None:
    await world.person("p-father-of-baby", id_number(date(1993, 2, 3), "031"))
    by_mother = await world.ask(by_birth_certificate())
    by_father = await world.ask(by_birth_certificate(), holder="p-father-of-baby")
    other = await world.ask(by_birth_certificate("Q360121000999"), holder="p-father-of-baby")
    assert by_mother.request.member.startswith("bc-")
    assert by_father.request.member == by_mother.request.member
    assert other.request.member != by_mother.request.member
    assert by_mother.request.face.who is FaceWho.MOTHER
    assert by_mother.request.face.subject == MOTHER


async def test_a_second_request_for_the_same_birth_certificate_is_refused_as_already_pending(
    world: World,
) -> None:
    first = await world.ask(by_birth_certificate())
    with pytest.raises(AlreadyBoundError):
        await world.ask(by_birth_certificate())
    assert list(world.tables.requests) == [first.request_id]


async def test_a_proxy_member_without_an_id_card_is_the_same_member_however_the_dot_is_typed(
    world: World,
) -> None:
    def without_id(name: str) -> BindingForm:
        return BindingForm(
            kind=BindingKind.PROXY,
            method=Method.PROXY_WITHOUT_ID,
            relation=Relation.GRANDCHILD,
            member_name=name,
            member_birth_date=CHILD,
            member_insured_place=JIANGXI,
            commitment_accepted=True,
        )

    first = await world.ask(without_id("阿依古丽·买买提"))
    assert first.request.member.startswith("nid-")
    with pytest.raises(AlreadyBoundError):
        await world.ask(without_id(" 阿依古丽 • 买买提 "))  # as a phone keyboard gives it
    assert list(world.tables.requests) == [first.request_id]


# ---------------------------------------------------------------------------- the letter


async def test_the_commitment_letter_is_the_same_bytes_at_every_download(world: World) -> None:
    accepted = await world.ask(by_id())
    first = await world.handlers.commitment_letter(HOLDER, accepted.request_id)
    second = await world.handlers.commitment_letter(HOLDER, accepted.request_id)
    assert first.startswith(b"%PDF-")
    assert second == first


async def test_a_method_without_materials_has_no_commitment_letter(world: World) -> None:
    accepted = await world.ask(by_proxy())
    with pytest.raises(MaterialsNotNeededError):
        await world.handlers.commitment_letter(HOLDER, accepted.request_id)


async def test_another_holders_request_reads_as_unknown(world: World) -> None:
    await world.person(OTHER_HOLDER, id_number(date(1980, 8, 8), "041"))
    accepted = await world.ask(by_id())
    signature = await world.blobs.put(PNG)
    with pytest.raises(RequestNotFoundError):
        await world.handlers.commitment_letter(OTHER_HOLDER, accepted.request_id)
    with pytest.raises(RequestNotFoundError):
        await world.handlers.sign_commitment_letter(
            OTHER_HOLDER, accepted.request_id, signature.sha256, ctx()
        )
    with pytest.raises(RequestNotFoundError):
        await world.handlers.submit_materials(
            OTHER_HOLDER, accepted.request_id, signature.sha256, signature.sha256, ctx()
        )
    with pytest.raises(RequestNotFoundError):
        await world.handlers.commitment_letter(HOLDER, "r-never-requested")


# ---------------------------------------------------------------------------- materials


async def test_signing_stores_the_letter_in_the_blob_store(world: World) -> None:
    accepted = await world.ask(by_id())
    letter = await world.handlers.commitment_letter(HOLDER, accepted.request_id)
    signature = await world.blobs.put(PNG)
    signed = await world.handlers.sign_commitment_letter(
        HOLDER, accepted.request_id, signature.sha256, ctx()
    )
    assert signed.letter is not None
    letter_ref, signature_ref = signed.letter
    stored = await world.blobs.get(letter_ref.sha256)
    assert stored is not None
    assert (stored.data, stored.content_type) == (letter, "application/pdf")
    assert (signature_ref.sha256, signature_ref.content_type) == (signature.sha256, "image/png")
    assert signed.waiting_for == {"materials", "review", "face"}


async def test_a_signature_must_be_an_image(world: World) -> None:
    accepted = await world.ask(by_id())
    not_an_image = await world.blobs.put(PDF)
    with pytest.raises(MaterialTypeError) as refused:
        await world.handlers.sign_commitment_letter(
            HOLDER, accepted.request_id, not_an_image.sha256, ctx()
        )
    assert refused.value.input_field == "signature"
    assert (await world.handlers.request_status(HOLDER, accepted.request_id)).letter is None


async def test_a_signature_never_uploaded_is_refused(world: World) -> None:
    accepted = await world.ask(by_id())
    with pytest.raises(MaterialNotUploadedError) as refused:
        await world.handlers.sign_commitment_letter(HOLDER, accepted.request_id, "0" * 64, ctx())
    assert refused.value.input_field == "signature"


async def test_submitting_pages_needs_the_letter_signed(world: World) -> None:
    accepted = await world.ask(by_id())
    page = await world.blobs.put(PNG)
    with pytest.raises(CommitmentNotSignedError):
        await world.handlers.submit_materials(
            HOLDER, accepted.request_id, page.sha256, page.sha256, ctx()
        )


@pytest.mark.parametrize("page", [PNG, JPEG, PDF], ids=["png", "jpeg", "pdf"])
async def test_household_pages_may_be_png_jpeg_or_pdf(world: World, page: bytes) -> None:
    accepted = await world.ask(by_id())
    await world.submitted(accepted.request_id, holder_page=page)
    request = await world.handlers.request_status(HOLDER, accepted.request_id)
    assert request.in_review
    assert request.waiting_for == {"review", "face"}


async def test_the_submission_names_the_holders_current_insured_place_as_region(
    world: World,
) -> None:
    accepted = await world.ask(by_id())
    await world.tables.insured_place_switched(None, HOLDER, "360111")
    await world.submitted(accepted.request_id)
    (submitted,) = [e for e in await world.events() if isinstance(e, BindingMaterialsSubmitted)]
    assert submitted.region == "360111"
    assert submitted.holder == HOLDER


# ---------------------------------------------------------------------------- outcomes


async def test_review_and_face_outcomes_by_request_id_end_bound(world: World) -> None:
    accepted = await world.ask(by_id())
    await world.submitted(accepted.request_id)
    assert await world.handlers.record_review(accepted.request_id, True, "", ctx())
    assert await world.handlers.record_face_outcome(accepted.request_id, True, "", ctx())
    request = await world.handlers.request_status(HOLDER, accepted.request_id)
    assert request.status is Status.BOUND
    assert isinstance((await world.events())[-1], MemberBound)


async def test_an_outcome_for_an_unknown_request_returns_false_and_writes_nothing(
    world: World,
) -> None:
    await world.ask(by_id())
    recorded = await world.event_count()
    assert not await world.handlers.record_review("r-unknown", True, "", ctx())
    assert not await world.handlers.record_review("r-unknown", False, "blurred", ctx())
    assert not await world.handlers.record_face_outcome("r-unknown", True, "", ctx())
    assert await world.event_count() == recorded


@pytest.mark.parametrize("verified", [True, False], ids=["bound", "rejected"])
async def test_a_finished_request_is_settled_and_no_longer_overdue(
    world: World, verified: bool
) -> None:
    accepted = await world.ask(by_proxy())
    assert await world.tables.overdue(DEADLINE, 10) == [(accepted.request_id, HOLDER)]
    await world.handlers.record_face_outcome(accepted.request_id, verified, "mismatch", ctx())
    status = (await world.handlers.request_status(HOLDER, accepted.request_id)).status
    assert status is (Status.BOUND if verified else Status.REJECTED)
    assert await world.tables.overdue(DEADLINE, 10) == []


# ---------------------------------------------------------------------------- expiry


async def test_expire_overdue_expires_a_pending_request_past_its_deadline_exactly_once(
    world: World,
) -> None:
    accepted = await world.ask(by_id())
    assert await world.handlers.expire_overdue(ctx(DEADLINE - timedelta(seconds=1))) == 0
    assert await world.handlers.expire_overdue(ctx(DEADLINE)) == 1
    assert await world.handlers.expire_overdue(ctx(DEADLINE + timedelta(minutes=1))) == 0
    request = await world.handlers.request_status(HOLDER, accepted.request_id)
    assert request.status is Status.EXPIRED
    expired = [e for e in await world.events() if isinstance(e, BindRequestExpired)]
    assert [e.request_id for e in expired] == [accepted.request_id]


async def test_expire_overdue_settles_a_row_whose_request_never_reached_the_log(
    world: World,
) -> None:
    lost = RequestRow("r-lost", HOLDER, "张**", "—", NOW.date(), DEADLINE)
    await world.tables.add_request(lost)
    assert await world.handlers.expire_overdue(ctx(DEADLINE)) == 0
    assert await world.tables.overdue(DEADLINE, 10) == []
    assert await world.event_count() == 0


# ---------------------------------------------------------------------------- revocation


@pytest.mark.parametrize(
    ("method", "confirmed_by"),
    [
        (ConfirmationMethod.PAYMENT_PASSWORD, Confirmation.PAYMENT_PASSWORD),
        (ConfirmationMethod.FACE, Confirmation.FACE),
    ],
    ids=["password", "face"],
)
async def test_revoking_with_the_holders_confirmation_unbinds(
    world: World, method: ConfirmationMethod, confirmed_by: Confirmation
) -> None:
    request_id = await world.bound_by_proxy()
    proof = issue_confirmation(HOLDER, method, secret=TOKEN_SECRET, now=NOW)
    revoked = await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    assert (revoked.request_id, revoked.status) == (request_id, Status.REVOKED)
    (event,) = [e for e in await world.events() if isinstance(e, BindingRevoked)]
    assert event.confirmed_by is confirmed_by


async def test_revoking_a_member_bound_again_answers_the_new_binding(world: World) -> None:
    proof = issue_confirmation(HOLDER, ConfirmationMethod.FACE, secret=TOKEN_SECRET, now=NOW)
    await world.bound_by_proxy()
    await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    again = await world.bound_by_proxy()
    revoked = await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    assert (revoked.request_id, revoked.status) == (again, Status.REVOKED)


@pytest.mark.parametrize(
    "proof",
    [
        pytest.param(
            issue_confirmation(FATHER, ConfirmationMethod.FACE, secret=TOKEN_SECRET, now=NOW),
            id="another-persons",
        ),
        pytest.param(
            issue_confirmation(
                HOLDER,
                ConfirmationMethod.PAYMENT_PASSWORD,
                secret=TOKEN_SECRET,
                now=NOW - timedelta(minutes=10),
            ),
            id="expired",
        ),
        pytest.param(
            issue_confirmation(HOLDER, ConfirmationMethod.FACE, secret="x" * 32, now=NOW),
            id="signed-by-someone-else",
        ),
        pytest.param("not-a-token", id="garbage"),
        pytest.param("", id="empty"),
    ],
)
async def test_revoking_without_the_holders_valid_confirmation_is_refused(
    world: World, proof: str
) -> None:
    request_id = await world.bound_by_proxy()
    with pytest.raises(RevocationNotConfirmedError) as refused:
        await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    assert refused.value.input_field == "confirmation"
    assert (await world.handlers.request_status(HOLDER, request_id)).status is Status.BOUND


async def test_one_proof_unbinds_one_member_and_a_retry_answers_the_same(world: World) -> None:
    await world.person(SON, SON_ID)
    await world.bound_by_proxy()
    son = await world.ask(by_proxy(SON_ID))
    await world.handlers.record_face_outcome(son.request_id, True, "", ctx())
    proof = issue_confirmation(HOLDER, ConfirmationMethod.FACE, secret=TOKEN_SECRET, now=NOW)
    first = await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    again = await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    assert again == first
    with pytest.raises(RevocationNotConfirmedError):
        await world.handlers.revoke(HOLDER, SON, BindingKind.PROXY, proof, ctx())
    assert (await world.handlers.request_status(HOLDER, son.request_id)).status is Status.BOUND


async def test_a_proof_spent_on_a_refused_unbinding_may_serve_again(world: World) -> None:
    await world.bound_by_proxy()
    proof = issue_confirmation(HOLDER, ConfirmationMethod.FACE, secret=TOKEN_SECRET, now=NOW)
    with pytest.raises(NotBoundError):
        await world.handlers.revoke(HOLDER, SON, BindingKind.PROXY, proof, ctx())
    revoked = await world.handlers.revoke(HOLDER, FATHER, BindingKind.PROXY, proof, ctx())
    assert revoked.status is Status.REVOKED
