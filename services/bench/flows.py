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
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.vocabulary import Relation
from services.bench.common import FLOW_TARGETS, BenchConfig, BenchError, Say, rate
from services.bench.flow_driver import FlowDriver, FlowRun, Planned
from services.bench.flow_results import (
    IN_ONE_PROCESS,
    PER_SERVICE,
    SERVED,
    Measured,
    flow_results,
    stages,
)
from services.bench.holder_app import count_rows, gather_bounded, wait_for_directories
from services.bench.meters import CpuMeter, HorizonSampler, load_average, primitives, summary_ms
from services.bench.stack import (
    MEMBERS_PER_HOLDER,
    Insured,
    Services,
    drop_topics,
    own_processes,
    people,
    quiet_loggers,
)
from services.bench.watch import FlowWatch
from services.binding.handlers import china_today
from services.demo.stack import SERVICES, drop_stack, running_stack
from services.runtime.auth import jwt_secret
from services.runtime.settings import Settings

IDLE_S = 2.0  # how long the idle stack's own CPU use is measured before the flows
_RELATIONS = (
    Relation.PARENT,
    Relation.SPOUSE,
    Relation.CHILD,
    Relation.SIBLING,
    Relation.GRANDPARENT,
)


# ---------------------------------------------------------------------------- the services


@asynccontextmanager
async def _in_this_process(
    settings: Settings, namespace: str, schemas: dict[str, str]
) -> AsyncIterator[Services]:
    async with running_stack(
        settings.database_url,
        settings.kafka_bootstrap_servers,
        namespace=namespace,
        schemas=schemas,
        face_latency_s=0.0,
    ) as stack:
        yield Services(stack.urls, stack.schemas, stack.namespace, stack.kafka)


# ---------------------------------------------------------------------------- the phase


