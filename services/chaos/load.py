"""The load under the faults: real binding flows, as a holder's app drives them, and the face
provider's answers, both through HTTP calls that outlast a fault.

Each holder binds five members one after another, each flow of one of three kinds drawn from
the seed; a holder whose five should all be bound then asks for a sixth, which the limit of 5
live members per kind must refuse:

    adult       member aged 16+: materials -> review (auto-approved) -> face verified -> bound
    child       member under 16: materials -> review -> bound (no face check)
    face_fails  member aged 16+: materials -> review -> face check fails -> rejected
    sixth       a sixth request while five are live -> 409 binding.family_full

A call refused by a fault (no connection, a timeout, a 5xx, or 409 `request.busy`, which
tells the client to retry) is sent again unchanged, `POST /bindings` with the same
Idempotency-Key, so a flow is neither lost nor started twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import httpx

from contracts.vocabulary import Relation
from services.bench.holder_app import Driver, code_of
from services.bench.stack import MEMBERS_PER_HOLDER, Insured, Services, people
from services.bench.watch import FlowWatch
from services.identity.api import SIGNATURE_HEADER
from services.identity.face_check import FaceFailureReason
from services.identity.face_provider import sign_callback

CALL_TIMEOUT_S = 10.0  # one HTTP attempt; a call hanging on a dead server is sent again
FLOW_TIMEOUT_S = 180.0  # a flow not ended this long after its start is lost
FULL_CODE = "binding.family_full"
BUSY_CODE = "request.busy"


class FlowKind(StrEnum):
    ADULT = "adult"
    CHILD = "child"
    FACE_FAILS = "face_fails"
    SIXTH = "sixth"


# What each kind of flow must end as.
EXPECTED = {
    FlowKind.ADULT: "bound",
    FlowKind.CHILD: "bound",
    FlowKind.FACE_FAILS: "rejected",
    FlowKind.SIXTH: "refused",
}
# How a holder's five members are drawn: half adults, three in ten children, the rest failing.
_MEMBERS = (FlowKind.ADULT, FlowKind.CHILD, FlowKind.FACE_FAILS)
_WEIGHTS = (0.5, 0.3, 0.2)
_ADULT_RELATIONS = (Relation.PARENT, Relation.SIBLING, Relation.GRANDPARENT, Relation.SPOUSE)


@dataclass
class Flow:
    kind: FlowKind
    holder: Insured
    member: Insured
    relation: Relation
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # the Idempotency-Key
    request_id: str | None = None
    outcome: str | None = None  # bound | rejected | refused | incomplete | <call> <status>

    @property
    def expected(self) -> str:
        return EXPECTED[self.kind]

    @property
    def needs_face(self) -> bool:
        return self.kind in (FlowKind.ADULT, FlowKind.FACE_FAILS)


@dataclass(frozen=True)
class Family:
    holder: Insured
    flows: list[Flow]


def cast(holders: int, today: date, seed: int) -> tuple[list[Insured], list[Family]]:
    """Everyone to register, and each holder's flows, drawn from `seed` (the persons are not
    registered yet: `registered` gives the families their pseudonyms afterwards)."""
    rng = random.Random(seed)  # noqa: S311 - a load to replay, not a secret
    kinds = [rng.choices(_MEMBERS, _WEIGHTS, k=MEMBERS_PER_HOLDER) for _ in range(holders)]
    adults_n = sum(k != FlowKind.CHILD for row in kinds for k in row)
    children_n = sum(row.count(FlowKind.CHILD) for row in kinds)
    # Three birth ranges, so no two groups draw the same ID number.
    heads = people(holders, today, first=date(1950, 1, 1), days=9_000)
    adults = people(adults_n, today, first=date(1976, 1, 1), days=10_000, start=holders)
    children = people(
        children_n,
        today,
        first=today - timedelta(days=5_400),  # at most 14.8 years old
        days=5_000,
        start=holders + adults_n,
    )
    left = {"adult": iter(adults), "child": iter(children)}
    families = []
    for n, (holder, row) in enumerate(zip(heads, kinds, strict=True)):
        flows = [
            Flow(kind, holder, next(left["adult"]), rng.choice(_ADULT_RELATIONS))
            if kind is not FlowKind.CHILD
            else Flow(kind, holder, next(left["child"]), Relation.CHILD)
            for kind in row
        ]
        if FlowKind.FACE_FAILS not in row:  # five live members: the next holder is a sixth
            sixth = heads[(n + 1) % len(heads)]
            flows.append(Flow(FlowKind.SIXTH, holder, sixth, Relation.SIBLING))
        families.append(Family(holder, flows))
    return [*heads, *adults, *children], families


def registered(families: list[Family], by_number: dict[str, Insured]) -> list[Family]:
    """The families with every person replaced by its registered self (with a pseudonym)."""
    return [
        Family(
            by_number[f.holder.id_number],
            [
                Flow(
                    flow.kind,
                    by_number[f.holder.id_number],
                    by_number[flow.member.id_number],
                    flow.relation,
                )
                for flow in f.flows
            ],
        )
        for f in families
    ]


class Interrupted(Exception):  # noqa: N818 - not an error: a call outlived its flow
    """A call still refused when its flow's time was up."""


