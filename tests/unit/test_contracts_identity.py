"""Identity's and binding's published models read exactly what the services store and send."""

from __future__ import annotations

import ast
import typing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from contracts import binding, identity
from services.identity import face_check, person_events
from services.identity.face_check import FaceFailureReason, FacePurpose
from services.identity.face_provider import FaceSimulator, SimulatedOutcome
from services.identity.handlers import IdentityDeps, IdentityHandlers, face_stream, person_stream
from services.identity.password_hashing import make_hasher
from services.identity.person_events import Channel
from services.identity.tables import InMemoryIdentityTables
from services.runtime.codec import DomainEvent
from services.runtime.decider import CommandContext
from services.runtime.memory import InMemoryEventStore
from services.runtime.pii import InMemoryKeyVault

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
NAME, ID_NUMBER = "张三", "360426199101010071"


def ctx() -> CommandContext:
    return CommandContext(uuid4(), NOW, "corr-1", "test")


DOMAIN_EVENTS: tuple[type[DomainEvent], ...] = (
    face_check.FACE_CHECK_EVENTS + person_events.PERSON_EVENTS
)
# One of each domain event that travels with its fields as they are (PersonRegistered does not:
# it is sealed on the way to the store, see the test below).
SAMPLES: list[DomainEvent] = [
    face_check.FaceCheckRequested(
        check_id="c-1",
        purpose=FacePurpose.MEMBER_BINDING,
        subject="p-member",
        on_behalf_of="p-holder",
        correlation_id="req-1",
        requested_at=NOW,
        deadline=NOW + timedelta(hours=1),
    ),
    face_check.FaceVerified(check_id="c-1", verified_at=NOW),
    face_check.FaceVerificationFailed(
        check_id="c-1", reason=FaceFailureReason.NOT_LIVE, failed_at=NOW
    ),
    face_check.FaceCheckExpired(check_id="c-1", deadline=NOW),
    person_events.InsuredPlaceAdded(insured_place="360100"),
    person_events.CurrentInsuredPlaceSwitched(insured_place="360100"),
    person_events.VoucherActivated(channel=Channel.WECHAT, face_check_id="c-1"),
    person_events.PaymentPasswordSet(
        credential_id="k", kdf_scheme="argon2id", channel=Channel.ALIPAY
    ),
    person_events.PaymentPasswordChanged(
        credential_id="k2",
        kdf_scheme="argon2id",
        channel=Channel.ALIPAY,
        proven_by=person_events.PasswordProof.FACE_CHECK,
        face_check_id="c-1",
    ),
    person_events.PaymentPasswordVerified(),
    person_events.PaymentPasswordRejected(failed_attempts=2),
    person_events.PaymentPasswordLocked(locked_until=NOW),
    person_events.PersonErased(),
]


def test_every_identity_event_has_a_contract_with_the_same_fields() -> None:
    assert sorted(identity.EVENTS) == sorted(e.__name__ for e in DOMAIN_EVENTS)
    for event in DOMAIN_EVENTS:
        assert set(identity.EVENTS[event.__name__].model_fields) == set(event.model_fields)
    assert {type(s).__name__ for s in SAMPLES} == set(identity.EVENTS) - {"PersonRegistered"}


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_the_contract_reads_the_stored_json_of_the_domain_event(event: DomainEvent) -> None:
    stored = event.model_dump_json()
    published = identity.EVENTS[type(event).__name__].model_validate_json(stored)
    assert published.model_dump(mode="json") == event.model_dump(mode="json")


@pytest.mark.parametrize(
    ("literal", "enum"),
    [
        (identity.FacePurpose, FacePurpose),
        (identity.FaceFailureReason, FaceFailureReason),
        (identity.Channel, Channel),
        (identity.PasswordProof, person_events.PasswordProof),
    ],
)
def test_contract_literals_list_exactly_the_domain_values(literal: object, enum: type) -> None:
    assert set(typing.get_args(literal)) == {member.value for member in enum}


async def test_a_stored_registration_reads_as_published_with_tokens_and_no_plaintext() -> None:
    store = InMemoryEventStore()
    simulator = FaceSimulator(lambda: NOW + timedelta(seconds=1), SimulatedOutcome())
    app = IdentityHandlers(
        IdentityDeps(
            store,
            InMemoryKeyVault(),
            InMemoryIdentityTables(store),
            b"L" * 32,
            make_hasher(),
            simulator,
        )
    )
    person = await app.register_person(NAME, ID_NUMBER, "360100", date(2026, 11, 25), ctx())
    check = await app.request_face_check(
        FacePurpose.LOGIN, person, None, NOW + timedelta(minutes=5), ctx()
    )
    await simulator.settle()

    stored = await store.read_stream(person_stream(person))
    stored += await store.read_stream(face_stream(check))
    decoded = [identity.EVENTS[r.type].model_validate_json(r.data_json) for r in stored]
    registered = decoded[0]
    assert isinstance(registered, identity.PersonRegistered)
    assert registered.pseudonym == person
    assert [type(e).__name__ for e in decoded[1:]] == ["FaceCheckRequested", "FaceVerified"]
    # The opened form (what identity itself reads) is not publishable.
    opened = (await app.person_store.read_stream(person_stream(person)))[0]
    with pytest.raises(ValidationError):
        identity.PersonRegistered.model_validate_json(opened.data_json)


def bind_request(**face: str | None) -> dict[str, object]:
    return {
        "request_id": "req-1",
        "holder": "p-holder",
        "member": "p-member",
        "kind": "family_account",
        "method": "id_number",
        "face_check": face,
        "deadline": "2026-11-26T10:00:00Z",
    }


def test_a_bind_request_names_whose_face_to_check_or_none() -> None:
    request = binding.MemberBindRequested.model_validate(
        bind_request(who="member", subject="p-member")
    )
    assert request.face_check == binding.FaceCheckNeed(who="member", subject="p-member")
    none = binding.MemberBindRequested.model_validate(bind_request(who="none"))
    assert none.face_check.subject is None


@pytest.mark.parametrize(
    "face",
    [{"who": "mother"}, {"who": "none", "subject": "p-x"}, {"who": "father", "subject": "p"}],
)
def test_a_bind_request_with_an_inconsistent_face_check_is_refused(face: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        binding.MemberBindRequested.model_validate(bind_request(**face))


def test_contracts_import_nothing_from_services() -> None:
    for path in Path(identity.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "services"], path.name
