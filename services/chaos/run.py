"""One chaos run: the stack served, the load started, the faults applied one after another,
quiescence, the invariants, the table; and `qinqing chaos`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import typer

from services.bench.holder_app import gather_bounded, wait_for_directories
from services.bench.stack import Services, drop_topics, own_processes, quiet_loggers
from services.bench.watch import FlowWatch
from services.binding.handlers import china_today
from services.chaos import identity
from services.chaos.faults import (
    Injector,
    Recovery,
    local_infrastructure,
    restore_infrastructure,
)
from services.chaos.invariants import Verdict, check_all, wait_for_quiet
from services.chaos.load import FaultTolerantDriver, Flow, cast, registered, run_load
from services.chaos.plan import INFRA_FAULTS, Bounds, FaultKind, fault_plan
from services.demo.stack import SERVICES, drop_stack
from services.identity.app import IdentitySettings, callback_secret
from services.runtime.auth import jwt_secret
from services.runtime.logging import configure_logging
from services.runtime.settings import Settings

Say = Callable[[str], None]
QUIET_TIMEOUT_S = 120.0  # after the last flow ended, the stack must be quiet within this
REGISTRATIONS_IN_FLIGHT = 16


class ChaosError(RuntimeError):
    """The run cannot be made here (the infrastructure is not the local one)."""


@dataclass(frozen=True)
class ChaosConfig:
    """A run's bounds: it stops injecting after `minutes` or `bounds.faults` faults, whichever
    comes first, then lets the flows under way end."""

    minutes: float
    seed: int
    kinds: tuple[FaultKind, ...] = tuple(FaultKind)
    bounds: Bounds = field(default_factory=Bounds)
    families_in_flight: int = 6  # holders whose flows run at once

    @property
    def holders(self) -> int:
        """Families for the whole run with room to spare: a family takes ~10 s on 2 cores
        when calm (if they run out, the run stops injecting, see `_faults`)."""
        return max(2 * self.families_in_flight, round(self.minutes * 90))


@dataclass
class ChaosReport:
    seed: int
    flows: list[Flow]
    recoveries: list[Recovery]
    verdict: Verdict
    retried: Counter[str]
    seconds: float
    quiet_s: float | None

    @property
    def ok(self) -> bool:
        return self.verdict.ok


async def run_chaos(cfg: ChaosConfig, settings: Settings, say: Say) -> ChaosReport:
    """A run in fresh schemas `chaos_<hex>_<service>` and topics `chaos<hex>.<service>.v1`,
    dropped at the end."""
    if INFRA_FAULTS & set(cfg.kinds) and (why := local_infrastructure(settings)) is not None:
        raise ChaosError(f"infrastructure faults need the local stack: {why}")
    tag = uuid.uuid4().hex[:8]
    schemas = {service: f"chaos_{tag}_{service}" for service in SERVICES}
    namespace = f"chaos{tag}"
    commands = {"identity": [sys.executable, *identity.COMMAND]}
    try:
        # The broker's clients report every failed connection while it is down: expected here.
        with quiet_loggers("aiokafka", "aiokafka.consumer.fetcher"):
            try:
                async with own_processes(settings, namespace, schemas, commands) as stack:
                    report = await _under_faults(stack, cfg, settings, say)
            finally:
                if INFRA_FAULTS & set(cfg.kinds):
                    await restore_infrastructure(settings)
        say("chaos: services stopped; checking the invariants")
        report.verdict = await check_all(
            settings.database_url,
            settings.kafka_bootstrap_servers,
            schemas,
            namespace,
            report.flows,
        )
        unrecovered = [r.kind.value for r in report.recoveries if not r.recovered]
        report.verdict.add(
            "every fault recovered: all ready again, then a flow ended",
            bool(report.recoveries) and not unrecovered,
            f"{len(report.recoveries)} faults; unrecovered: {unrecovered or 'none'}",
        )
        report.verdict.add(
            "the stack was quiet after the faults",
            report.quiet_s is not None,
            f"quiet after {_seconds(report.quiet_s)}",
        )
        return report
    finally:
        with contextlib.suppress(Exception):
            await drop_stack(settings.database_url, schemas)
        with contextlib.suppress(Exception):
            await drop_topics(settings.kafka_bootstrap_servers, namespace)


async def _under_faults(
    stack: Services, cfg: ChaosConfig, settings: Settings, say: Say
) -> ChaosReport:
    today = china_today(datetime.now(UTC))
    persons, planned = cast(cfg.holders, today, cfg.seed)
    secret = callback_secret(IdentitySettings())
    driver = FaultTolerantDriver(stack, jwt_secret(settings), secret)
    topics = [f"{stack.namespace}.{s}.v1" for s in SERVICES]
    watch = FlowWatch(stack.kafka, topics, on_face_check=driver.face_check_opened)
    try:
        say(f"chaos: seed {cfg.seed}; faults: {', '.join(k.value for k in cfg.kinds)}")
        say(f"chaos: registering {len(persons)} persons ({cfg.holders} holders)")
        registering = time.perf_counter()
        done = await gather_bounded(REGISTRATIONS_IN_FLIGHT, [driver.register(p) for p in persons])
        say(f"chaos: registered in {time.perf_counter() - registering:.1f} s")
        conn = await asyncpg.connect(settings.database_url)
        try:
            await wait_for_directories(conn, stack.schemas, len(persons), 120)
        finally:
            await conn.close()
        families = registered(planned, {p.id_number: p for p in done})
        await driver.auto_approve()
        await driver.upload_materials(families[0].holder, families[0].flows[0].member)
        await watch.start()
        began = time.perf_counter()
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(driver, families, watch, stop, cfg.families_in_flight))
        injector = Injector(settings, stack.children, watch, began)
        recoveries = await _faults(cfg, injector, load, say)
        stop.set()
        say("chaos: faults over; letting the flows under way end")
        await load
        flows = [flow for family in families for flow in family.flows if flow.outcome]
        try:
            quiet_s: float | None = await wait_for_quiet(
                settings.database_url, list(stack.schemas.values()), QUIET_TIMEOUT_S
            )
        except TimeoutError:
            quiet_s = None
        return ChaosReport(
            cfg.seed,
            flows,
            recoveries,
            Verdict(),
            driver.retried,
            round(time.perf_counter() - began, 1),
            quiet_s,
        )
    finally:
        await watch.stop()
        await driver.close()


async def _faults(
    cfg: ChaosConfig, injector: Injector, load: asyncio.Task[None], say: Say
) -> list[Recovery]:
    """The plan's faults until it ends, the time is up, or the load ran out of families (a
    fault with no flow after it could not show its recovery)."""
    deadline = time.perf_counter() + cfg.minutes * 60
    recoveries = []
    for n, fault in enumerate(fault_plan(cfg.seed, cfg.kinds, cfg.bounds), start=1):
        if time.perf_counter() + fault.gap_s > deadline:
            break
        await asyncio.sleep(fault.gap_s)
        if load.done():
            say("chaos: every family's flows are done; no more faults")
            break
        recovery = await injector.inject(fault)
        recoveries.append(recovery)
        say(f"chaos: fault {n} {_recovery_line(recovery)}")
    return recoveries


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def _recovery_line(r: Recovery) -> str:
    return (
        f"{r.kind} at {r.at_s:.1f} s (down {r.down_s:.1f} s): back after {_seconds(r.back_s)}, "
        f"next flow ended after {_seconds(r.flow_s)}"
    )


def table(report: ChaosReport) -> str:
    """The run as Markdown tables: flows, faults of each kind and their recovery, invariants."""
    by_kind: dict[FaultKind, list[Recovery]] = defaultdict(list)
    for r in report.recoveries:
        by_kind[r.kind].append(r)
    outcomes = Counter((flow.kind.value, flow.expected) for flow in report.flows)
    lines = [
        f"chaos run: seed {report.seed}, {report.seconds:.0f} s under load, "
        f"{len(report.flows)} flows, {len(report.recoveries)} faults, quiet after "
        f"{_seconds(report.quiet_s)}",
        "",
        "| flows | expected | count |",
        "|---|---|---:|",
        *(f"| {kind} | {end} | {n} |" for (kind, end), n in sorted(outcomes.items())),
        "",
        "| fault | count | back (s) each | next flow ended (s) each |",
        "|---|---:|---|---|",
        *(
            f"| {kind} | {len(rs)} | {', '.join(_seconds(r.back_s) for r in rs)} | "
            f"{', '.join(_seconds(r.flow_s) for r in rs)} |"
            for kind, rs in by_kind.items()
        ),
        "",
        "| invariant | holds | detail |",
        "|---|---|---|",
        *(f"| {c.name} | {'yes' if c.ok else 'NO'} | {c.detail} |" for c in report.verdict.checks),
        "",
        f"lost {report.verdict.lost}, doubled {report.verdict.doubled}; calls sent again: "
        + (", ".join(f"{k} x{n}" for k, n in report.retried.most_common()) or "none"),
    ]
    return "\n".join(lines)


def chaos_command(
    minutes: Annotated[float, typer.Option(help="Inject faults for this long.")] = 2.0,
    seed: Annotated[int | None, typer.Option(help="Replay a run: its faults and flows.")] = None,
) -> None:
    """Kill and restart the services, Kafka and PostgreSQL under real binding flows, then check
    that nothing was lost or doubled; exit 1 if an invariant fails."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    chosen = seed if seed is not None else int.from_bytes(uuid.uuid4().bytes[:4])
    cfg = ChaosConfig(minutes=minutes, seed=chosen)
    cfg = replace(cfg, bounds=replace(cfg.bounds, faults=max(len(cfg.kinds), round(minutes * 4))))
    try:
        report = asyncio.run(run_chaos(cfg, settings, typer.echo))
    except ChaosError as exc:
        typer.echo(f"chaos: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(table(report))
    if not report.ok:
        raise typer.Exit(1)
