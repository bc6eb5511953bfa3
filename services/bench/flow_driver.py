"""The flows phase's holder's app: one complete binding flow, timed, and many in flight."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from contracts.vocabulary import Relation
from services.bench.holder_app import Driver, code_of
from services.bench.stack import Insured
from services.bench.watch import FlowWatch

# A flow's planned holder, member and relation.
Planned = tuple[Insured, Insured, Relation]


@dataclass
class FlowRun:
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


class FlowDriver(Driver):
    """The bench's holder's app: complete flows, timed, as many in flight as asked."""

    async def flow(
        self,
        holder: Insured,
        member: Insured,
        relation: Relation,
        *,
        watch: FlowWatch,
        run: FlowRun,
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
        planned: list[Planned],
        in_flight: int,
        *,
        watch: FlowWatch,
        timeout_s: float,
    ) -> FlowRun:
        """Run `planned` flows, at most `in_flight` at once and one at a time per holder (as
        one holder's app would; concurrent flows of one holder would mostly measure retries
        on the holder's stream). A flow waiting for its holder holds no slot."""
        run, gate = FlowRun(), asyncio.Semaphore(in_flight)
        holder_busy: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

        async def one(holder: Insured, member: Insured, relation: Relation) -> None:
            async with holder_busy[holder.pseudonym], gate:
                await self.flow(holder, member, relation, watch=watch, run=run, timeout_s=timeout_s)

        await asyncio.gather(*(one(*flow) for flow in planned))
        return run
