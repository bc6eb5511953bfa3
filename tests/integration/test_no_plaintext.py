"""No name or ID number in plaintext anywhere identity's traffic goes: every message (key, value,
headers) on every qinqing topic the test writes, every log line, every refusal's message; and
no payment password hash (nor a part of one) there either."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from contracts.id_number import IdNumberError
from services.identity.consumers import bind_request_consumer
from services.identity.errors import PersonAlreadyRegisteredError
from services.identity.face_check import FaceFailureReason, FacePurpose
from services.identity.face_provider import FaceSimulator, SimulatedOutcome
from services.identity.handlers import IdentityDeps, IdentityHandlers
from services.identity.password_hashing import make_hasher
from services.identity.person_events import Channel
from services.identity.tables import PostgresIdentityTables
from services.runtime.checkpoints import PostgresCheckpoints
from services.runtime.consumer import BrokerDeadLetters, IncomingMessage, PostgresInbox
from services.runtime.decider import CommandContext
from services.runtime.kafka_codec import to_record
from services.runtime.logging import configure_logging, get_logger
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pgstore import PostgresEventStore
from services.runtime.pii import PostgresKeyVault
from services.runtime.relay import OutboxRelay, ProducerSettings, kafka_producer
from tests.builders import recorded_event
from tests.integration.test_messaging import create_topics

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 25)
FIRST, CHANGED, RESET = "284915", "135790", "370268"  # payment passwords, made up
# Registered in these spellings; the first ends in a lower-case x, as people type it.
PEOPLE = [
    ("赵晓燕", "36042619850211001x"),
    ("钱伟", "360426198503120025"),
    ("孙丽华", "360426198506150051"),
    ("李晨曦", "360426198507160067"),
]


def needles(people: Iterable[tuple[str, str]]) -> dict[bytes, str]:
    """Every spelling of a person's name or ID number that would give it away, as UTF-8."""
    found: dict[bytes, str] = {}
    for name, number in people:
        spellings = {
            name: "name",
            json.dumps(name)[1:-1]: "name, JSON-escaped",  # ensure_ascii output
            number.upper(): "ID number",
            number.lower(): "ID number, lower-case x",
            number[:17]: "ID number without its check character",
        }
        found |= {
            text.encode(): f"{what} of person {name[:1]}*" for text, what in spellings.items()
        }
    return found


def leaks(places: Iterable[tuple[str, bytes]], people: Iterable[tuple[str, str]]) -> list[str]:
    """`where: what` for every plaintext found in (where, bytes) pairs; empty if none."""
    wanted = needles(people)
    return [f"{where}: {what}" for where, text in places for n, what in wanted.items() if n in text]


def record_places(topic: str, records: Iterable[Any]) -> Iterator[tuple[str, bytes]]:
    for r in records:
        where = f"{topic}[{r.partition}]@{r.offset}"
        yield f"{where} key", r.key or b""
        yield f"{where} value", r.value or b""
        for name, value in r.headers:
            yield f"{where} header {name}", name.encode() + b"=" + bytes(value or b"")


@dataclass
class FakeRecord:
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes = b"k"
    partition: int = 0
    offset: int = 0


def test_the_scanner_finds_a_planted_plaintext_in_any_spelling_and_place() -> None:
    name, number = PEOPLE[0]
    clean = FakeRecord(b'{"pseudonym": "p-1"}', [("ce_subject", b"person-p-1")])
    assert leaks(record_places("t", [clean]), PEOPLE) == []
    planted = [
        FakeRecord(json.dumps({"n": name}).encode(), offset=0),  # escaped: \u8d75...
        FakeRecord(b"{}", [("x-error", f"bad {number.upper()}".encode())], offset=1),
        FakeRecord(b"{}", key=number.lower().encode(), offset=2),
        FakeRecord(json.dumps({"n": name}, ensure_ascii=False).encode(), offset=3),
    ]
    found = leaks(record_places("t", planted), PEOPLE)
    assert {line.split(" ", 1)[0] for line in found} == {f"t[0]@{i}" for i in range(4)}, found
    assert leaks([("log", f"id={number[:17]}".encode())], PEOPLE) == [
        "log: ID number without its check character of person 赵*"
    ]


