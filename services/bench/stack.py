"""The three services served as deployed, and a holder's app driving them: what the flows
phase of `qinqing bench` and the fault suite of `qinqing chaos` share.

Each service runs as `qinqing <service> serve` in an OS process of its own on a loopback port,
in fresh schemas and a fresh topic namespace; a process can be killed and started again on
the same port. The driver registers made-up insured persons through identity's API, sets the
review policy and uploads the materials every flow attaches; `FlowWatch` follows the flows'
events on the three topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO, Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.envelope import event_type
from contracts.id_number import check_char, parse_id_number
from contracts.vocabulary import BindingKind, Relation
from services.bench.common import BenchError
from services.binding.rules import Method
from services.demo.people import NANCHANG_DISTRICT, Person, household_page_pdf, signature_png
from services.demo.stack import SERVICES, migrate_stack
from services.review.events import CaseType, ReviewMode
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role
from services.runtime.settings import Settings

START_TIMEOUT_S = 60.0  # a service process not ready this long after its start fails the run
STOP_TIMEOUT_S = 20.0  # after SIGTERM, then SIGKILL
MEMBERS_PER_HOLDER = 5  # the family account's limit
ID_REGION = "360121"  # 南昌县: a county code valid in every birth year used below
POLICY_REGION = "36"  # Jiangxi: every holder is insured in Nanchang (360102)
_SURNAMES = "李王张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
_QUIET = ("uvicorn.access", "uvicorn.error", "faststream", "faststream.access.kafka", "httpx")
# The events a flow passes through, watched on the three topics: stage name by CloudEvents
# type. Identity's face-check events carry the check id; its request is the check's
# `correlation_id`, which `FaceCheckRequested` carries.
STAGES = {
    event_type("binding", "MemberBindRequested", 1): "requested",
    event_type("binding", "BindingMaterialsSubmitted", 1): "submitted",
    event_type("binding", "BindingFaceVerified", 1): "face_recorded",
    event_type("binding", "BindingMaterialsApproved", 1): "approval_recorded",
    event_type("binding", "MemberBound", 1): "bound",
    event_type("binding", "BindingRejected", 1): "rejected",
    event_type("identity", "FaceCheckRequested", 1): "face_check_opened",
    event_type("identity", "FaceVerified", 1): "face_verified",
    event_type("review", "MaterialsApproved", 1): "review_approved",
}
ENDS = ("bound", "rejected")  # the stages that end a flow


# ---------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Insured:
    person: Person
    id_number: str
    pseudonym: str = ""


def people(
    count: int, today: date, *, first: date = date(1946, 1, 1), days: int = 20_000, start: int = 0
) -> list[Insured]:
    """`count` made-up persons born within `days` from `first`, each with a valid ID number of
    their own birth date; `start` numbers them on (names and roles differ between groups)."""
    dates = days // 11  # birth dates 11 days apart before the sequence number moves on
    found: list[Insured] = []
    for k in range(count):
        born = first + timedelta(days=(k * 11) % days)
        sequence = (k // dates) * 2 + k % 2  # its parity is the sex: odd for men
        body = f"{ID_REGION}{born:%Y%m%d}{sequence:03d}"
        number = body + check_char(body)
        parse_id_number(number, today)  # a generator bug stops the run before any request
        n = start + k
        name = (
            _SURNAMES[n % len(_SURNAMES)]
            + _GIVEN[(n // len(_SURNAMES)) % len(_GIVEN)]
            + _GIVEN[(n * 7) % len(_GIVEN)]
        )
        found.append(Insured(Person(f"p{n}", name, born, female=k % 2 == 0), number))
    return found


# ---------------------------------------------------------------------------- the services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:].strip()


@dataclass
class Child:
    """One service's process: its command line and environment, so that it can be killed and
    started again on the same port."""

    service: str
    port: int
    command: list[str]
    env: dict[str, str]
    log: IO[bytes]  # its stderr, for the reason when it fails
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the process was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def failure(self, what: str) -> BenchError:
        code = None if self.process is None else self.process.returncode
        return BenchError(f"the {self.service} service {what} (exit {code}): {_tail(self.log)}")

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    async def ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise self.failure("exited while starting")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise self.failure(f"was not ready {timeout_s:.0f} s after its start")

    async def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or closed."""
        if self.process is not None and self.running:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass(frozen=True)
class Services:
    """Where the driver finds the three services; `children` when each runs in a process of
    its own, empty when they run in this process."""

    urls: dict[str, str]  # service -> http://127.0.0.1:<port>
    schemas: dict[str, str]
    namespace: str
    kafka: str  # bootstrap servers
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def pids(self) -> dict[str, int]:
        return {service: child.pid for service, child in self.children.items()}


def serve_command(service: str) -> list[str]:
    """How a deployment starts `service` (ports and schema are added)."""
    return [sys.executable, "-m", "services.cli", service, "serve"]


