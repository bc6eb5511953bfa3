"""Injecting one fault into the running stack and timing its recovery.

A process kill is a SIGKILL of the service's own process, started again on the same port after
its downtime. The broker is SIGKILLed through `services.runtime.infra` and started again on its
data directory; PostgreSQL is restarted (`pg_ctlcluster … restart -m fast`) or shut down fast
and started again after its downtime. Both are the local ones every checkout shares, so the
suite refuses infrastructure faults when either is configured from outside.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from services.bench.stack import Child
from services.bench.watch import FlowWatch
from services.chaos.plan import KILLED_SERVICE, Fault, FaultKind
from services.runtime.infra import kafka_pid, kill_kafka, start_kafka_async
from services.runtime.infra.postgres import (
    PgTarget,
    pg_cluster,
    pg_down,
    pg_restart,
    pg_up,
    postgres_answers,
    wait_for_postgres,
)
from services.runtime.settings import Settings

READY_TIMEOUT_S = 90.0  # a piece not back this long after its fault: the fault is unrecovered
FLOW_AFTER_S = 60.0  # no flow ended this long after everything was back: unrecovered


@dataclass(frozen=True)
class Recovery:
    """One fault as it happened: seconds from its start until the piece it hit and every
    service answered ready again (`back_s`), and until the first flow ended after that
    (`flow_s`); None when that did not happen within the limits."""

    kind: FaultKind
    at_s: float  # since the load started
    down_s: float
    back_s: float | None
    flow_s: float | None

    @property
    def recovered(self) -> bool:
        return self.back_s is not None and self.flow_s is not None


class Injector:
    """Applies faults to the services' processes and the local infrastructure."""

    def __init__(
        self, settings: Settings, children: dict[str, Child], watch: FlowWatch, began: float
    ) -> None:
        self.settings, self.children, self.watch, self.began = settings, children, watch, began

    async def inject(self, fault: Fault) -> Recovery:
        started = time.perf_counter()
        try:
            await self._hit(fault)
            await asyncio.wait_for(self._all_ready(), READY_TIMEOUT_S)
        except (TimeoutError, RuntimeError):
            return Recovery(fault.kind, round(started - self.began, 2), fault.down_s, None, None)
        back = time.perf_counter()
        flow = await self._next_flow_end(back)
        return Recovery(
            fault.kind,
            round(started - self.began, 2),
            fault.down_s,
            round(back - started, 2),
            None if flow is None else round(flow - started, 2),
        )

    async def _hit(self, fault: Fault) -> None:
        kind = fault.kind
        if kind in KILLED_SERVICE:
            child = self.children[KILLED_SERVICE[kind]]
            await child.kill()
            await asyncio.sleep(fault.down_s)
            await child.start()
        elif kind is FaultKind.KILL_KAFKA:
            await asyncio.to_thread(kill_kafka)
            await asyncio.sleep(fault.down_s)
            await start_kafka_async(self.settings.kafka_bootstrap_servers, READY_TIMEOUT_S)
        elif kind is FaultKind.RESTART_POSTGRES:
            await asyncio.to_thread(pg_restart, _silent)
            await wait_for_postgres(self.settings.database_url, READY_TIMEOUT_S)
        else:
            await asyncio.to_thread(pg_down, _silent)
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(pg_up, PgTarget.from_url(self.settings.database_url), _silent)
            await wait_for_postgres(self.settings.database_url, READY_TIMEOUT_S)

    async def _all_ready(self) -> None:
        """Until every service answers `/readyz` (a restarted one first waits for its start)."""
        for child in self.children.values():
            await child.ready(READY_TIMEOUT_S)

    async def _next_flow_end(self, after: float) -> float | None:
        deadline = after + FLOW_AFTER_S
        while time.perf_counter() < deadline:
            ended = [t for t in self.watch.ends if t > after]
            if ended:
                return min(ended)
            await asyncio.sleep(0.1)
        return None


async def restore_infrastructure(settings: Settings) -> None:
    """Whatever a fault left down (a run stopped halfway), started again: the broker and the
    cluster are shared, and a run must leave both answering."""
    if await postgres_answers(settings.database_url) is None:
        await asyncio.to_thread(pg_up, PgTarget.from_url(settings.database_url), _silent)
        await wait_for_postgres(settings.database_url, READY_TIMEOUT_S)
    if kafka_pid() is None:
        await start_kafka_async(settings.kafka_bootstrap_servers, READY_TIMEOUT_S)


def _silent(_line: str) -> None:
    return None


def local_infrastructure(settings: Settings) -> str | None:
    """Why infrastructure faults cannot run here, or None: they need the local PostgreSQL
    cluster (at the configured port) and the broker this checkout started."""
    cluster = pg_cluster()
    if cluster is None or cluster.port != PgTarget.from_url(settings.database_url).port:
        return f"PostgreSQL at {settings.database_url} is not the local cluster"
    if kafka_pid() is None:
        return "the Kafka broker was not started by this checkout (no live pid file)"
    return None
