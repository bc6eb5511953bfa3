"""Identity use cases on the real PostgreSQL (and Kafka for the face check flow): one person
per ID number under concurrency, lockout across a restart, a password command run again,
erasure, published face checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from services.identity.errors import (
    OldPasswordRequiredError,
    PasswordLockedError,
    PersonAlreadyRegisteredError,
)
from services.identity.face_check import FaceCheckStatus, FacePurpose
from services.identity.face_provider import FaceSimulator, SimulatedOutcome
from services.identity.handlers import (
    PERSON_CODEC,
    IdentityDeps,
    IdentityHandlers,
    face_stream,
    person_stream,
)
from services.identity.password_hashing import hash_payment_password, make_hasher
from services.identity.person_events import Channel
from services.identity.sealing import SealingEventStore
from services.identity.tables import PostgresIdentityTables
from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.decider import CommandContext
from services.runtime.integrity import verify
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import GroupCommitEventStore, PostgresEventStore
from services.runtime.pii import PostgresKeyVault, lookup_hash
from services.runtime.relay import OutboxRelay, ProducerSettings, kafka_producer
from tests.integration.test_messaging import read_topic

NAME, ID_NUMBER, PLACE = "李四", "360426199101010071", "360100"
MASTER, LOOKUP = b"M" * 32, b"L" * 32
TODAY = date(2026, 11, 25)


def ctx(now: datetime) -> CommandContext:
    return CommandContext(uuid4(), now, f"corr-{uuid4().hex[:8]}", "test")


def handlers(pool: asyncpg.Pool, schema: str, simulator: FaceSimulator) -> IdentityHandlers:
    """What a service process builds at start-up; a second call stands for a restart."""
    return IdentityHandlers(
        IdentityDeps(
            GroupCommitEventStore(pool, schema),
            PostgresKeyVault(pool, schema, master_key=MASTER),
            PostgresIdentityTables(pool, schema),
            LOOKUP,
            make_hasher(),
            simulator,
        )
    )


@pytest.fixture
async def schema(db_pool: asyncpg.Pool, pg_schema: str) -> str:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("identity"))
    return pg_schema


def now() -> datetime:
    return datetime.now(UTC)


async def test_twenty_concurrent_registrations_of_one_id_number_make_one_person(
    db_pool: asyncpg.Pool, schema: str
) -> None:
    app = handlers(db_pool, schema, FaceSimulator(now))
    results = await asyncio.gather(
        *(app.register_person(NAME, ID_NUMBER, PLACE, TODAY, ctx(now())) for _ in range(20)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if not isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(e, PersonAlreadyRegisteredError) for e in losers)
    registered = await db_pool.fetch(
        f"SELECT stream_id FROM {schema}.events WHERE event_type = 'PersonRegistered'"
    )
    claims = await db_pool.fetch(f"SELECT lookup_hash, pseudonym FROM {schema}.id_number_claims")
    assert [r["stream_id"] for r in registered] == [person_stream(winners[0])]
    assert [tuple(r) for r in claims] == [(lookup_hash(LOOKUP, ID_NUMBER), winners[0])]
    raw = await db_pool.fetchval(f"SELECT string_agg(data::text, '') FROM {schema}.events")
    assert NAME not in raw
    assert ID_NUMBER not in raw


async def _activated(app: IdentityHandlers, simulator: FaceSimulator, at: datetime) -> str:
    person = await app.register_person(NAME, ID_NUMBER, PLACE, TODAY, ctx(at))
    check_id = await app.request_face_check(
        FacePurpose.ACTIVATION, person, None, at + timedelta(minutes=5), ctx(at)
    )
    await simulator.settle()
    await app.activate_voucher(person, Channel.ALIPAY, check_id, ctx(now()))
    return person


async def test_password_lockout_survives_a_restart(
    db_pool: asyncpg.Pool, schema: str, database_url: str
) -> None:
    simulator = FaceSimulator(now)
    app = handlers(db_pool, schema, simulator)
    start = now()
    person = await _activated(app, simulator, start)
    await app.set_payment_password(person, "284915", Channel.ALIPAY, ctx(start))
    for _ in range(5):
        assert not await app.verify_payment_password(person, "111112", ctx(start))

    restarted_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert restarted_pool is not None
    try:
        restarted = handlers(restarted_pool, schema, FaceSimulator(now))
        with pytest.raises(PasswordLockedError) as refused:
            await restarted.verify_payment_password(person, "284915", ctx(start))
        locked_until = refused.value.locked_until
        assert locked_until == start + timedelta(hours=3)
        with pytest.raises(PasswordLockedError):
            await restarted.verify_payment_password(
                person, "284915", ctx(locked_until - timedelta(seconds=1))
            )
        assert await restarted.verify_payment_password(person, "284915", ctx(locked_until))
    finally:
        await restarted_pool.close()


async def test_a_password_command_run_again_after_dying_between_hash_and_event_records_it(
    db_pool: asyncpg.Pool, schema: str
) -> None:
    simulator = FaceSimulator(now)
    app = handlers(db_pool, schema, simulator)
    person = await _activated(app, simulator, now())
    command = ctx(now())
    # The first run stored the hash under the command's id, then its process died.
    first_hash = hash_payment_password(make_hasher(), "284915", date(1991, 1, 1), ID_NUMBER)
    await app.deps.tables.save_credential(person, str(command.command_id), first_hash)
    await app.set_payment_password(person, "284915", Channel.ALIPAY, command)
    await app.set_payment_password(person, "284915", Channel.ALIPAY, command)  # a retry
    assert await app.verify_payment_password(person, "284915", ctx(now()))
    with pytest.raises(OldPasswordRequiredError):
        await app.set_payment_password(person, "135790", Channel.ALIPAY, ctx(now()))
    check_id = await app.request_face_check(
        FacePurpose.PASSWORD_RESET, person, None, now() + timedelta(minutes=5), ctx(now())
    )
    await simulator.settle()
    reset = ctx(now())
    await app.set_payment_password(person, "135790", Channel.ALIPAY, reset, face_check_id=check_id)
    assert await app.verify_payment_password(person, "135790", ctx(now()))
    stored = await db_pool.fetch(
        f"SELECT credential_id FROM {schema}.payment_credentials WHERE pseudonym = $1", person
    )
    assert sorted(r["credential_id"] for r in stored) == sorted(
        [str(command.command_id), str(reset.command_id)]
    )


async def test_erased_person_reads_as_erased_and_replay_and_verification_still_run(
    db_pool: asyncpg.Pool, schema: str
) -> None:
    app = handlers(db_pool, schema, FaceSimulator(now))
    person = await app.register_person(NAME, ID_NUMBER, PLACE, TODAY, ctx(now()))
    await app.erase_person(person, ctx(now()))
    erased = await app.person(person)
    assert erased is not None
    assert (erased.personal, erased.erased, erased.current_place) == (None, True, PLACE)
    # A fresh replay of the whole log, through the sealing view, folds without error.
    view = SealingEventStore(PostgresEventStore(db_pool, schema), app.deps.vault)
    history = [PERSON_CODEC.decode(r) async for r in view.read_all()]
    assert [type(e).__name__ for e in history] == ["PersonRegistered", "PersonErased"]
    assert app.decider.fold(history) == erased
    # The stored ciphertext still matches its hashes: erasure never rewrites the log.
    report = await verify(db_pool, schema)
    assert report.ok


def has_type(wanted: str) -> Callable[[list[Any]], bool]:
    return lambda records: any(dict(r.headers)["ce_type"].decode() == wanted for r in records)


async def test_face_check_is_published_answered_by_the_simulator_and_the_answer_published(
    db_pool: asyncpg.Pool, schema: str, kafka_bootstrap: str
) -> None:
    simulator = FaceSimulator(now, SimulatedOutcome(latency_s=0.2))
    app = handlers(db_pool, schema, simulator)
    relay = OutboxRelay(
        app.deps.store,  # the raw log: PersonRegistered goes out as ciphertext
        PostgresCheckpoints(db_pool, schema),
        "identity",
        lambda: kafka_producer(ProducerSettings(kafka_bootstrap, request_timeout_ms=10_000)),
    )
    try:
        person = await app.register_person(NAME, ID_NUMBER, PLACE, TODAY, ctx(now()))
        check_id = await app.request_face_check(
            FacePurpose.LOGIN, person, None, now() + timedelta(minutes=5), ctx(now())
        )
        assert await relay.run_once() == 2  # registration, request
        await simulator.settle()
        assert await relay.run_once() == 1  # the answer
    finally:
        await relay.close()
    assert relay.topic == "qinqing.identity.v1"
    records = await read_topic(
        kafka_bootstrap, relay.topic, has_type("qinqing.identity.FaceVerified.v1"), 30
    )

    def types(stream: str) -> list[str]:  # per key: one stream, one partition, in order
        mine = [r for r in records if r.key == stream.encode()]
        return [dict(r.headers)["ce_type"].decode() for r in mine]

    assert types(person_stream(person)) == ["qinqing.identity.PersonRegistered.v1"]
    assert types(face_stream(check_id)) == [
        "qinqing.identity.FaceCheckRequested.v1",
        "qinqing.identity.FaceVerified.v1",
    ]
    for record in records:
        texts = [record.value, *(value for _, value in record.headers)]
        for text in texts:
            assert NAME.encode() not in text
            assert ID_NUMBER.encode() not in text


async def test_check_expires_when_the_simulator_never_answers(
    db_pool: asyncpg.Pool, schema: str
) -> None:
    simulator = FaceSimulator(now, SimulatedOutcome(answers=False))
    app = handlers(db_pool, schema, simulator)
    start = now()
    person = await app.register_person(NAME, ID_NUMBER, PLACE, TODAY, ctx(start))
    deadline = start + timedelta(minutes=10)
    check_id = await app.request_face_check(FacePurpose.LOGIN, person, None, deadline, ctx(start))
    await simulator.settle()
    assert await app.expire_overdue_checks(ctx(deadline - timedelta(seconds=1))) == 0
    assert await app.expire_overdue_checks(ctx(deadline)) == 1
    check = await app.face_check(check_id)
    assert check is not None
    assert (check.status, check.decided_at) == (FaceCheckStatus.EXPIRED, deadline)
    stored = await app.deps.store.read_stream(face_stream(check_id))
    assert [r.type for r in stored] == ["FaceCheckRequested", "FaceCheckExpired"]
    pending = await db_pool.fetchval(f"SELECT count(*) FROM {schema}.pending_face_checks")
    assert pending == 0