@asynccontextmanager
async def own_processes(
    settings: Settings,
    namespace: str,
    schemas: dict[str, str],
    commands: Mapping[str, Sequence[str]] | None = None,
) -> AsyncIterator[Services]:
    """Migrate, then start each service in a subprocess (`serve_command`, or the command given
    in `commands`; its settings from the environment, as the deployment runs them) and wait
    until each is ready; SIGTERM to each when the block ends. A service that is not running
    then (it died, and nobody started it again) fails the block."""
    await migrate_stack(settings.database_url, schemas)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "QINQING_TOPIC_NAMESPACE": namespace,
        "QINQING_LOG_LEVEL": "WARNING",
    }
    children: dict[str, Child] = {}
    with contextlib.ExitStack() as logs:
        try:
            for service in SERVICES:
                port = free_port()
                command = [
                    *(commands or {}).get(service, serve_command(service)),
                    "--port", str(port), "--schema", schemas[service],
                ]  # fmt: skip
                log = logs.enter_context(tempfile.TemporaryFile())
                children[service] = Child(service, port, command, env, log)
                await children[service].start()
            await asyncio.gather(*(child.ready() for child in children.values()))
            yield Services(
                {service: child.url for service, child in children.items()},
                schemas,
                namespace,
                settings.kafka_bootstrap_servers,
                children=children,
            )
            for child in children.values():
                if not child.running:
                    raise child.failure("exited while the flows ran")
        finally:
            await asyncio.gather(*(child.stop() for child in children.values()))


@contextlib.contextmanager
def quiet_loggers(*more: str) -> Iterator[None]:
    """The libraries' per-request and per-message lines (and the loggers `more`) off while the
    flows run: FastStream's brokers set their access logger's level when they start (and log
    every message at INFO there), so the loggers are disabled rather than raised."""
    names = (*_QUIET, *more)
    saved = {name: logging.getLogger(name).disabled for name in names}
    for name in names:
        logging.getLogger(name).disabled = True
    try:
        yield
    finally:
        for name, disabled in saved.items():
            logging.getLogger(name).disabled = disabled


async def drop_topics(bootstrap: str, namespace: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(f"{namespace}.")]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


# ---------------------------------------------------------------------------- watching Kafka


