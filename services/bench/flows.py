"""Flows phase: complete bindings by ID number + materials through identity, binding and review.

The three services run each in an OS process of its own, as deployed: `qinqing <service>
serve` started as a subprocess, loopback HTTP, talking only through Kafka, each in a fresh
schema, in a fresh topic namespace. The full run then measures the same flows again with the
three served in this process beside the driver (`services.demo.stack.running_stack`) and
reports those under `binding_flows.in_one_process`; the quick run measures the deployed
layout only. Identity's face simulator answers at once (its default outcome: verified, no
latency), and the region's review policy auto-approves member-binding cases, so no person is
in the measured path. One flow, as a holder's app drives it:

    POST /bindings (member aged 16+, method id_number)            -> 202, waits for materials
    POST /bindings/{id}/commitment-letter/signature (uploaded PNG)  -> the letter is signed
    POST /bindings/{id}/materials (both household pages, uploaded)  -> waits for review + face

then binding -> Kafka -> review opens the case, auto-approves -> Kafka -> binding; and
binding -> Kafka -> identity opens the member's face check, the simulator verifies it -> Kafka
-> binding; binding records `MemberBound` and relays it. A flow's latency runs from just before
its POST to the moment a Kafka consumer of binding's topic, in this process, receives that
`MemberBound` (the bound state as published on Kafka); nothing polls the HTTP API.

Setup is untimed: registering holders (5 members each) and members through identity's API,
waiting until binding's persons directory and review's lookups know every one, uploading the
signature and the two household pages once (content-addressed: every flow attaches the same
hashes), the policy, and a few warm-up flows. Then the flows run closed-loop with a bounded
number in flight. Beside the three figures the phase reports where the time goes: CPU seconds
of each service's process and of the driver (this process; in the one-process layout, this
process alone, services and driver, so at most one core) and of the PostgreSQL and Kafka
processes, machine-wide CPU use, HTTP time per call, events, inbox rows and database
transactions per flow, and the median time of each stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.envelope import event_type
from services.bench.common import FLOW_TARGETS, BenchConfig, BenchError, Say, rate
from services.binding.handlers import china_today
from services.binding.rules import BindingKind, Method, Relation
from services.demo.people import NANCHANG_DISTRICT, Person, household_page_pdf, signature_png
from services.demo.stack import SERVICES, drop_stack, migrate_stack, running_stack
from services.identity.id_number import check_char, parse_id_number
from services.review.events import CaseType, ReviewMode
from services.runtime.auth import Principal, Role, issue_token, jwt_secret
from services.runtime.settings import Settings

IDLE_S = 2.0  # how long the idle stack's own CPU use is measured before the flows
START_TIMEOUT_S = 60.0  # a service process not ready this long after its start fails the phase
STOP_TIMEOUT_S = 20.0  # after SIGTERM, then SIGKILL
PER_SERVICE, IN_ONE_PROCESS = "process_per_service", "in_one_process"
_SERVED = {
    PER_SERVICE: "each served in an OS process of its own (`qinqing <service> serve`, as "
    "deployed; the driver in another)",
    IN_ONE_PROCESS: "served in one Python process together with the driver",
}
MEMBERS_PER_HOLDER = 5  # the family account's limit: every holder binds exactly this many
ID_REGION = "360121"  # 南昌县: a county code valid in every birth year used below
POLICY_REGION = "36"  # Jiangxi: every holder is insured in Nanchang (360102)
_SURNAMES = "李王张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
_RELATIONS = (
    Relation.PARENT,
    Relation.SPOUSE,
    Relation.CHILD,
    Relation.SIBLING,
    Relation.GRANDPARENT,
)
# The events a flow passes through, watched on the three topics: stage name by CloudEvents
# type. Identity's face-check events carry the check id; its request is the check's
# `correlation_id`, which `FaceCheckRequested` carries.
_STAGES = {
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
# The hops of a flow, each from one stage (or HTTP call) to the next as seen on Kafka.
_HOPS = (
    ("post_to_requested", "post", "requested"),
    ("requested_to_face_check_opened", "requested", "face_check_opened"),
    ("face_check_opened_to_face_verified", "face_check_opened", "face_verified"),
    ("face_verified_to_face_recorded", "face_verified", "face_recorded"),
    ("post_to_submit_done", "post", "submit_done"),
    ("submit_done_to_submitted", "submit_done", "submitted"),
    ("submitted_to_review_approved", "submitted", "review_approved"),
    ("review_approved_to_approval_recorded", "review_approved", "approval_recorded"),
    ("submit_done_to_bound", "submit_done", "bound"),
)
_CALLS = ("request", "sign", "submit")  # the HTTP calls of one flow, in order
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_QUIET = ("uvicorn.access", "uvicorn.error", "faststream", "faststream.access.kafka")

DEFINITION = (
    "complete bindings by ID number + materials (family account, member aged 16+) through "
    "identity, binding and review {served}, over loopback HTTP, talking only "
    "through Kafka (fresh schemas and topics): POST /bindings, sign the commitment letter with "
    "an uploaded signature, submit both household pages; binding -> review (policy "
    "auto_approve for member_binding, so no reviewer) -> binding, and binding -> identity "
    "(the member's face check, simulator answering at once) -> binding -> MemberBound. Latency: "
    "from just before the POST to the arrival of that MemberBound at a Kafka consumer of "
    "binding's topic in the driver's process (bound as published on Kafka). Closed loop: "
    "{concurrency} flows in flight, {flows} flows after {warmup} warm-up flows; holders with "
    "5 members each, a holder's flows never in flight together; flows/s = flows / seconds from "
    "the first POST to the last MemberBound"
)


# ---------------------------------------------------------------------------- people


@dataclass(frozen=True)
class _Insured:
    person: Person
    id_number: str
    pseudonym: str = ""


def _people(count: int, today: date) -> list[_Insured]:
    """`count` made-up adults (16+), each with a valid ID number of their own birth date."""
    first = date(1946, 1, 1)
    people: list[_Insured] = []
    for k in range(count):
        born = first + timedelta(days=(k * 11) % 20_000)  # 1946..2000: distinct to 1,818
        sequence = (k // 1818) * 2 + k % 2
        body = f"{ID_REGION}{born:%Y%m%d}{sequence:03d}"
        number = body + check_char(body)
        parse_id_number(number, today)  # a generator bug stops the bench before any request
        name = (
            _SURNAMES[k % len(_SURNAMES)]
            + _GIVEN[(k // len(_SURNAMES)) % len(_GIVEN)]
            + _GIVEN[(k * 7) % len(_GIVEN)]
        )
        people.append(_Insured(Person(f"p{k}", name, born, female=k % 2 == 0), number))
    return people


# ---------------------------------------------------------------------------- measuring


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def _summary_ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = [s * 1000 for s in seconds]
    return {
        "p50": round(_percentile(ms, 50), 2),
        "p99": round(_percentile(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2),
        "max": round(max(ms), 2),
    }


def _proc_cpu(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of proc(5)


def _processes(match: Callable[[str, str], bool]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if match(comm, cmdline):
            pids.append(int(entry.name))
    return pids


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0, 0
    values = [int(v) for v in first[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class _CpuMeter:
    """CPU seconds used between start and stop by this process (`this_process` when it serves
    the services too, else `driver`), each service's own process (`pids`: service -> pid),
    and PostgreSQL's and Kafka's processes."""

    pids: dict[str, int] = field(default_factory=dict)
    started: dict[str, dict[int, float]] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)
    wall: float = 0.0

    def _groups(self) -> dict[str, list[int]]:
        ours = {"driver" if self.pids else "this_process": [os.getpid()]}
        return {
            **ours,
            **{service: [pid] for service, pid in self.pids.items()},
            "postgres": _processes(lambda comm, _: comm.startswith("postgres")),
            "kafka": _processes(lambda _, cmd: "kafka.Kafka" in cmd),
        }

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for group, pids in self._groups().items():
            sample[group] = {p: c for p in pids if (c := _proc_cpu(p)) is not None}
        return sample

    def start(self) -> None:
        self.started, self.machine, self.wall = (
            self._sample(),
            _machine_jiffies(),
            time.perf_counter(),
        )

    def stop(self, flows: int) -> dict[str, Any]:
        ended, machine = self._sample(), _machine_jiffies()
        wall = time.perf_counter() - self.wall
        used = {
            group: sum(cpu - self.started[group].get(pid, 0.0) for pid, cpu in pids.items())
            for group, pids in ended.items()
        }
        busy, total = (machine[0] - self.machine[0], machine[1] - self.machine[1])
        cores = os.cpu_count() or 1
        return {
            "seconds": round(wall, 2),
            "cpu_s": {group: round(s, 2) for group, s in used.items()},
            "cores_busy": {group: round(s / wall, 2) for group, s in used.items()} if wall else {},
            "cpu_ms_per_flow": {
                group: round(s / flows * 1000, 2) for group, s in used.items()
            } if flows else {},
            "machine_busy_fraction": round(busy / total, 3) if total else None,
            "machine_cores": cores,
        }  # fmt: skip


class _BoundWatch:
    """A consumer of the three topics (no group, from their ends): when each request reached
    each stage, as `time.perf_counter()` on arrival, and waiters for `MemberBound`."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.topics, self.bootstrap = topics, bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self.stages: dict[str, dict[str, float]] = defaultdict(dict)
        self.published_ms: dict[str, int] = {}  # request id -> MemberBound's record timestamp
        self.messages = 0
        self._checks: dict[str, str] = {}  # face check id -> request id
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(self.topics)
        finally:
            await admin.close()
        assigned = [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            for p in t.get("partitions", [])
        ]
        if {tp.topic for tp in assigned} != set(self.topics):
            raise BenchError(f"not every topic of {self.topics} has partitions")
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
        stage = _STAGES.get(ce_type)
        if stage is None or value is None:
            return
        data = json.loads(value)
        if stage == "face_check_opened":
            self._checks[str(data["check_id"])] = str(data["correlation_id"])
            request_id = str(data["correlation_id"])
        elif stage == "face_verified":
            request_id = self._checks.get(str(data["check_id"]), "")
        else:
            request_id = str(data["request_id"])
        self.stages[request_id].setdefault(stage, arrived)
        if stage in ("bound", "rejected"):
            if stage == "bound":
                self.published_ms[request_id] = timestamp
            waiter = self._waiters.pop(request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)

    async def ended(self, request_id: str, timeout_s: float) -> float:
        """When the request's MemberBound (or BindingRejected) arrived; TimeoutError."""
        seen = self.stages.get(request_id, {})
        if "bound" in seen or "rejected" in seen:
            return seen.get("bound", seen.get("rejected", 0.0))
        waiter = self._waiters.setdefault(request_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


class _HorizonSampler:
    """Every relay reads only events of transactions below the oldest transaction still
    running in the whole cluster (`pg_snapshot_xmin`), so any open transaction holding an xid
    delays every service's publishing. Sampled every `interval_s` while the flows run."""

    SQL = (
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0)::float8,"
        " count(*)::int,"
        " (pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        "  - pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"
        " FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    )

    def __init__(self, conn: asyncpg.Connection, interval_s: float = 0.1) -> None:
        self.conn, self.interval_s = conn, interval_s
        self.oldest_s: list[float] = []
        self.with_xid: list[int] = []
        self.window: list[int] = []
        self.loop_lag_s: list[float] = []  # how late a sleep of interval_s woke up
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            row = await self.conn.fetchrow(self.SQL)
            if row is not None:
                self.oldest_s.append(row[0])
                self.with_xid.append(row[1])
                self.window.append(row[2])
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.loop_lag_s.append(max(0.0, time.perf_counter() - before - self.interval_s))

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.oldest_s:
            return {}
        return {
            "definition": "sampled every 0.1 s over the whole cluster while the flows ran: the "
            "age of the oldest transaction holding an xid (no relay can publish an event "
            "committed after it began until it ends), how many transactions held one, and "
            "xmax - xmin of the current snapshot",
            "samples": len(self.oldest_s),
            "oldest_transaction_ms": _summary_ms(self.oldest_s),
            "transactions_with_xid": {
                "p50": _percentile([float(n) for n in self.with_xid], 50),
                "max": max(self.with_xid),
            },
            "snapshot_xid_window": {
                "p50": _percentile([float(n) for n in self.window], 50),
                "max": max(self.window),
            },
            "event_loop_lag_ms": _summary_ms(self.loop_lag_s),
        }


async def _primitives(
    conn: asyncpg.Connection, schema: str, bootstrap: str, topic: str, samples: int
) -> dict[str, Any]:
    """What one consumed message costs at least, measured alone after the flows: a one-row
    transaction (as the inbox's; synchronous_commit as configured) and a Kafka offset commit
    (FastStream's manual ack commits after every message)."""
    table = f'"{schema}".bench_probe'
    await conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY)")
    commits: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES ($1)", uuid.uuid4())
        commits.append(time.perf_counter() - started)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"{topic}.bench-probe", enable_auto_commit=False
    )
    offsets: list[float] = []
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        position = await consumer.position(partition)
        for _ in range(samples):
            started = time.perf_counter()
            await consumer.commit({partition: position})
            offsets.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
    setting = await conn.fetchval("SELECT current_setting('synchronous_commit')")
    return {
        "definition": f"{samples} one-row INSERT transactions in a fresh table and {samples} "
        "Kafka consumer offset commits, one at a time with nothing else running",
        "postgres_commit_ms": _summary_ms(commits),
        "synchronous_commit": setting,
        "kafka_offset_commit_ms": _summary_ms(offsets),
    }