# ------------------------------------------------------------------------------ the traffic


LogLines = Callable[[], list[str]]


@pytest.fixture
def log_lines(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[LogLines]:
    """Every line logged or printed during the test. Logging is configured as a service does
    (JSON, redaction) into a buffer, loggers uncached so every structlog call lands there;
    stdlib records through caplog; anything else written to stdout or stderr through capsys."""
    saved, root_handlers = structlog.get_config(), list(logging.getLogger().handlers)
    kafka_level = logging.getLogger("aiokafka").level
    # Before configure_logging, which sets the root level: caplog puts back what it found.
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG", json=True)
    out = io.StringIO()
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=out), cache_logger_on_first_use=False
    )

    def read() -> list[str]:
        written = capsys.readouterr()
        lines = out.getvalue().splitlines() + written.out.splitlines() + written.err.splitlines()
        return lines + [logging.Formatter().format(r) for r in caplog.records]

    try:
        yield read
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = root_handlers
        logging.getLogger("aiokafka").setLevel(kafka_level)


def now() -> datetime:
    return datetime.now(UTC)


def ctx(at: datetime | None = None) -> CommandContext:
    return CommandContext(uuid4(), at or now(), f"corr-{uuid4().hex[:8]}", "test")


async def read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record the topic holds now, from the start of each partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = [p["partition"] for p in described["partitions"]]
    assert numbers, f"topic {topic} has no partitions"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records: list[Any] = []
        while [p for p in parts if await consumer.position(p) < end[p]]:
            for batch in (await consumer.getmany(*parts, timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def existing(bootstrap: str, *names: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topics = await consumer.topics()
    finally:
        await consumer.stop()
    return [n for n in names if n in topics]


async def test_no_name_or_id_number_on_any_topic_or_log_line_or_error(
    db_pool: asyncpg.Pool,
    pg_schema: str,
    kafka_bootstrap: str,
    log_lines: LogLines,
) -> None:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("identity"))
    simulator = FaceSimulator(now, SimulatedOutcome(latency_s=0.05))
    store = PostgresEventStore(db_pool, pg_schema)
    app = IdentityHandlers(
        IdentityDeps(
            store,
            PostgresKeyVault(db_pool, pg_schema, master_key=b"M" * 32),
            PostgresIdentityTables(db_pool, pg_schema),
            b"L" * 32,
            make_hasher(),
            simulator,
        )
    )
    errors: list[Exception] = []
    get_logger("test").info("traffic starts", person_count=len(PEOPLE))  # the capture works

    # Registrations, a repeat in another spelling, and a typo.
    first, second, third, fourth = [
        await app.register_person(name, number, "360100", TODAY, ctx()) for name, number in PEOPLE
    ]
    with pytest.raises(PersonAlreadyRegisteredError) as repeat:
        await app.register_person(PEOPLE[0][0], PEOPLE[0][1].upper(), "360100", TODAY, ctx())
    typo = PEOPLE[1][1][:-1] + ("1" if PEOPLE[1][1][-1] != "1" else "2")
    with pytest.raises(IdNumberError) as refused:
        await app.register_person(PEOPLE[1][0], typo, "360100", TODAY, ctx())
    errors += [repeat.value, refused.value]

    # Face checks: verified (then the voucher activated), failed, and one that expires.
    simulator.set_outcome(second, SimulatedOutcome(failure=FaceFailureReason.NO_MATCH))
    simulator.set_outcome(third, SimulatedOutcome(answers=False))
    deadline = now() + timedelta(minutes=5)
    login = await app.request_face_check(FacePurpose.ACTIVATION, first, None, deadline, ctx())
    await app.request_face_check(FacePurpose.LOGIN, second, None, deadline, ctx())
    await app.request_face_check(FacePurpose.LOGIN, third, None, deadline, ctx())
    await simulator.settle()
    await app.activate_voucher(first, Channel.WECHAT, login, ctx())
    assert await app.expire_overdue_checks(ctx(deadline)) == 1

    # Payment passwords: the first, a change by the old one, a reset by a face check.
    await app.set_payment_password(first, FIRST, Channel.WECHAT, ctx())
    await app.set_payment_password(first, CHANGED, Channel.WECHAT, ctx(), old_password=FIRST)
    reset = await app.request_face_check(FacePurpose.PASSWORD_RESET, first, None, deadline, ctx())
    await simulator.settle()
    await app.set_payment_password(first, RESET, Channel.WECHAT, ctx(), face_check_id=reset)

    # Binding asks, over Kafka, for a member's face check; and once for a person unknown here.
    bind_topic = f"qinqing.binding.v1.{pg_schema}"
    await create_topics(kafka_bootstrap, bind_topic, partitions=1)
    bind_requests = []
    for n, subject in enumerate((fourth, "p-unknown")):
        request = {
            "request_id": f"req-{n}",
            "holder": first,
            "member": subject,
            "kind": "family_account",
            "method": "id_number",
            "face_check": {"who": "member", "subject": subject},
            "deadline": (now() + timedelta(days=1)).isoformat(),
        }
        stream = f"holder-{first}-{n}"
        meta = {"actor": first}
        bind_requests.append(
            recorded_event(stream, "MemberBindRequested", request, at=now(), metadata=meta)
        )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for recorded in bind_requests:
            record = to_record(recorded, "binding")
            await producer.send_and_wait(
                bind_topic, record.value, record.key, headers=record.headers
            )
    finally:
        await producer.stop()
    broker = KafkaBroker(kafka_bootstrap)
    await broker.connect()
    try:
        consumer = bind_request_consumer(
            app, PostgresInbox(db_pool, pg_schema), BrokerDeadLetters(broker), now
        )
        consumer.retry_delay_s = 0.001
        for record in await read_to_end(kafka_bootstrap, bind_topic):
            await consumer.process(IncomingMessage.from_record(record))
    finally:
        await broker.stop()
    await simulator.settle()

    await app.erase_person(fourth, ctx())
    relay = OutboxRelay(
        store,
        PostgresCheckpoints(db_pool, pg_schema),
        "identity",
        lambda: kafka_producer(ProducerSettings(kafka_bootstrap, request_timeout_ms=10_000)),
    )
    try:
        published = await relay.run_once()
    finally:
        await relay.close()

    # Read back everything: the topics, the logs, the refusals.
    ours = {str(r.event_id) async for r in store.read_all()}
    assert published == len(ours) >= 4 + 5 + 2 + 1 + 1  # persons, checks, outcomes, voucher
    places: list[tuple[str, bytes]] = []
    topics = await existing(
        kafka_bootstrap, relay.topic, bind_topic, f"{bind_topic}.dlq", f"{relay.topic}.dlq"
    )
    assert f"{bind_topic}.dlq" in topics  # the unknown person's request went there
    seen: set[str] = set()
    for topic in topics:
        records = await read_to_end(kafka_bootstrap, topic)
        seen |= {dict(r.headers).get("ce_id", b"").decode() for r in records}
        places += record_places(topic, records)
    assert ours <= seen, "every event of the test was read back from Kafka"

    lines = log_lines()
    assert any("traffic starts" in line for line in lines)
    assert any("message dead-lettered" in line for line in lines)
    places += [(f"log line {i}", line.encode()) for i, line in enumerate(lines)]
    places += [(f"error {type(e).__name__}", f"{e!s} {e!r}".encode()) for e in errors]

    assert leaks(places, PEOPLE) == []
    hashes = await db_pool.fetch(f"SELECT password_hash FROM {pg_schema}.payment_credentials")
    assert len(hashes) == 3
    # `$argon2id$v=19$m=…,t=…,p=…$<salt>$<digest>`: the marker, each salt and each digest
    parts = [b"$argon2"] + [p.encode() for r in hashes for p in r["password_hash"].split("$")[-2:]]
    assert [where for where, text in places if any(p in text for p in parts)] == []