async def _counts(conn: asyncpg.Connection, schemas: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for service, schema in schemas.items():
        counts[f"{service}_events"] = await count_rows(conn, schema, "events")
        counts[f"{service}_inbox"] = await count_rows(conn, schema, "inbox")
    counts["xact_commit"] = int(
        await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    )
    return counts


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
    serve = own_processes if layout == PER_SERVICE else _in_this_process
    say(f"flows: identity, binding and review {SERVED[layout].split(' (')[0]}")
    try:
        with quiet_loggers():
            async with serve(settings, namespace, schemas) as services:
                return await _measure(services, cfg, settings, say)
    finally:
        with contextlib.suppress(Exception):
            await drop_stack(settings.database_url, schemas)
        with contextlib.suppress(Exception):
            await drop_topics(bootstrap, namespace)


async def _measure(
    stack: Services, cfg: BenchConfig, settings: Settings, say: Say
) -> dict[str, dict[str, Any]]:
    # Three groups of flows, each with holders of its own: timed, warm-up, one at a time.
    sizes = (cfg.flows, cfg.flow_warmup, cfg.flow_alone)
    holder_counts = [-(-n // MEMBERS_PER_HOLDER) for n in sizes]
    holders_n = sum(holder_counts)
    persons = people(holders_n + sum(sizes), china_today(datetime.now(UTC)))
    driver = FlowDriver(stack, jwt_secret(settings), cfg.flow_concurrency)
    conn = await asyncpg.connect(settings.database_url)
    watch = FlowWatch(stack.kafka, [f"{stack.namespace}.{s}.v1" for s in SERVICES])
    try:
        say(f"flows: registering {len(persons):,} persons through identity ({holders_n} holders)")
        registered, setup = await _register(
            driver, persons, conn=conn, stack=stack, cfg=cfg, say=say
        )
        policy = await driver.auto_approve()
        holders, members = registered[:holders_n], registered[holders_n:]
        await driver.upload_materials(holders[0], members[0])
        await watch.start()
        plans = _plans(holders, members, holder_counts, sizes)
        idle_cpu = await _idle_cpu(stack.pids)
        if cfg.flow_warmup:
            say(f"flows: {cfg.flow_warmup} warm-up flows")
            warm = await driver.flows(
                plans[1], cfg.flow_concurrency, watch=watch, timeout_s=cfg.flow_timeout_s
            )
            _all_bound(warm, cfg.flow_warmup, "warm-up")
        alone = await _one_at_a_time(driver, plans[2], watch, cfg.flow_timeout_s, say)
        say(f"flows: {cfg.flows:,} flows, {cfg.flow_concurrency} in flight")
        run, cpu, delta, load = await _timed(
            driver, plans[0], conn=conn, stack=stack, watch=watch, cfg=cfg
        )
        cpu["idle"] = {
            "definition": f"the stack doing nothing for {IDLE_S:g} s before the flows (relays, "
            "projections and consumers polling): cores busy",
            "cores_busy": idle_cpu["cores_busy"],
        }
        setup = {"one_at_a_time": alone, **setup}
        measured = Measured(run, watch, cpu, delta, policy, load, setup)
        layout = PER_SERVICE if stack.children else IN_ONE_PROCESS
        return flow_results(cfg, measured, layout=layout, say=say)
    finally:
        await watch.stop()
        await driver.close()
        await conn.close()


async def _register(
    driver: FlowDriver,
    persons: list[Insured],
    *,
    conn: asyncpg.Connection,
    stack: Services,
    cfg: BenchConfig,
    say: Say,
) -> tuple[list[Insured], dict[str, Any]]:
    """Untimed setup: every person registered, and known to binding's and review's directories."""
    began = time.perf_counter()
    registered = await gather_bounded(
        cfg.flow_registrations_in_flight, [driver.register(p) for p in persons]
    )
    register_s = time.perf_counter() - began
    directory_s = await wait_for_directories(
        conn, stack.schemas, len(persons), cfg.flow_timeout_s * 2
    )
    say(
        f"flows: registered in {register_s:.1f} s ({rate(len(persons), register_s):.0f}/s); "
        f"binding and review knew them {directory_s:.1f} s later"
    )
    return registered, {
        "registration_s": round(register_s, 2),
        "registrations_per_s": round(rate(len(persons), register_s), 1),
        "directories_caught_up_s": round(directory_s, 2),
        "persons": len(persons),
    }


def _plans(
    holders: list[Insured],
    members: list[Insured],
    holder_counts: list[int],
    sizes: tuple[int, ...],
) -> list[list[Planned]]:
    """The flows of each group; flow i of a group goes to its holder i mod n_holders, so one
    holder's flows are n_holders apart."""
    plans = []
    for group, size in enumerate(sizes):
        first_holder, first_member = sum(holder_counts[:group]), sum(sizes[:group])
        n_holders = holder_counts[group]
        plans.append(
            [
                (
                    holders[first_holder + i % n_holders],
                    members[first_member + i],
                    _RELATIONS[(i // n_holders) % len(_RELATIONS)],
                )
                for i in range(size)
            ]
        )
    return plans


async def _timed(
    driver: FlowDriver,
    planned: list[Planned],
    *,
    conn: asyncpg.Connection,
    stack: Services,
    watch: FlowWatch,
    cfg: BenchConfig,
) -> tuple[FlowRun, dict[str, Any], dict[str, int], tuple[list[float] | None, list[float] | None]]:
    """The timed flows, with the CPU, rows and load they cost, and the primitives' floor."""
    before = await _counts(conn, stack.schemas)
    meter, horizon = CpuMeter(stack.pids), HorizonSampler(conn)
    meter.start()
    horizon.start()
    load_start = load_average()
    run = await driver.flows(
        planned, cfg.flow_concurrency, watch=watch, timeout_s=cfg.flow_timeout_s
    )
    cpu = meter.stop(len(run.latencies))
    load_end = load_average()
    cpu["read_horizon"] = await horizon.stop()
    after = await _counts(conn, stack.schemas)
    binding_topic = f"{stack.namespace}.binding.v1"
    cpu["primitives"] = await primitives(
        conn, stack.schemas["binding"], stack.kafka, binding_topic, samples=100
    )
    delta = {key: after[key] - before[key] for key in after}
    return run, cpu, delta, (load_start, load_end)


async def _idle_cpu(pids: dict[str, int]) -> dict[str, Any]:
    idle = CpuMeter(pids)
    idle.start()
    await asyncio.sleep(IDLE_S)
    return idle.stop(0)


def _all_bound(run: FlowRun, flows: int, what: str) -> None:
    if len(run.latencies) != flows:
        raise BenchError(
            f"{what}: {len(run.latencies)} of {flows} flows bound "
            f"(errors {dict(run.errors)}, incomplete {run.incomplete}, rejected {run.rejected})"
        )


async def _one_at_a_time(
    driver: FlowDriver,
    planned: list[Planned],
    watch: FlowWatch,
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
        "latency_ms": summary_ms(list(alone.latencies.values())),
        "hops_p50_ms": {hop: summary.get("p50") for hop, summary in stages(alone, watch).items()},
    }