# ---------------------------------------------------------------------------- the services


@dataclass(frozen=True)
class _Services:
    """Where the driver finds the three services; `pids` (service -> pid) when each runs in a
    process of its own, empty when they run in this process."""

    urls: dict[str, str]  # service -> http://127.0.0.1:<port>
    schemas: dict[str, str]
    namespace: str
    kafka: str  # bootstrap servers
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def layout(self) -> str:
        return PER_SERVICE if self.pids else IN_ONE_PROCESS


@asynccontextmanager
async def _in_this_process(
    settings: Settings, namespace: str, schemas: dict[str, str]
) -> AsyncIterator[_Services]:
    async with running_stack(
        settings.database_url,
        settings.kafka_bootstrap_servers,
        namespace=namespace,
        schemas=schemas,
        face_latency_s=0.0,
    ) as stack:
        yield _Services(stack.urls, stack.schemas, stack.namespace, stack.kafka)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:].strip()


@dataclass
class _Child:
    service: str
    url: str
    process: asyncio.subprocess.Process
    log: IO[bytes]  # its stderr, for the reason when it fails

    def failure(self, what: str) -> BenchError:
        return BenchError(
            f"the {self.service} service {what} (exit {self.process.returncode}): {_tail(self.log)}"
        )

    async def ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise self.failure("exited while starting")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise self.failure(f"was not ready {timeout_s:.0f} s after its start")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@asynccontextmanager
