"""Supervised background work: whatever a round raises, the job is retried with backoff, told
once per outage and once on recovery, counted as down meanwhile, and still stops when asked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import structlog
from aiokafka.errors import KafkaConnectionError

from services.runtime import supervisor
from services.runtime.supervisor import Supervisor, after_batch

Logs = list[dict[str, Any]]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Logs]:
    """What the supervisor logs (its logger made anew, so no cached configuration hides it)."""
    with structlog.testing.capture_logs() as captured:
        monkeypatch.setattr(supervisor, "log", structlog.get_logger("test"))
        yield captured


class Flaky:
    """A round that raises the given errors one after another, then succeeds for ever;
    it notes when each round started and can hold the job until released."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.started: list[float] = []
        self.succeeded = asyncio.Event()

    async def __call__(self) -> float:
        self.started.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        self.succeeded.set()
        return 0.01


def fast() -> Supervisor:
    return Supervisor(first_backoff_s=0.02, max_backoff_s=0.08)


async def until(condition: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_a_job_raising_an_arbitrary_error_is_restarted_with_growing_backoff() -> None:
    work, stop = fast(), asyncio.Event()
    job = Flaky(*(ValueError("a bug") for _ in range(4)))
    task = asyncio.create_task(work.keep("views", job, stop))
    await asyncio.wait_for(job.succeeded.wait(), 2)
    stop.set()
    await asyncio.wait_for(task, 1)

    gaps = [later - earlier for earlier, later in zip(job.started, job.started[1:], strict=False)]
    # 0.02, 0.04, 0.08, then the ceiling of 0.08 (timer slack allowed upwards only).
    assert all(round(g, 2) >= w for g, w in zip(gaps, (0.02, 0.04, 0.08, 0.08), strict=True))
    assert gaps[3] < 0.08 * 2 + 0.05  # capped: not doubled again


async def test_an_outage_is_told_once_when_it_starts_and_once_when_it_ends(logs: Logs) -> None:
    work, stop = fast(), asyncio.Event()
    job = Flaky(*(asyncpg.CannotConnectNowError("starting up") for _ in range(5)))
    task = asyncio.create_task(work.keep("binding:relay", job, stop))
    await asyncio.wait_for(job.succeeded.wait(), 2)
    await asyncio.sleep(0.05)  # more good rounds: nothing more to tell
    stop.set()
    await asyncio.wait_for(task, 1)

    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "background work failing; retrying"),
        ("info", "background work working again"),
    ]
    warning, recovery = logs
    assert warning["job"] == recovery["job"] == "binding:relay"
    assert (warning["error_type"], warning["error"]) == ("CannotConnectNowError", "starting up")
    assert (recovery["after"], recovery["failures"]) == ("CannotConnectNowError", 5)


async def test_a_bug_is_told_by_its_class_and_line_never_its_message(logs: Logs) -> None:
    work, stop = fast(), asyncio.Event()
    job = Flaky(RuntimeError("张三 36010219900101123X"))
    task = asyncio.create_task(work.keep("views", job, stop))
    await asyncio.wait_for(job.succeeded.wait(), 2)
    stop.set()
    await asyncio.wait_for(task, 1)

    warning = logs[0]
    assert warning["error_type"] == "RuntimeError"
    assert warning["raised_at"].startswith(f"{__file__}:")  # Flaky's raise
    assert "张三" not in repr(logs)
    assert "exc_info" not in warning


async def test_a_job_is_down_while_it_fails_and_up_after_a_good_round() -> None:
    work, stop = Supervisor(first_backoff_s=0.02, max_backoff_s=0.02), asyncio.Event()
    release = asyncio.Event()

    async def round_() -> float:
        if not release.is_set():
            raise asyncpg.AdminShutdownError("terminating connection")
        return 0.01

    assert work.healthy
    task = asyncio.create_task(work.keep("review:cases", round_, stop))
    await until(lambda: not work.healthy)
    assert work.down == {"review:cases": "AdminShutdownError"}
    release.set()
    await until(lambda: work.healthy)
    assert work.down == {}
    stop.set()
    await asyncio.wait_for(task, 1)


async def test_a_broker_outage_alone_leaves_the_service_ready() -> None:
    work, stop = fast(), asyncio.Event()

    async def publish() -> float:
        raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:19092")

    task = asyncio.create_task(work.keep("binding:relay", publish, stop))
    await until(lambda: bool(work.down))
    assert work.down == {"binding:relay": "KafkaConnectionError"}
    assert work.healthy  # commands are still taken; the relay publishes them later
    stop.set()
    await asyncio.wait_for(task, 1)


async def test_stop_ends_a_job_in_the_middle_of_its_backoff() -> None:
    work, stop = Supervisor(first_backoff_s=30, max_backoff_s=30), asyncio.Event()
    job = Flaky(ValueError("a bug"))
    task = asyncio.create_task(work.keep("sealer", job, stop))
    await until(lambda: bool(job.started))
    stop.set()
    await asyncio.wait_for(task, 0.5)  # not the 30 s backoff
    assert len(job.started) == 1


def test_a_reader_goes_on_at_once_after_a_full_batch_and_polls_after_a_partial_one() -> None:
    assert after_batch(1000, 1000, 0.05) == 0.0
    assert after_batch(999, 1000, 0.05) == 0.05
    assert after_batch(0, 1000, 0.05) == 0.05
