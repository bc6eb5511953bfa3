"""Identity use cases on the in-memory store, vault and tables: sealing, claims, erasure,
payment password changes, resets and lockout, face checks answered by the simulator or
expired, signed callbacks."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from services.identity.domain import Person
from services.identity.errors import (
    FaceCheckUsedError,
    OldPasswordRequiredError,
    OldPasswordWrongError,
    PasswordLockedError,
    PersonalDataErasedError,
    PersonAlreadyRegisteredError,
)
from services.identity.face_check import (
    FaceCheckNotRequestedError,
    FaceCheckStatus,
    FaceFailureReason,
    FacePurpose,
)
from services.identity.face_provider import (
    FaceSimulator,
    SimulatedOutcome,
    sign_callback,
    verify_callback,
)
from services.identity.handlers import (
    PERSON_CODEC,
    IdentityDeps,
    IdentityHandlers,
    person_stream,
)
from services.identity.password import LockoutPolicy
from services.identity.password_hashing import make_hasher
from services.identity.person_events import Channel
from services.identity.tables import InMemoryIdentityTables
from services.runtime.decider import CommandContext
from services.runtime.memory import InMemoryEventStore
from services.runtime.pii import InMemoryKeyVault

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TODAY = date(2026, 11, 25)
NAME, ID_NUMBER, PLACE = "张三", "360426199101010071", "360100"
LOOKUP_KEY = b"L" * 32
FIRST, NEW, WRONG = "284915", "135790", "111112"  # payment passwords, made up


def ctx(now: datetime = NOW) -> CommandContext:
    return CommandContext(uuid4(), now, f"corr-{uuid4().hex[:8]}", "test")


class World:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.vault = InMemoryKeyVault()
        self.tables = InMemoryIdentityTables(self.store)
        self.simulator = FaceSimulator(lambda: NOW + timedelta(seconds=30))
        self.handlers = IdentityHandlers(
            IdentityDeps(
                self.store,
                self.vault,
                self.tables,
                LOOKUP_KEY,
                make_hasher(),
                self.simulator,
                LockoutPolicy(max_failures=5, lock_for=timedelta(hours=3)),
            )
        )

    async def register(self, id_number: str = ID_NUMBER) -> str:
        return await self.handlers.register_person(NAME, id_number, PLACE, TODAY, ctx())

    async def activated(self) -> str:
        person = await self.register()
        check_id = await self.handlers.request_face_check(
            FacePurpose.ACTIVATION, person, None, NOW + timedelta(minutes=5), ctx()
        )
        await self.simulator.settle()
        await self.handlers.activate_voucher(person, Channel.WECHAT, check_id, ctx(NOW))
        return person

    async def person(self, pseudonym: str) -> Person:
        found = await self.handlers.person(pseudonym)
        assert found is not None
        return found


@pytest.fixture
def world() -> World:
    return World()


async def test_stored_registration_holds_no_plaintext_but_reads_back_whole(world: World) -> None:
    person = await world.register()
    (stored,) = await world.store.read_stream(person_stream(person))
    assert NAME not in stored.data_json
    assert ID_NUMBER not in stored.data_json
    assert stored.data["personal"]["name"].startswith("v1.")
    personal = (await world.person(person)).personal
    assert personal is not None
    assert (personal.name, personal.id_number, personal.birth_date) == (
        NAME,
        ID_NUMBER,
        date(1991, 1, 1),
    )


async def test_an_id_number_registers_once_even_under_concurrency(world: World) -> None:
    results = await asyncio.gather(*(world.register() for _ in range(20)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, PersonAlreadyRegisteredError) for r in results if r not in winners)
    assert list(world.tables.claims.values()) == winners


async def test_erased_person_reads_as_erased_and_the_stream_still_replays(world: World) -> None:
    person = await world.register()
    await world.handlers.erase_person(person, ctx())
    await world.handlers.erase_person(person, ctx())  # a repeat records nothing new
    erased = await world.person(person)
    assert (erased.personal, erased.erased, erased.places) == (None, True, (PLACE,))
    stored = await world.store.read_stream(person_stream(person))
    assert [r.type for r in stored] == ["PersonRegistered", "PersonErased"]
    events = [
        PERSON_CODEC.decode(r)
        for r in await world.handlers.person_store.read_stream(person_stream(person))
    ]
    assert world.handlers.decider.fold(events) == erased


async def test_five_wrong_passwords_lock_until_the_lock_lapses(world: World) -> None:
    person = await world.activated()
    await world.handlers.set_payment_password(person, "284915", Channel.WECHAT, ctx())
    assert await world.handlers.verify_payment_password(person, "284915", ctx())
    for _ in range(5):
        assert not await world.handlers.verify_payment_password(person, "111112", ctx())
    with pytest.raises(PasswordLockedError):
        await world.handlers.verify_payment_password(person, "284915", ctx())
    later = NOW + timedelta(hours=3, seconds=1)
    assert await world.handlers.verify_payment_password(person, "284915", ctx(later))
    hashes = list(world.tables.credentials.values())
    assert len(hashes) == 1
    assert hashes[0].startswith("$argon2id$")


async def test_a_set_password_changes_only_with_the_old_one(world: World) -> None:
    person, h = await world.activated(), world.handlers
    await h.set_payment_password(person, FIRST, Channel.WECHAT, ctx())
    with pytest.raises(OldPasswordRequiredError):
        await h.set_payment_password(person, NEW, Channel.WECHAT, ctx())
    with pytest.raises(OldPasswordWrongError):
        await h.set_payment_password(person, NEW, Channel.WECHAT, ctx(), old_password=WRONG)
    assert (await world.person(person)).failed_attempts == 1
    assert len(world.tables.credentials) == 1  # a refused change leaves no hash behind
    await h.set_payment_password(person, NEW, Channel.WECHAT, ctx(), old_password=FIRST)
    assert await h.verify_payment_password(person, NEW, ctx())
    assert not await h.verify_payment_password(person, FIRST, ctx())
    stored = await world.store.read_stream(person_stream(person))
    assert "PaymentPasswordChanged" in [r.type for r in stored]
    assert not any(p in r.data_json for r in stored for p in (FIRST, NEW, "$argon2"))


async def reset_check(world: World, person: str) -> str:
    check_id = await world.handlers.request_face_check(
        FacePurpose.PASSWORD_RESET, person, None, NOW + timedelta(minutes=5), ctx()
    )
    await world.simulator.settle()
    return check_id


async def test_wrong_old_passwords_lock_and_a_face_checked_reset_lifts_the_lock(
    world: World,
) -> None:
    person, h = await world.activated(), world.handlers
    await h.set_payment_password(person, FIRST, Channel.WECHAT, ctx())
    for _ in range(5):
        with pytest.raises(OldPasswordWrongError):
            await h.set_payment_password(person, NEW, Channel.WECHAT, ctx(), old_password=WRONG)
    with pytest.raises(PasswordLockedError):
        await h.set_payment_password(person, NEW, Channel.WECHAT, ctx(), old_password=FIRST)
    with pytest.raises(PasswordLockedError):
        await h.verify_payment_password(person, FIRST, ctx())
    check_id = await reset_check(world, person)
    await h.set_payment_password(person, NEW, Channel.WECHAT, ctx(), face_check_id=check_id)
    assert (await world.person(person)).locked_until is None
    assert await h.verify_payment_password(person, NEW, ctx())
    with pytest.raises(FaceCheckUsedError):
        await h.set_payment_password(
            person, "370268", Channel.WECHAT, ctx(), face_check_id=check_id
        )
    assert await h.verify_payment_password(person, NEW, ctx())


async def test_a_reset_by_someone_elses_face_check_reads_as_unknown(world: World) -> None:
    person, h = await world.activated(), world.handlers
    await h.set_payment_password(person, FIRST, Channel.WECHAT, ctx())
    other = await world.register("11010519491231002X")
    theirs = await reset_check(world, other)
    for check_id in (theirs, "no-such-check"):
        with pytest.raises(FaceCheckNotRequestedError):
            await h.set_payment_password(person, NEW, Channel.WECHAT, ctx(), face_check_id=check_id)
    assert await h.verify_payment_password(person, FIRST, ctx())


async def test_the_fake_tables_keep_the_first_hash_under_an_id_as_postgres_does(
    world: World,
) -> None:
    await world.tables.save_credential("p-1", "c-1", "$argon2id$first")
    await world.tables.save_credential("p-1", "c-1", "$argon2id$again")
    assert await world.tables.credential("p-1", "c-1") == "$argon2id$first"


async def test_erased_person_cannot_set_a_password(world: World) -> None:
    person = await world.activated()
    await world.handlers.erase_person(person, ctx())
    with pytest.raises(PersonalDataErasedError):
        await world.handlers.set_payment_password(person, "284915", Channel.WECHAT, ctx())


async def test_simulator_answers_with_the_outcome_set_for_the_person(world: World) -> None:
    person = await world.register()
    world.simulator.set_outcome(person, SimulatedOutcome(failure=FaceFailureReason.NOT_LIVE))
    check_id = await world.handlers.request_face_check(
        FacePurpose.LOGIN, person, None, NOW + timedelta(minutes=5), ctx()
    )
    await world.simulator.settle()
    check = await world.handlers.face_check(check_id)
    assert check is not None
    assert (check.status, check.reason) == (FaceCheckStatus.FAILED, FaceFailureReason.NOT_LIVE)
    assert world.tables.pending == {}


async def test_unanswered_check_expires_only_after_its_deadline(world: World) -> None:
    person = await world.register()
    world.simulator.set_outcome(person, SimulatedOutcome(answers=False))
    deadline = NOW + timedelta(minutes=5)
    check_id = await world.handlers.request_face_check(
        FacePurpose.LOGIN, person, None, deadline, ctx()
    )
    assert await world.handlers.expire_overdue_checks(ctx(deadline - timedelta(seconds=1))) == 0
    assert await world.handlers.expire_overdue_checks(ctx(deadline)) == 1
    check = await world.handlers.face_check(check_id)
    assert check is not None
    assert check.status is FaceCheckStatus.EXPIRED
    assert await world.handlers.expire_overdue_checks(ctx(deadline + timedelta(hours=1))) == 0


def test_callback_signature_verifies_only_the_exact_body_and_secret() -> None:
    body = b'{"check_id":"c-1","outcome":"verified"}'
    signature = sign_callback(b"secret", body)
    assert verify_callback(b"secret", body, signature)
    assert verify_callback(b"secret", body, signature.upper())
    assert not verify_callback(b"secret", body + b" ", signature)
    assert not verify_callback(b"other", body, signature)
    assert not verify_callback(b"secret", body, "不是签名")
