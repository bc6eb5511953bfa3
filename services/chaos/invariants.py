"""What must hold once the faults are over and the stack is quiet, checked from the services'
logs (`events` per schema), their read models and checkpoints, and the Kafka topics.

Quiescence first: every relay and log-fed projection has reached the last event of its log,
and no events or inbox rows have been added for a while. Then, with the services stopped:

* every flow ended in its expected state, read from binding's log (bound, rejected, refused);
* exactly one `MemberBound` per bound request, in the log and on the topic (distinct event
  ids: the relay publishes at least once, so a record may arrive twice, an event not);
* no effect applied twice: no request has two events of one type in any service's log
  (requested, signed, submitted, approved, face verified/failed, bound, case opened, decided,
  face check opened), and each face check was opened exactly for the members aged 16+;
* every event of every log is on its topic, and nothing else is;
* at most 5 live members per holder and kind, in the log and in the live family view;
* every log-fed projection rebuilt from the log equals the live one;
* `audit verify` passes for every service;
* no request stuck: no bind request pending, no review case open, no face check unanswered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.bench.stack import MEMBERS_PER_HOLDER
from services.bench.watch import assigned_partitions
from services.binding.projections import BindingViews
from services.chaos.load import Flow
from services.review.projections import CaseTable
from services.runtime.integrity import Sealer, verify
from services.runtime.pgstore import Executor
from services.runtime.projection import Projection, ProjectionRunner

SETTLE_S = 3.0  # nothing added for this long (and every reader at its log's end): quiet
_ENDS = {"MemberBound": "bound", "BindingRejected": "rejected", "BindRequestExpired": "expired"}
_FACE_OUTCOMES = ("FaceVerified", "FaceVerificationFailed", "FaceCheckExpired")
_CLOSED_STATUSES = ("rejected", "expired", "revoked")  # the family view's not-live statuses


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    lost: int = 0  # flows that did not end as expected
    doubled: int = 0  # effects recorded more than once

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


# ---------------------------------------------------------------------------- quiescence


async def _reader_lag(conn: asyncpg.Connection, schema: str) -> int:
    """Relay and projection checkpoints of `schema` not yet at its last event."""
    return int(
        await conn.fetchval(
            f'SELECT count(*) FROM "{schema}".checkpoints c, (SELECT tx_id, seq FROM'
            f' "{schema}".events ORDER BY tx_id DESC, seq DESC LIMIT 1) last'
            " WHERE (c.name LIKE 'relay:%' OR c.name LIKE 'projection:%')"
            " AND (c.tx_id, c.seq) <> (last.tx_id, last.seq)"
        )
    )


async def _activity(conn: asyncpg.Connection, schemas: Iterable[str]) -> tuple[int, ...]:
    counts = []
    for schema in schemas:
        for table in ("events", "inbox"):
            counts.append(int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}')))
    return tuple(counts)


async def wait_for_quiet(database_url: str, schemas: Sequence[str], timeout_s: float) -> float:
    """Seconds until the stack was seen quiet (at least `SETTLE_S`); TimeoutError after
    `timeout_s`."""
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        last, since = None, time.perf_counter()
        while True:
            counts = await _activity(conn, schemas)
            lagging = sum([await _reader_lag(conn, s) for s in schemas])
            if counts != last or lagging:
                last, since = counts, time.perf_counter()
            elif time.perf_counter() - since >= SETTLE_S:
                return round(time.perf_counter() - started, 2)
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


# ---------------------------------------------------------------------------- what was recorded


@dataclass
class Logs:
    """Per request id, how many events of each type each service recorded for it."""

    effects: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    end: dict[str, str] = field(default_factory=dict)  # request id -> bound/rejected/expired
    holder_kind: dict[str, tuple[str, str]] = field(default_factory=dict)  # request -> key
    event_ids: dict[str, set[str]] = field(default_factory=dict)  # schema -> its event ids
    open_checks: int = 0


async def _events(conn: Executor, schema: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f'SELECT event_id::text, stream_id, event_type, data::text FROM "{schema}".events'
        " ORDER BY tx_id, seq"
    )


def _tie(
    logs: Logs, service: str, rows: list[asyncpg.Record], *, opening: str, key: str, request: str
) -> dict[str, str]:
    """Count the events naming `key` (a case or face check id) for the request that the event
    `opening` tied that id to (its field `request`); returns id -> request id."""
    ties: dict[str, str] = {}
    for row in rows:
        data = json.loads(row["data"])
        if row["event_type"] == opening:
            ties[data[key]] = data[request]
        tied = ties.get(data.get(key, ""))
        if tied is not None:
            logs.effects[tied][f"{service} {row['event_type']}"] += 1
    return ties


async def read_logs(conn: Executor, schemas: dict[str, str]) -> Logs:
    logs = Logs()
    rows = {service: await _events(conn, schema) for service, schema in schemas.items()}
    for service, events in rows.items():
        logs.event_ids[service] = {r["event_id"] for r in events}
    for row in rows["binding"]:
        data = json.loads(row["data"])
        request = data.get("request_id")
        if request is None:
            continue
        logs.effects[request][f"binding {row['event_type']}"] += 1
        if row["event_type"] == "MemberBindRequested":
            logs.holder_kind[request] = (row["stream_id"], data["kind"])
        if row["event_type"] in _ENDS:
            logs.end[request] = _ENDS[row["event_type"]]
    _tie(
        logs, "review", rows["review"],
        opening="ReviewCaseOpened", key="case_id", request="request_id",
    )  # fmt: skip
    checks = _tie(
        logs, "identity", rows["identity"],
        opening="FaceCheckRequested", key="check_id", request="correlation_id",
    )  # fmt: skip
    for request in checks.values():
        logs.open_checks += not any(logs.effects[request][f"identity {t}"] for t in _FACE_OUTCOMES)
    return logs


@dataclass
class Topic:
    records: int = 0
    event_ids: set[str] = field(default_factory=set)
    bound: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # request -> ids


async def read_topic(bootstrap: str, topic: str) -> Topic:
    """Every record of `topic`, from its beginning to its end now."""
    found = Topic()
    partitions = await assigned_partitions(bootstrap, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    found.records += 1
                    found.event_ids.add(headers["ce_id"])
                    if headers["ce_type"].endswith(".MemberBound.v1") and record.value:
                        request = json.loads(record.value)["request_id"]
                        found.bound[request].add(headers["ce_id"])
    finally:
        await consumer.stop()
    return found


# ---------------------------------------------------------------------------- the checks


def _state_of(flow: Flow, logs: Logs) -> str:
    if flow.request_id is None:
        return flow.outcome or "not sent"
    return logs.end.get(flow.request_id, "pending")


def check_flows(verdict: Verdict, flows: Sequence[Flow], logs: Logs) -> None:
    states = Counter((flow.kind.value, _state_of(flow, logs)) for flow in flows)
    wrong = [f for f in flows if _state_of(f, logs) != f.expected]
    verdict.lost += len(wrong)
    shown = ", ".join(f"{kind} {state} {n}" for (kind, state), n in sorted(states.items()))
    verdict.add("every flow ended in its expected state", not wrong, shown)


def check_effects(verdict: Verdict, flows: Sequence[Flow], logs: Logs, bound_topic: Topic) -> None:
    requests = {f.request_id: f for f in flows if f.request_id is not None}
    bound_wrong = [
        r
        for r in logs.end
        if logs.effects[r]["binding MemberBound"] != (1 if logs.end[r] == "bound" else 0)
        or len(bound_topic.bound.get(r, ())) != logs.effects[r]["binding MemberBound"]
    ]
    verdict.add(
        "exactly one MemberBound per bound request (log and topic)",
        not bound_wrong,
        f"{sum(e == 'bound' for e in logs.end.values())} bound requests; wrong: {len(bound_wrong)}",
    )
    doubled = {
        (request, kind): n for request, c in logs.effects.items() for kind, n in c.items() if n > 1
    }
    verdict.doubled += sum(n - 1 for n in doubled.values())
    face_wrong = [
        r
        for r, flow in requests.items()
        if logs.effects[r]["identity FaceCheckRequested"] != int(flow.needs_face)
    ]
    kinds = Counter(kind for _, kind in doubled)
    verdict.add(
        "no effect applied twice; a face check for exactly the members aged 16+",
        not doubled and not face_wrong,
        f"doubled {dict(kinds) or 0}; face checks wrong {len(face_wrong)}",
    )


def check_topics(verdict: Verdict, logs: Logs, topics: dict[str, Topic]) -> None:
    missing = {s: len(logs.event_ids[s] - t.event_ids) for s, t in topics.items()}
    foreign = {s: len(t.event_ids - logs.event_ids[s]) for s, t in topics.items()}
    again = {s: t.records - len(t.event_ids) for s, t in topics.items()}
    verdict.add(
        "every logged event is on its topic, and nothing else",
        not any(missing.values()) and not any(foreign.values()),
        f"missing {missing}, foreign {foreign}; records published again {again}",
    )


async def check_limit(verdict: Verdict, conn: Executor, schema: str, logs: Logs) -> None:
    in_log = Counter(logs.holder_kind[r] for r, end in logs.end.items() if end == "bound")
    in_view = {
        (row["holder"], row["kind"]): row["n"]
        for row in await conn.fetch(
            f'SELECT holder, kind, count(*) AS n FROM "{schema}".family_view'
            " WHERE status <> ALL($1::text[]) GROUP BY holder, kind",
            list(_CLOSED_STATUSES),
        )
    }
    most = max([*in_log.values(), *in_view.values(), 0])
    verdict.add(
        f"at most {MEMBERS_PER_HOLDER} live members per holder and kind (log and family view)",
        most <= MEMBERS_PER_HOLDER,
        f"most live: {most}",
    )


async def _rows(conn: Executor, tables: Sequence[str]) -> list[Counter[str]]:
    return [
        Counter(r[0] for r in await conn.fetch(f"SELECT to_jsonb(t)::text FROM {table} t"))
        for table in tables
    ]


async def check_rebuilds(verdict: Verdict, pool: asyncpg.Pool, schemas: dict[str, str]) -> None:
    projections: list[tuple[str, Projection]] = [
        (schemas["binding"], BindingViews(schemas["binding"])),
        (schemas["review"], CaseTable(schemas["review"])),
    ]
    differing, rows = [], 0
    for schema, projection in projections:
        live = await _rows(pool, projection.tables)
        await ProjectionRunner(pool, schema, projection).rebuild()
        rebuilt = await _rows(pool, projection.tables)
        rows += sum(sum(table.values()) for table in live)
        if rebuilt != live:
            differing.append(projection.name)
    verdict.add(
        "every projection rebuilt from the log equals the live one",
        not differing,
        f"{len(projections)} projections, {rows} live rows; differing: {differing or 'none'}",
    )


async def check_audit(verdict: Verdict, pool: asyncpg.Pool, schemas: dict[str, str]) -> None:
    results = {}
    for service, schema in schemas.items():
        await Sealer(pool, schema).seal_once()
        report = await verify(pool, schema)
        results[service] = "ok" if report.ok else str(report.first_problem)
    verdict.add(
        "audit verify passes for every service",
        all(r == "ok" for r in results.values()),
        ", ".join(f"{s} {r}" for s, r in results.items()),
    )


async def check_stuck(
    verdict: Verdict, conn: Executor, schemas: dict[str, str], logs: Logs
) -> None:
    pending = len(logs.holder_kind.keys() - logs.end.keys())
    open_cases = int(
        await conn.fetchval(
            f"SELECT count(*) FROM \"{schemas['review']}\".cases WHERE status = 'open'"
        )
    )
    verdict.add(
        "no request stuck",
        not pending and not open_cases and not logs.open_checks,
        f"pending bind requests {pending}, open review cases {open_cases}, "
        f"unanswered face checks {logs.open_checks}",
    )


async def check_all(
    database_url: str, bootstrap: str, schemas: dict[str, str], namespace: str, flows: list[Flow]
) -> Verdict:
    """Every invariant, on a quiet stack whose services are stopped."""
    verdict = Verdict()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        logs = await read_logs(pool, schemas)
        topics = {s: await read_topic(bootstrap, f"{namespace}.{s}.v1") for s in schemas}
        check_flows(verdict, flows, logs)
        check_effects(verdict, flows, logs, topics["binding"])
        check_topics(verdict, logs, topics)
        await check_limit(verdict, pool, schemas["binding"], logs)
        await check_stuck(verdict, pool, schemas, logs)
        await check_rebuilds(verdict, pool, schemas)
        await check_audit(verdict, pool, schemas)
    finally:
        await pool.close()
    return verdict
