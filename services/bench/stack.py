"""The three services served as deployed, and the made-up people they serve: what the flows
phase of `qinqing bench` and the fault suite of `qinqing chaos` share.

Each service runs as `qinqing <service> serve` in an OS process of its own on a loopback port,
in fresh schemas and a fresh topic namespace; a process can be killed and started again on
the same port. The holder's app that drives them is `holder_app.Driver` (it registers the
people through identity's API, sets the review policy and uploads the materials every flow
attaches); `watch.FlowWatch` follows the flows' events on the three topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from contracts.id_number import check_char, parse_id_number
from services.bench.common import BenchError
from services.demo.people import Person
from services.demo.stack import SERVICES, migrate_stack
from services.runtime.settings import Settings

START_TIMEOUT_S = 60.0  # a service process not ready this long after its start fails the run
STOP_TIMEOUT_S = 20.0  # after SIGTERM, then SIGKILL
MEMBERS_PER_HOLDER = 5  # the family account's limit
ID_REGION = "360121"  # 南昌县: a county code valid in every birth year used below
POLICY_REGION = "36"  # Jiangxi: every holder is insured in Nanchang (360102)
_SURNAMES = "李王张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
_QUIET = ("uvicorn.access", "uvicorn.error", "faststream", "faststream.access.kafka", "httpx")


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
