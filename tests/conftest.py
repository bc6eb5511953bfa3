"""Session fixtures for real PostgreSQL and Kafka, plus small per-test helpers.

Where the infrastructure comes from, per piece:
1. `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` when set (used as given);
2. else containers (testcontainers) when a Docker engine answers `docker info`;
3. else the local native ones, started by `services.runtime.infra.ensure_up`.
If none can be had the fixture fails the test with the reason: integration tests are
never skipped for want of infrastructure.

The resolved endpoints are exported to the process environment, so code under test that
builds `Settings()` itself talks to the same servers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.runtime import infra as local_infra
from services.runtime.settings import Settings
from tests.leaks import CAPTURED_LEAKS, id_numbers_in


@dataclass(frozen=True)
class Infra:
    database_url: str
    kafka_bootstrap: str
    database_source: str  # "env" | "docker" | "local"
    kafka_source: str  # "env" | "docker" | "local"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        subprocess.run(
            ["docker", "info"],  # noqa: S607 - whichever docker CLI is on PATH
            capture_output=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _start_containers(
    stack: ExitStack, need_db: bool, need_kafka: bool
) -> tuple[str | None, str | None]:
    db_url = bootstrap = None
    if need_db:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        pg: Any = PostgresContainer(
            "postgres:15",
            username="qinqing",
            password="qinqing",  # noqa: S106 - throwaway test container
            dbname="qinqing_test",
        )
        stack.enter_context(pg)
        db_url = pg.get_connection_url(driver=None)
    if need_kafka:
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415

        kafka: Any = KafkaContainer().with_kraft()
        stack.enter_context(kafka)
        bootstrap = kafka.get_bootstrap_server()
    return db_url, bootstrap


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    settings = Settings()
    db_env = "database_url" in settings.model_fields_set
    kafka_env = "kafka_bootstrap_servers" in settings.model_fields_set
    db_source = "env" if db_env else "local"
    kafka_source = "env" if kafka_env else "local"
    with ExitStack() as stack:
        if (not db_env or not kafka_env) and _docker_answers():
            try:
                db_url, bootstrap = _start_containers(stack, not db_env, not kafka_env)
            except Exception as exc:  # noqa: BLE001 - any container failure is reported
                pytest.fail(f"Docker answers but the test containers did not start: {exc!r}")
            update: dict[str, str] = {}
            if db_url is not None:
                update["database_url"] = db_url
                db_source = "docker"
            if bootstrap is not None:
                update["kafka_bootstrap_servers"] = bootstrap
                kafka_source = "docker"
            settings = settings.model_copy(update=update)
        try:
            endpoints = local_infra.ensure_up(settings, timeout=180)
        except local_infra.InfraError as exc:
            pytest.fail(
                "integration infrastructure unavailable (no DATABASE_URL/KAFKA_BOOTSTRAP_SERVERS, "
                f"no Docker engine, and the local services did not start): {exc}",
                pytrace=False,
            )
        db_url = endpoints.database_url
        if db_source == "local":
            db_url = local_infra.test_database_url(db_url)
        os.environ["DATABASE_URL"] = db_url
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = endpoints.kafka_bootstrap
        yield Infra(db_url, endpoints.kafka_bootstrap, db_source, kafka_source)


@pytest.fixture(scope="session")
def database_url(infra: Infra) -> str:
    return infra.database_url


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: Infra) -> str:
    return infra.kafka_bootstrap


@dataclass(frozen=True)
class LocalBroker:
    """Crash and restart the local broker (the one `qinqing infra up` started)."""

    bootstrap: str

    def kill(self) -> int:
        """SIGKILL the broker; returns its pid."""
        return local_infra.kill_kafka()

    async def start(self, timeout_s: float = 90.0) -> int:
        """Start it again on the same data dir; returns once it answers."""
        return await local_infra.start_kafka_async(self.bootstrap, timeout_s)


@pytest.fixture
def local_broker(infra: Infra) -> Iterator[LocalBroker]:
    """Broker control for resilience tests: they crash the broker, so it must be ours."""
    if infra.kafka_source != "local":
        pytest.fail(
            f"this test kills the Kafka broker, but Kafka comes from {infra.kafka_source};"
            " run it against the local broker (unset KAFKA_BOOTSTRAP_SERVERS)",
            pytrace=False,
        )
    broker = LocalBroker(infra.kafka_bootstrap)
    yield broker
    if local_infra.kafka_pid() is None:  # a test that left it dead: bring it back for the rest
        local_infra.start_kafka(infra.kafka_bootstrap)


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def pg_schema(database_url: str) -> AsyncIterator[str]:
    """A fresh schema name `t_<hex>` for this test (not created); dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def unique_topic() -> Callable[[str], str]:
    """`unique_topic("voucher.events")` -> "voucher.events.<hex>", new on every call."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}.{uuid.uuid4().hex[:12]}"

    return make


@pytest.hookimpl(trylast=True)  # after any other hook has put the tests in its order
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_all` run after every other one, whatever the file order: they check
    what the whole run left behind. The sort is stable, so every other order is kept."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Scan what every test printed or logged (captured output) for resident ID numbers."""
    if report.when != "teardown":  # the teardown report carries every phase's sections
        return
    for section, text in report.sections:
        for number in id_numbers_in(text.encode()):
            CAPTURED_LEAKS.append(f"{report.nodeid} [{section}]: {number}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A resident ID number in any captured log line or output fails the whole run."""
    if CAPTURED_LEAKS:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "resident ID numbers in captured output (must never be logged)")
            for leak in CAPTURED_LEAKS:
                reporter.write_line(leak)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