async def _own_processes(
    settings: Settings, namespace: str, schemas: dict[str, str]
) -> AsyncIterator[_Services]:
    """Migrate, then start `qinqing <service> serve` for each service in a subprocess (as the
    deployment runs them: one process per service, its settings from the environment) and
    wait until each is ready; SIGTERM to each when the block ends."""
    await migrate_stack(settings.database_url, schemas)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "QINQING_TOPIC_NAMESPACE": namespace,
        "QINQING_LOG_LEVEL": "WARNING",
    }
    children: list[_Child] = []
    with contextlib.ExitStack() as logs:
        try:
            for service in SERVICES:
                port = _free_port()
                command = [
                    sys.executable, "-m", "services.cli", service, "serve",
                    "--port", str(port), "--schema", schemas[service],
                ]  # fmt: skip
                log = logs.enter_context(tempfile.TemporaryFile())
                process = await asyncio.create_subprocess_exec(
                    *command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                children.append(_Child(service, f"http://127.0.0.1:{port}", process, log))
            await asyncio.gather(*(child.ready(START_TIMEOUT_S) for child in children))
            yield _Services(
                {child.service: child.url for child in children},
                schemas,
                namespace,
                settings.kafka_bootstrap_servers,
                pids={child.service: child.process.pid for child in children},
            )
            for child in children:  # a service that died mid-run fails the phase
                if child.process.returncode is not None:
                    raise child.failure("exited while the flows ran")
        finally:
            await asyncio.gather(*(child.stop() for child in children))


# ---------------------------------------------------------------------------- the phase


@dataclass
class _Run:
    """What the timed flows left: per flow its start and end, per call its seconds."""

    starts: dict[str, float] = field(default_factory=dict)  # request id -> perf_counter
    starts_wall: dict[str, float] = field(default_factory=dict)  # request id -> time.time()
    submitted: dict[str, float] = field(default_factory=dict)  # request id -> last call done
    latencies: dict[str, float] = field(default_factory=dict)  # request id -> seconds
    calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    incomplete: int = 0
    rejected: int = 0
    first_start: float | None = None
    last_end: float = 0.0


class _Driver:
    """A holder's app for many holders: tokens issued once, one HTTP client for all."""

    def __init__(self, stack: _Services, secret: str, concurrency: int) -> None:
        self.stack, self.secret = stack, secret
        limits = httpx.Limits(max_connections=concurrency + 20, max_keepalive_connections=None)
        self.http = httpx.AsyncClient(timeout=60, limits=limits)
        self.operator = self._token(Principal("bench-operator", Role.OPERATOR))
        self.tokens: dict[str, dict[str, str]] = {}
        self.signature = self.holder_page = self.member_page = ""

    def _token(self, principal: Principal) -> dict[str, str]:
        token = issue_token(principal, timedelta(hours=2), secret=self.secret)
        return {"Authorization": f"Bearer {token}"}

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.urls[service]}{path}"

    async def register(self, person: _Insured) -> _Insured:
        body = {
            "name": person.person.name,
            "id_number": person.id_number,
            "insured_place": NANCHANG_DISTRICT,
        }
        answer = await self.http.post(
            self.url("identity", "/persons"), json=body, headers=self.operator
        )
        if answer.status_code != 201:
            raise BenchError(f"registering a person: {answer.status_code} {_code(answer)}")
        pseudonym = str(answer.json()["pseudonym"])
        self.tokens[pseudonym] = self._token(Principal(pseudonym, Role.INSURED))
        return _Insured(person.person, person.id_number, pseudonym)

    async def auto_approve(self) -> dict[str, Any]:
        body = {"mode": ReviewMode.AUTO_APPROVE.value}
        path = f"/policies/{POLICY_REGION}/{CaseType.MEMBER_BINDING.value}"
        answer = await self.http.put(self.url("review", path), json=body, headers=self.operator)
        if answer.status_code != 200:
            raise BenchError(f"setting the review policy: {answer.status_code} {_code(answer)}")
        policy: dict[str, Any] = answer.json()
        return policy

    async def upload_materials(self, holder: _Insured, member: _Insured) -> None:
        """The signature image and both household pages, once: every flow attaches them."""
        headers = self.tokens[holder.pseudonym]

        async def upload(data: bytes, content_type: str, name: str) -> str:
            files = {"file": (name, data, content_type)}
            answer = await self.http.post(
                self.url("binding", "/materials"), files=files, headers=headers
            )
            if answer.status_code != 201:
                raise BenchError(f"uploading {name}: {answer.status_code} {_code(answer)}")
            return str(answer.json()["sha256"])

        self.signature = await upload(signature_png("bench"), "image/png", "signature.png")
        self.holder_page = await upload(
            household_page_pdf(holder.person, holder.id_number), "application/pdf", "holder.pdf"
        )
        self.member_page = await upload(
            household_page_pdf(member.person, member.id_number), "application/pdf", "member.pdf"
        )

    async def flow(
        self,
        holder: _Insured,
        member: _Insured,
        relation: Relation,
        *,
        watch: _BoundWatch,
        run: _Run,
        timeout_s: float,
    ) -> None:
        """One complete flow; its latency (or why it has none) goes into `run`."""
        headers = self.tokens[holder.pseudonym]
        form = {
            "kind": BindingKind.FAMILY_ACCOUNT.value,
            "method": Method.ID_NUMBER.value,
            "relation": relation.value,
            "member_name": member.person.name,
            "member_id_number": member.id_number,
        }
        started, started_wall = time.perf_counter(), time.time()
        if run.first_start is None:
            run.first_start = started
        answer = await self.http.post(
            self.url("binding", "/bindings"),
            json=form,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        done = time.perf_counter()
        run.calls["request"].append(done - started)
        if answer.status_code != 202:
            run.errors[f"request {answer.status_code} {_code(answer)}"] += 1
            return
        request_id = str(answer.json()["request_id"])
        run.starts[request_id], run.starts_wall[request_id] = started, started_wall
        steps = (
            ("sign", f"/bindings/{request_id}/commitment-letter/signature",
             {"signature_sha256": self.signature}),
            ("submit", f"/bindings/{request_id}/materials",
             {"holder_household": self.holder_page, "member_household": self.member_page}),
        )  # fmt: skip
        for call, path, body in steps:
            before = time.perf_counter()
            answer = await self.http.post(self.url("binding", path), json=body, headers=headers)
            done = time.perf_counter()
            run.calls[call].append(done - before)
            if answer.status_code != 200:
                run.errors[f"{call} {answer.status_code} {_code(answer)}"] += 1
                return
        run.submitted[request_id] = done
        try:
            ended = await watch.ended(request_id, max(0.0, started + timeout_s - done))
        except TimeoutError:
            run.incomplete += 1
            return
        if "bound" not in watch.stages[request_id]:
            run.rejected += 1
            return
        run.latencies[request_id] = ended - started
        run.last_end = max(run.last_end, ended)

    async def flows(
        self,
        planned: list[tuple[_Insured, _Insured, Relation]],
        in_flight: int,
        *,
        watch: _BoundWatch,
        timeout_s: float,
    ) -> _Run:
        """Run `planned` flows, at most `in_flight` at once and one at a time per holder (as
        one holder's app would; concurrent flows of one holder would mostly measure retries
        on the holder's stream). A flow waiting for its holder holds no slot."""
        run, gate = _Run(), asyncio.Semaphore(in_flight)
        holder_busy: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

        async def one(holder: _Insured, member: _Insured, relation: Relation) -> None:
            async with holder_busy[holder.pseudonym], gate:
                await self.flow(holder, member, relation, watch=watch, run=run, timeout_s=timeout_s)

        await asyncio.gather(*(one(*flow) for flow in planned))
        return run

    async def close(self) -> None:
        await self.http.aclose()


def _code(answer: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(answer.json().get("code", ""))
    return ""


async def _gather_bounded(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def _count(conn: asyncpg.Connection, schema: str, table: str) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}'))


async def _wait_for_directories(
    conn: asyncpg.Connection, schemas: dict[str, str], people: int, timeout_s: float
) -> float:
    """Until binding's persons and review's lookups know all `people`; the seconds it took."""
    started = time.perf_counter()
    while True:
        known = await _count(conn, schemas["binding"], "persons")
        looked_up = await _count(conn, schemas["review"], "person_lookups")
        if known >= people and looked_up >= people:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            raise BenchError(
                f"after {timeout_s:.0f} s binding knows {known} and review {looked_up} of "
                f"{people} registered persons"
            )
        await asyncio.sleep(0.2)


async def _counts(conn: asyncpg.Connection, schemas: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for service, schema in schemas.items():
        counts[f"{service}_events"] = await _count(conn, schema, "events")
        counts[f"{service}_inbox"] = await _count(conn, schema, "inbox")
    counts["xact_commit"] = int(
        await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    )
    return counts


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The libraries' per-request and per-message lines off while the phase runs: FastStream's
    brokers set their access logger's level when they start (and log every message at INFO
    there), so the loggers are disabled rather than raised."""
    saved = {name: logging.getLogger(name).disabled for name in _QUIET}
    for name in _QUIET:
        logging.getLogger(name).disabled = True
    try:
        yield
    finally:
        for name, disabled in saved.items():
            logging.getLogger(name).disabled = disabled


async def _drop_topics(bootstrap: str, namespace: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(f"{namespace}.")]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def flow_schemas(base: str) -> dict[str, str]:
    return {service: f"{base}_f_{service}" for service in SERVICES}


def layouts(cfg: BenchConfig) -> tuple[str, ...]:
    """The layouts a run measures, the reported one first: the full run both, any other run
    (quick, the smoke test) only the deployed one, one process per service."""
    return (PER_SERVICE, IN_ONE_PROCESS) if cfg.mode == "full" else (PER_SERVICE,)


async def flow_figures(
    cfg: BenchConfig, settings: Settings, base: str, say: Say
) -> dict[str, dict[str, Any]]:
    """The three flow figures and the phase's details with one process per service, in schemas
    `<base>_f_<service>` and topics `<base>.<service>.v1` (`base` without its `_`); in the full
    run, also the figures with the three services in this process, under
    `binding_flows.in_one_process` (schemas `<base>_1_f_<service>`). All dropped afterwards."""
    first, *more = layouts(cfg)
    figures = await _phase(cfg, settings, base, say, first)
    for n, layout in enumerate(more, start=1):
        other = await _phase(cfg, settings, f"{base}_{n}", say, layout)
        figures["binding_flows"][layout] = {
            **{key: other[key]["value"] for key in FLOW_TARGETS},
            **other["binding_flows"],
        }
    return figures


async def _phase(
    cfg: BenchConfig, settings: Settings, base: str, say: Say, layout: str
) -> dict[str, dict[str, Any]]:
    schemas = flow_schemas(base)
    namespace = base.replace("_", "")
    bootstrap = settings.kafka_bootstrap_servers
    serve = _own_processes if layout == PER_SERVICE else _in_this_process
    say(f"flows: identity, binding and review {_SERVED[layout].split(' (')[0]}")
    try:
        with _quiet_loggers():
            async with serve(settings, namespace, schemas) as services:
                return await _measure(services, cfg, settings, say)
    finally:
        with contextlib.suppress(Exception):
            await drop_stack(settings.database_url, schemas)
        with contextlib.suppress(Exception):
            await _drop_topics(bootstrap, namespace)


async def _measure(
    stack: _Services, cfg: BenchConfig, settings: Settings, say: Say
) -> dict[str, dict[str, Any]]:
    # Three groups of flows, each with holders of its own: timed, warm-up, one at a time.
    sizes = (cfg.flows, cfg.flow_warmup, cfg.flow_alone)
    holder_counts = [-(-n // MEMBERS_PER_HOLDER) for n in sizes]
    holders_n, flows = sum(holder_counts), cfg.flows
    today = china_today(datetime.now(UTC))
    people = _people(holders_n + sum(sizes), today)
    driver = _Driver(stack, jwt_secret(settings), cfg.flow_concurrency)
    conn = await asyncpg.connect(settings.database_url)
    watch = _BoundWatch(stack.kafka, [f"{stack.namespace}.{s}.v1" for s in SERVICES])
    try:
        say(f"flows: registering {len(people):,} persons through identity ({holders_n} holders)")
        began = time.perf_counter()
        registered = await _gather_bounded(
            cfg.flow_registrations_in_flight, [driver.register(p) for p in people]
        )
        register_s = time.perf_counter() - began
        directory_s = await _wait_for_directories(
            conn, stack.schemas, len(people), cfg.flow_timeout_s * 2
        )
        say(
            f"flows: registered in {register_s:.1f} s ({rate(len(people), register_s):.0f}/s); "
            f"binding and review knew them {directory_s:.1f} s later"
        )
        policy = await driver.auto_approve()
        holders, members = registered[:holders_n], registered[holders_n:]
        await driver.upload_materials(holders[0], members[0])
        await watch.start()

        def plan(group: int) -> list[tuple[_Insured, _Insured, Relation]]:
            # Flow i: holder i mod n_holders, so one holder's flows are n_holders apart.
            first_holder, first_member = sum(holder_counts[:group]), sum(sizes[:group])
            n_holders = holder_counts[group]
            return [
                (
                    holders[first_holder + i % n_holders],
                    members[first_member + i],
                    _RELATIONS[(i // n_holders) % len(_RELATIONS)],
                )
                for i in range(sizes[group])
            ]

        idle_cpu = await _idle_cpu(stack.pids)
        if cfg.flow_warmup:
            say(f"flows: {cfg.flow_warmup} warm-up flows")
            warm = await driver.flows(
                plan(1), cfg.flow_concurrency, watch=watch, timeout_s=cfg.flow_timeout_s
            )
            _all_bound(warm, cfg.flow_warmup, "warm-up")
        alone = await _one_at_a_time(driver, plan(2), watch, cfg.flow_timeout_s, say)
        say(f"flows: {flows:,} flows, {cfg.flow_concurrency} in flight")
        before = await _counts(conn, stack.schemas)
        meter, horizon = _CpuMeter(stack.pids), _HorizonSampler(conn)
        meter.start()
        horizon.start()
        load_start = _load_average()
        run = await driver.flows(
            plan(0),
            cfg.flow_concurrency,
            watch=watch,
            timeout_s=cfg.flow_timeout_s,
        )
        cpu = meter.stop(len(run.latencies))
        load_end = _load_average()
        cpu["read_horizon"] = await horizon.stop()
        after = await _counts(conn, stack.schemas)
        binding_topic = f"{stack.namespace}.binding.v1"
        cpu["primitives"] = await _primitives(
            conn, stack.schemas["binding"], stack.kafka, binding_topic, samples=100
        )
        cpu["idle"] = {
            "definition": f"the stack doing nothing for {IDLE_S:g} s before the flows (relays, "
            "projections and consumers polling): cores busy",
            "cores_busy": idle_cpu["cores_busy"],
        }
        setup = {
            "one_at_a_time": alone,
            "registration_s": round(register_s, 2),
            "registrations_per_s": round(rate(len(people), register_s), 1),
            "directories_caught_up_s": round(directory_s, 2),
            "persons": len(people),
        }
        return _figures(
            cfg,
            run,
            layout=stack.layout,
            watch=watch,
            cpu=cpu,
            before=before,
            after=after,
            policy=policy,
            load=(load_start, load_end),
            setup=setup,
            say=say,
        )
    finally:
        await watch.stop()
        await driver.close()
        await conn.close()


async def _idle_cpu(pids: dict[str, int]) -> dict[str, Any]:
    idle = _CpuMeter(pids)
    idle.start()
    await asyncio.sleep(IDLE_S)
    return idle.stop(0)


def _all_bound(run: _Run, flows: int, what: str) -> None:
    if len(run.latencies) != flows:
        raise BenchError(
            f"{what}: {len(run.latencies)} of {flows} flows bound "
            f"(errors {dict(run.errors)}, incomplete {run.incomplete}, rejected {run.rejected})"
        )


async def _one_at_a_time(
    driver: _Driver,
    planned: list[tuple[_Insured, _Insured, Relation]],
    watch: _BoundWatch,
    timeout_s: float,
    say: Say,
) -> dict[str, Any]:
    """After the warm-up, a few flows one at a time: a flow's latency with nothing else going
    on, the floor under the loaded figures."""
    if not planned:
        return {}
    say(f"flows: {len(planned)} flows one at a time")
    alone = await driver.flows(planned, 1, watch=watch, timeout_s=timeout_s)
    _all_bound(alone, len(planned), "one at a time")
    return {
        "definition": "flows one in flight after the warm-up: latency and hops with nothing "
        "else running (mostly the relays' 50 ms polling, once per hop)",
        "flows": len(planned),
        "latency_ms": _summary_ms(list(alone.latencies.values())),
        "hops_p50_ms": {hop: summary.get("p50") for hop, summary in _stages(alone, watch).items()},
    }


def _load_average() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def _figures(
    cfg: BenchConfig,
    run: _Run,
    *,
    layout: str,
    watch: _BoundWatch,
    cpu: dict[str, Any],
    before: dict[str, int],
    after: dict[str, int],
    policy: dict[str, Any],
    load: tuple[list[float] | None, list[float] | None],
    setup: dict[str, Any],
    say: Say,
) -> dict[str, dict[str, Any]]:
    bound = len(run.latencies)
    if bound == 0 or run.first_start is None:
        raise BenchError(
            f"no flow was bound (errors {dict(run.errors)}, incomplete {run.incomplete})"
        )
    seconds = run.last_end - run.first_start
    per_s = rate(bound, seconds)
    latencies = list(run.latencies.values())
    p50, p99 = _percentile(latencies, 50) * 1000, _percentile(latencies, 99) * 1000
    failed = cfg.flows - bound
    valid = failed == 0
    busy = ", ".join(f"{group} {cores:.2f}" for group, cores in cpu["cores_busy"].items())
    say(
        f"flows: {per_s:,.1f} flows/s, p50 {p50:,.0f} ms, p99 {p99:,.0f} ms ({layout}); "
        f"{bound} of {cfg.flows} bound, {run.incomplete} incomplete, "
        f"{sum(run.errors.values())} refused, {run.rejected} rejected; cores busy: {busy}"
    )
    delta = {key: after[key] - before[key] for key in after}
    published = [
        watch.published_ms[r] / 1000 - run.starts_wall[r]
        for r in run.latencies
        if r in watch.published_ms
    ]
    definition = DEFINITION.format(
        served=_SERVED[layout],
        concurrency=cfg.flow_concurrency,
        flows=cfg.flows,
        warmup=cfg.flow_warmup,
    )

    def target(key: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
        rule = FLOW_TARGETS[key]
        meets = None
        if rule is not None:
            op, limit = rule
            meets = valid and (value >= limit if op == ">=" else value <= limit)
        return {
            "value": round(value, 1),
            "unit": unit,
            "target": f"{rule[0]} {rule[1]:g}" if rule else None,
            "meets_target": meets,
            "valid": valid,
            "definition": definition,
            **extra,
        }

    return {
        "binding_flows_per_s": target(
            "binding_flows_per_s", per_s, "flows/s", flows=bound, seconds=round(seconds, 3)
        ),
        "binding_flow_p50_ms": target("binding_flow_p50_ms", p50, "ms"),
        "binding_flow_p99_ms": target("binding_flow_p99_ms", p99, "ms"),
        "binding_flows": {
            "definition": definition,
            "layout": layout,
            "flows_requested": cfg.flows,
            "flows_bound": bound,
            "flows_incomplete": run.incomplete,
            "flows_refused": dict(run.errors),
            "flows_rejected": run.rejected,
            "timeout_s": cfg.flow_timeout_s,
            "in_flight": cfg.flow_concurrency,
            "warmup_flows": cfg.flow_warmup,
            "valid": valid,
            "latency_ms": _summary_ms(latencies),
            "latency_to_record_timestamp_ms": _summary_ms(published),
            "http_call_ms": {call: _summary_ms(run.calls[call]) for call in _CALLS},
            "stages_ms": _stages(run, watch),
            "cpu": cpu,
            "per_flow": _per_flow(delta, bound),
            "load_average": {"start": load[0], "end": load[1]},
            "one_at_a_time": setup.pop("one_at_a_time"),
            "setup": {
                **setup,
                "review_policy": {
                    k: policy.get(k) for k in ("region_prefix", "case_type", "mode", "version")
                },
            },
            "watched_messages": watch.messages,
        },
    }


def _stages(run: _Run, watch: _BoundWatch) -> dict[str, Any]:
    """Each hop's spread over the bound flows, from the arrival times of its two ends."""
    spans: dict[str, list[float]] = defaultdict(list)
    for request_id in run.latencies:
        seen = {
            **watch.stages[request_id],
            "post": run.starts[request_id],
            "submit_done": run.submitted[request_id],
        }
        for name, start, end in _HOPS:
            if start in seen and end in seen:
                spans[name].append(seen[end] - seen[start])
    return {name: _summary_ms(spans[name]) for name, _, _ in _HOPS}


def _per_flow(delta: dict[str, int], flows: int) -> dict[str, float]:
    per = {key: round(value / flows, 2) for key, value in delta.items() if flows}
    per["events"] = round(sum(v for k, v in delta.items() if k.endswith("_events")) / flows, 2)
    per["inbox_rows"] = round(sum(v for k, v in delta.items() if k.endswith("_inbox")) / flows, 2)
    per["database_transactions"] = per.pop("xact_commit")
    return per