async def assigned_partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`; BenchError if a topic has none (it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assigned = [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        for p in t.get("partitions", [])
    ]
    if {tp.topic for tp in assigned} != set(topics):
        raise BenchError(f"not every topic of {topics} has partitions")
    return assigned


# Told of each face check a bind request opened: (check id, request id, subject's pseudonym).
FaceCheckHook = Callable[[str, str, str], None]


class FlowWatch:
    """A consumer of the three topics (no group, from their ends): when each request reached
    each stage, as `time.perf_counter()` on arrival, and waiters for its end (`MemberBound` or
    `BindingRejected`). `on_face_check` hears of every face check opened for a request."""

    def __init__(
        self, bootstrap: str, topics: list[str], on_face_check: FaceCheckHook | None = None
    ) -> None:
        self.topics, self.bootstrap = topics, bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self.on_face_check = on_face_check
        self.stages: dict[str, dict[str, float]] = defaultdict(dict)
        self.published_ms: dict[str, int] = {}  # request id -> MemberBound's record timestamp
        self.ends: list[float] = []  # arrival of every flow's end, in order
        self.messages = 0
        self._checks: dict[str, str] = {}  # face check id -> request id
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assigned = await assigned_partitions(self.bootstrap, self.topics)
        await self.consumer.start()
        self.consumer.assign(assigned)
        await self.consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the end offsets now, before any flow starts
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            arrived = time.perf_counter()
            for records in batch.values():
                for record in records:
                    self.messages += 1
                    self._seen(record.headers, record.value, record.timestamp, arrived)

    def _seen(self, headers: Any, value: bytes | None, timestamp: int, arrived: float) -> None:
        ce_type = next((v for k, v in headers if k == "ce_type"), b"").decode()
        stage = STAGES.get(ce_type)
        if stage is None or value is None:
            return
        data = json.loads(value)
        if stage == "face_check_opened":
            check_id, request_id = str(data["check_id"]), str(data["correlation_id"])
            self._checks[check_id] = request_id
            if self.on_face_check is not None:
                self.on_face_check(check_id, request_id, str(data["subject"]))
        elif stage == "face_verified":
            request_id = self._checks.get(str(data["check_id"]), "")
        else:
            request_id = str(data["request_id"])
        seen = self.stages[request_id]
        if stage in seen:
            return  # delivered again (the relay publishes at least once): the first counts
        seen[stage] = arrived
        if stage in ENDS:
            self.ends.append(arrived)
            if stage == "bound":
                self.published_ms[request_id] = timestamp
            waiter = self._waiters.pop(request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)

    def end_of(self, request_id: str) -> str | None:
        """ "bound" or "rejected" once its end was seen, else None."""
        seen = self.stages.get(request_id, {})
        return next((stage for stage in ENDS if stage in seen), None)

    async def ended(self, request_id: str, timeout_s: float) -> float:
        """When the request's MemberBound (or BindingRejected) arrived; TimeoutError."""
        end = self.end_of(request_id)
        if end is not None:
            return self.stages[request_id][end]
        waiter = self._waiters.setdefault(request_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


# ---------------------------------------------------------------------------- the holder's app


class Driver:
    """A holder's app for many holders: tokens issued once, one HTTP client for all."""

    def __init__(
        self, stack: Services, secret: str, concurrency: int, timeout_s: float = 60.0
    ) -> None:
        self.stack, self.secret = stack, secret
        limits = httpx.Limits(max_connections=concurrency + 20, max_keepalive_connections=None)
        self.http = httpx.AsyncClient(timeout=timeout_s, limits=limits)
        self.operator = self.token(Principal("bench-operator", Role.OPERATOR))
        self.tokens: dict[str, dict[str, str]] = {}
        self.signature = self.holder_page = self.member_page = ""

    def token(self, principal: Principal) -> dict[str, str]:
        token = issue_token(principal, timedelta(hours=2), secret=self.secret)
        return {"Authorization": f"Bearer {token}"}

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.urls[service]}{path}"

    async def register(self, person: Insured) -> Insured:
        body = {
            "name": person.person.name,
            "id_number": person.id_number,
            "insured_place": NANCHANG_DISTRICT,
        }
        answer = await self.http.post(
            self.url("identity", "/persons"), json=body, headers=self.operator
        )
        if answer.status_code != 201:
            raise BenchError(f"registering a person: {answer.status_code} {code_of(answer)}")
        pseudonym = str(answer.json()["pseudonym"])
        self.tokens[pseudonym] = self.token(Principal(pseudonym, Role.INSURED))
        return Insured(person.person, person.id_number, pseudonym)

    async def auto_approve(self) -> dict[str, Any]:
        body = {"mode": ReviewMode.AUTO_APPROVE.value}
        path = f"/policies/{POLICY_REGION}/{CaseType.MEMBER_BINDING.value}"
        answer = await self.http.put(self.url("review", path), json=body, headers=self.operator)
        if answer.status_code != 200:
            raise BenchError(f"setting the review policy: {answer.status_code} {code_of(answer)}")
        policy: dict[str, Any] = answer.json()
        return policy

    async def upload_materials(self, holder: Insured, member: Insured) -> None:
        """The signature image and both household pages, once: every flow attaches them."""
        headers = self.tokens[holder.pseudonym]

        async def upload(data: bytes, content_type: str, name: str) -> str:
            files = {"file": (name, data, content_type)}
            answer = await self.http.post(
                self.url("binding", "/materials"), files=files, headers=headers
            )
            if answer.status_code != 201:
                raise BenchError(f"uploading {name}: {answer.status_code} {code_of(answer)}")
            return str(answer.json()["sha256"])

        self.signature = await upload(signature_png("bench"), "image/png", "signature.png")
        self.holder_page = await upload(
            household_page_pdf(holder.person, holder.id_number), "application/pdf", "holder.pdf"
        )
        self.member_page = await upload(
            household_page_pdf(member.person, member.id_number), "application/pdf", "member.pdf"
        )

    @staticmethod
    def form(member: Insured, relation: Relation) -> dict[str, str]:
        """A family-account request naming the member by ID number."""
        return {
            "kind": BindingKind.FAMILY_ACCOUNT.value,
            "method": Method.ID_NUMBER.value,
            "relation": relation.value,
            "member_name": member.person.name,
            "member_id_number": member.id_number,
        }

    def material_calls(self, request_id: str) -> tuple[tuple[str, str, dict[str, str]], ...]:
        """The holder's calls after the request, (name, path, body) each: sign the letter with
        the uploaded signature, then submit both household pages."""
        return (
            ("sign", f"/bindings/{request_id}/commitment-letter/signature",
             {"signature_sha256": self.signature}),
            ("submit", f"/bindings/{request_id}/materials",
             {"holder_household": self.holder_page, "member_household": self.member_page}),
        )  # fmt: skip

    async def close(self) -> None:
        await self.http.aclose()


def code_of(answer: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(answer.json().get("code", ""))
    return ""


async def gather_bounded(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def count_rows(conn: asyncpg.Connection, schema: str, table: str) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}'))


async def wait_for_directories(
    conn: asyncpg.Connection, schemas: dict[str, str], persons: int, timeout_s: float
) -> float:
    """Until binding's persons and review's lookups know all `persons`; the seconds it took."""
    started = time.perf_counter()
    while True:
        known = await count_rows(conn, schemas["binding"], "persons")
        looked_up = await count_rows(conn, schemas["review"], "person_lookups")
        if known >= persons and looked_up >= persons:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            raise BenchError(
                f"after {timeout_s:.0f} s binding knows {known} and review {looked_up} of "
                f"{persons} registered persons"
            )
        await asyncio.sleep(0.2)