class FaultTolerantDriver(Driver):
    """The holder's app and the face provider, sending a refused call again until it is
    answered or its flow's time is up."""

    def __init__(self, stack: Services, secret: str, callback_secret: bytes) -> None:
        super().__init__(stack, secret, concurrency=32, timeout_s=CALL_TIMEOUT_S)
        self.callback_secret = callback_secret
        self.retried: Counter[str] = Counter()  # calls sent again, by service and cause
        self._checks: dict[str, str] = {}  # request id -> face check id
        self._fails: dict[str, bool] = {}  # request id -> whether its face check must fail
        self._answers: set[asyncio.Task[None]] = set()

    async def call(
        self, method: str, service: str, path: str, deadline: float, **kwargs: Any
    ) -> httpx.Response:
        delay = 0.2
        while True:
            try:
                answer = await self.http.request(method, self.url(service, path), **kwargs)
                busy = answer.status_code == 409 and code_of(answer) == BUSY_CODE
                if answer.status_code < 500 and not busy:
                    return answer
                self.retried[f"{service} {answer.status_code} {code_of(answer)}"] += 1
            except httpx.TransportError as exc:
                self.retried[f"{service} {type(exc).__name__}"] += 1
            if time.monotonic() + delay > deadline:
                raise Interrupted
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # ---------------------------------------------------------------------------- flows

    async def flow(self, flow: Flow, watch: FlowWatch) -> None:
        """One flow to its end; its outcome (or where it stopped) goes into `flow.outcome`."""
        deadline = time.monotonic() + FLOW_TIMEOUT_S
        try:
            flow.outcome = await self._drive(flow, watch, deadline)
        except Interrupted:
            flow.outcome = "incomplete"

    async def _drive(self, flow: Flow, watch: FlowWatch, deadline: float) -> str:
        headers = self.tokens[flow.holder.pseudonym]
        form = self.form(flow.member, flow.relation)
        answer = await self.call(
            "POST", "binding", "/bindings", deadline,
            json=form, headers={**headers, "Idempotency-Key": flow.key},
        )  # fmt: skip
        if answer.status_code == 409 and code_of(answer) == FULL_CODE:
            return "refused"
        if answer.status_code != 202:
            return f"request {answer.status_code} {code_of(answer)}"
        flow.request_id = request_id = str(answer.json()["request_id"])
        for call, path, body in self.material_calls(request_id):
            answer = await self.call("POST", "binding", path, deadline, json=body, headers=headers)
            if answer.status_code != 200:
                return f"{call} {answer.status_code} {code_of(answer)}"
        if flow.needs_face:
            self._materials_in(request_id, fails=flow.kind is FlowKind.FACE_FAILS, until=deadline)
        try:
            await watch.ended(request_id, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return "incomplete"
        return watch.end_of(request_id) or "incomplete"

    async def family(self, family: Family, watch: FlowWatch, stop: asyncio.Event) -> None:
        """The holder's flows one after another (as one app would), none started after `stop`;
        the sixth only once the five before it are bound."""
        for flow in family.flows:
            if stop.is_set():
                return
            if flow.kind is FlowKind.SIXTH and any(
                f.outcome != "bound" for f in family.flows if f is not flow
            ):
                return
            await self.flow(flow, watch)

    # ---------------------------------------------------------------------------- face provider

    def face_check_opened(self, check_id: str, request_id: str, _subject: str) -> None:
        """FlowWatch's hook: a bind request's face check is open at identity."""
        self._checks.setdefault(request_id, check_id)
        self._answer_when_due(request_id, time.monotonic() + FLOW_TIMEOUT_S)

    def _materials_in(self, request_id: str, *, fails: bool, until: float) -> None:
        self._fails[request_id] = fails
        self._answer_when_due(request_id, until)

    def _answer_when_due(self, request_id: str, until: float) -> None:
        """The provider answers once the check is open and the materials are in (answering
        earlier could reject a request before its materials arrive), and only once."""
        if request_id not in self._checks or request_id not in self._fails:
            return
        fails = self._fails.pop(request_id)
        task = asyncio.create_task(self._answer(self._checks[request_id], fails, until))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, check_id: str, fails: bool, until: float) -> None:
        outcome: dict[str, str] = {"check_id": check_id, "outcome": "verified"}
        if fails:
            outcome = {**outcome, "outcome": "failed", "reason": FaceFailureReason.NO_MATCH.value}
        body = json.dumps(outcome).encode()
        headers = {
            SIGNATURE_HEADER: sign_callback(self.callback_secret, body),
            "Content-Type": "application/json",
        }
        try:  # the flow waiting for its outcome notices when it never comes
            await self.call(
                "POST", "identity", "/face-provider/callback", until, content=body, headers=headers
            )
        except Interrupted:
            return

    async def close(self) -> None:
        for task in list(self._answers):
            task.cancel()
        await super().close()


async def run_load(
    driver: FaultTolerantDriver,
    families: list[Family],
    watch: FlowWatch,
    stop: asyncio.Event,
    in_flight: int,
) -> None:
    """Families `in_flight` at a time until `stop` (or none is left); returns once every flow
    started has ended."""
    queue = iter(families)

    async def worker() -> None:
        for family in queue:
            if stop.is_set():
                return
            await driver.family(family, watch, stop)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
