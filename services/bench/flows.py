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
import os
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.vocabulary import Relation
from services.bench.common import FLOW_TARGETS, BenchConfig, BenchError, Say, rate
from services.bench.stack import (
    MEMBERS_PER_HOLDER,
    Driver,
    FlowWatch,
    Insured,
    Services,
    code_of,
    count_rows,
    drop_topics,
    gather_bounded,
    own_processes,
    people,
    quiet_loggers,
    wait_for_directories,
)
from services.binding.handlers import china_today
from services.demo.stack import SERVICES, drop_stack, running_stack
from services.runtime.auth import jwt_secret
from services.runtime.settings import Settings

IDLE_S = 2.0  # how long the idle stack's own CPU use is measured before the flows
PER_SERVICE, IN_ONE_PROCESS = "process_per_service", "in_one_process"
_SERVED = {
    PER_SERVICE: "each served in an OS process of its own (`qinqing <service> serve`, as "
    "deployed; the driver in another)",
    IN_ONE_PROCESS: "served in one Python process together with the driver",
}
_RELATIONS = (
    Relation.PARENT,
    Relation.SPOUSE,
    Relation.CHILD,
    Relation.SIBLING,
    Relation.GRANDPARENT,
)
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


class _Driver(Driver):
    """The bench's holder's app: complete flows, timed, as many in flight as asked."""

    async def flow(
        self,
        holder: Insured,
        member: Insured,
        relation: Relation,
        *,
        watch: FlowWatch,
        run: _Run,
        timeout_s: float,
    ) -> None:
        """One complete flow; its latency (or why it has none) goes into `run`."""
        headers = self.tokens[holder.pseudonym]
        form = self.form(member, relation)
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
            run.errors[f"request {answer.status_code} {code_of(answer)}"] += 1
            return
        request_id = str(answer.json()["request_id"])
        run.starts[request_id], run.starts_wall[request_id] = started, started_wall
        for call, path, body in self.material_calls(request_id):
            before = time.perf_counter()
            answer = await self.http.post(self.url("binding", path), json=body, headers=headers)
            done = time.perf_counter()
            run.calls[call].append(done - before)
            if answer.status_code != 200:
                run.errors[f"{call} {answer.status_code} {code_of(answer)}"] += 1
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
        planned: list[tuple[Insured, Insured, Relation]],
        in_flight: int,
        *,
        watch: FlowWatch,
        timeout_s: float,
    ) -> _Run:
        """Run `planned` flows, at most `in_flight` at once and one at a time per holder (as
        one holder's app would; concurrent flows of one holder would mostly measure retries
        on the holder's stream). A flow waiting for its holder holds no slot."""
        run, gate = _Run(), asyncio.Semaphore(in_flight)
        holder_busy: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

        async def one(holder: Insured, member: Insured, relation: Relation) -> None:
            async with holder_busy[holder.pseudonym], gate:
                await self.flow(holder, member, relation, watch=watch, run=run, timeout_s=timeout_s)

        await asyncio.gather(*(one(*flow) for flow in planned))
        return run


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
    say(f"flows: identity, binding and review {_SERVED[layout].split(' (')[0]}")
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
    holders_n, flows = sum(holder_counts), cfg.flows
    today = china_today(datetime.now(UTC))
    persons = people(holders_n + sum(sizes), today)
    driver = _Driver(stack, jwt_secret(settings), cfg.flow_concurrency)
    conn = await asyncpg.connect(settings.database_url)
    watch = FlowWatch(stack.kafka, [f"{stack.namespace}.{s}.v1" for s in SERVICES])
    try:
        say(f"flows: registering {len(persons):,} persons through identity ({holders_n} holders)")
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
        policy = await driver.auto_approve()
        holders, members = registered[:holders_n], registered[holders_n:]
        await driver.upload_materials(holders[0], members[0])
        await watch.start()

        def plan(group: int) -> list[tuple[Insured, Insured, Relation]]:
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
            "registrations_per_s": round(rate(len(persons), register_s), 1),
            "directories_caught_up_s": round(directory_s, 2),
            "persons": len(persons),
        }
        return _figures(
            cfg,
            run,
            layout=PER_SERVICE if stack.children else IN_ONE_PROCESS,
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
    planned: list[tuple[Insured, Insured, Relation]],
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
    watch: FlowWatch,
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


def _stages(run: _Run, watch: FlowWatch) -> dict[str, Any]:
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
