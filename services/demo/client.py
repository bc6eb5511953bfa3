"""The demo's client of the running services: registering the cast, binding, materials, review,
and following each request to its outcome."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx

from contracts.age import age_on
from contracts.names import mask_name
from contracts.vocabulary import BindingKind, Relation
from services.binding.handlers import china_today
from services.demo.people import (
    NANCHANG_DISTRICT,
    Person,
    born,
    household_page_pdf,
    signature_png,
)
from services.demo.stack import Stack
from services.review.domain import case_id_for
from services.review.events import CaseType
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role

REVIEWER_REGION = "360100"  # a reviewer of Nanchang city covers its districts
WAIT_S = 20.0  # the longest any one outcome may take before the demo calls it failed

Say = Callable[[str], None]


class DemoFailedError(Exception):
    """An expected outcome did not happen."""


@dataclass
class DemoClient:
    """The calls the story makes, as the holder's app and a reviewer would, and what it keeps
    of the answers; every outcome it expects is checked with `expect`."""

    stack: Stack
    token_secret: str
    say: Say
    rng: random.Random = field(default_factory=random.Random)
    pseudonyms: dict[str, str] = field(default_factory=dict)  # role -> pseudonym
    labels: dict[str, str] = field(default_factory=dict)  # member pseudonym -> label
    id_numbers: dict[str, str] = field(default_factory=dict)  # role -> ID number
    people: dict[str, Person] = field(default_factory=dict)  # role -> everyone registered
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(timeout=30)
        self.today = china_today(datetime.now(UTC))
        t = self.today
        self.holder = Person("holder", "李秀英", born(t, 38, 5, 12), female=True)
        self.cast = {
            "father": Person("father", "李建国", born(t, 70), female=False),
            "son": Person("son", "王小明", born(t, 10, 6, 1), female=False),
            "brother": Person("brother", "李志强", born(t, 35, 8, 20), female=False),
            "mother": Person("mother", "张桂兰", born(t, 66, 2, 2), female=True),
            "husband": Person("husband", "王伟", born(t, 40, 11, 3), female=False),
            "grandmother": Person("grandmother", "陈玉珍", born(t, 88, 1, 15), female=True),
        }

    # ---------------------------------------------------------------------------- plumbing

    def _token(self, role: Role, subject: str, regions: tuple[str, ...] = ()) -> dict[str, str]:
        principal = Principal(subject, role, regions)
        token = issue_token(principal, timedelta(hours=1), secret=self.token_secret)
        return {"Authorization": f"Bearer {token}"}

    @property
    def me(self) -> dict[str, str]:
        return self.as_insured("holder")

    def as_insured(self, role: str) -> dict[str, str]:
        return self._token(Role.INSURED, self.pseudonyms[role])

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.urls[service]}{path}"

    def expect(self, ok: bool, what: str) -> None:
        self.say(f"    {'✔' if ok else '✘'} {what}")
        if not ok:
            self.failures.append(what)

    async def close(self) -> None:
        await self.http.aclose()

    # ---------------------------------------------------------------------------- identity

    async def register(self, person: Person, *, personal_account: bool = False) -> str:
        """Register `person` through identity's API (as an operator); their pseudonym."""
        operator = self._token(Role.OPERATOR, "demo-operator")
        for _ in range(20):  # a made-up number may exist from an earlier run: draw again
            number = person.id_number(self.rng)
            body = {
                "name": person.name,
                "id_number": number,
                "insured_place": NANCHANG_DISTRICT,
                "personal_account": personal_account,
            }
            answer = await self.http.post(
                self.url("identity", "/persons"), json=body, headers=operator
            )
            if answer.status_code != 409:
                break
        if answer.status_code != 201:
            raise DemoFailedError(f"registering the {person.role}: {answer.status_code}")
        pseudonym: str = answer.json()["pseudonym"]
        self.pseudonyms[person.role], self.id_numbers[person.role] = pseudonym, number
        self.people[person.role] = person
        self.labels[pseudonym] = f"{mask_name(person.name)} ({person.role})"
        return pseudonym

    async def register_everyone(self) -> None:
        self.say("0. 参保人登记 Registering the family in the identity service (made-up people)")
        for person in (self.holder, *self.cast.values()):
            pseudonym = await self.register(person)
            age = age_on(person.birth_date, self.today)
            self.say(
                f"   {mask_name(person.name):<4} {person.role:<11} age {age:>2} → {pseudonym[:12]}…"
            )

    # ---------------------------------------------------------------------------- binding

    async def bind(self, form: dict[str, Any], holder: str = "holder") -> dict[str, Any]:
        """POST /bindings; while identity's registrations are still on their way to binding
        (409 holder_unknown / 422 person_not_found) the same request is sent again."""
        key = uuid4().hex
        headers = {**self.as_insured(holder), "Idempotency-Key": key}
        deadline = time.monotonic() + WAIT_S
        while True:
            answer = await self.http.post(
                self.url("binding", "/bindings"),
                json=form,
                headers=headers,
            )
            code = answer.json().get("code") if answer.status_code >= 400 else None
            if (
                code not in ("binding.holder_unknown", "binding.person_not_found")
                or time.monotonic() > deadline
            ):
                return {"status_code": answer.status_code, **answer.json()}
            await asyncio.sleep(0.1)

    async def upload(self, data: bytes, content_type: str, name: str) -> str:
        files = {"file": (name, data, content_type)}
        answer = await self.http.post(
            self.url("binding", "/materials"), files=files, headers=self.me
        )
        answer.raise_for_status()
        sha: str = answer.json()["sha256"]
        return sha

    async def provide_materials(self, request_id: str, role: str) -> None:
        """Download and sign the commitment letter, attach both household register pages."""
        letter = await self.http.get(
            self.url("binding", f"/bindings/{request_id}/commitment-letter"), headers=self.me
        )
        self.say(
            f"    个人承诺书 commitment letter: {len(letter.content):,} bytes,"
            f" {letter.headers['content-type']}"
        )
        signature = await self.upload(signature_png(self.holder.name), "image/png", "signature.png")
        signed = await self.http.post(
            self.url("binding", f"/bindings/{request_id}/commitment-letter/signature"),
            json={"signature_sha256": signature},
            headers=self.me,
        )
        self.expect(
            signed.status_code == 200,
            f"letter signed → waiting for {waits(signed.json())}",
        )
        pages = {
            "holder_household": await self.upload(
                household_page_pdf(self.holder, self.id_numbers["holder"]),
                "application/pdf",
                "holder.pdf",
            ),
            "member_household": await self.upload(
                household_page_pdf(self.people[role], self.id_numbers[role]),
                "application/pdf",
                "member.pdf",
            ),
        }
        submitted = await self.http.post(
            self.url("binding", f"/bindings/{request_id}/materials"), json=pages, headers=self.me
        )
        self.expect(
            submitted.status_code == 200,
            f"户口本 pages submitted → waiting for {waits(submitted.json())}",
        )

    @property
    def reviewer(self) -> dict[str, str]:
        return self._token(Role.REVIEWER, "demo-reviewer", (REVIEWER_REGION,))

    async def case_in_queue(self, request_id: str) -> str | None:
        """The request's case id once it shows in the reviewer's queue (None if it never does)."""
        case_id = case_id_for(CaseType.MEMBER_BINDING, request_id)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            queue = await self.http.get(
                self.url("review", "/cases"), params={"limit": 100}, headers=self.reviewer
            )
            if any(item["case_id"] == case_id for item in queue.json().get("items", [])):
                return case_id
            await asyncio.sleep(0.1)
        return None

    async def approve(self, request_id: str) -> None:
        """As a reviewer would: find the case in the region's queue, open it, approve it."""
        case_id = await self.case_in_queue(request_id)
        if case_id is None:
            self.expect(False, f"request {request_id[:8]}'s case reached the reviewer's queue")
            return
        url = self.url("review", f"/cases/{case_id}")
        case = (await self.http.get(url, headers=self.reviewer)).json()
        roles = ", ".join(m["role"] for m in case["materials"])
        self.say(f"    审核 reviewer of {REVIEWER_REGION} opens case {case_id[:8]}… ({roles})")
        decided = await self.http.post(f"{url}/approve", headers=self.reviewer)
        self.expect(decided.status_code in (200, 204), "reviewer approves the materials")

    async def follow(self, request_id: str, final: str) -> dict[str, Any]:
        """Poll the request, printing each state it passes through, until `final` (or a
        terminal state) is reached."""
        seen: tuple[str, tuple[str, ...]] | None = None
        deadline = time.monotonic() + WAIT_S
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = (
                await self.http.get(self.url("binding", f"/bindings/{request_id}"), headers=self.me)
            ).json()
            state = (view.get("status", "?"), tuple(view.get("waiting_for", ())))
            if state != seen:
                seen = state
                waiting = f" (waiting for {', '.join(state[1])})" if state[1] else ""
                detail = f": {view['rejection_detail']}" if view.get("rejection_detail") else ""
                self.say(f"    … {state[0]}{detail}{waiting}")
            if state[0] in (final, "bound", "rejected", "expired", "revoked"):
                break
            await asyncio.sleep(0.05)
        self.expect(view.get("status") == final, f"request ends {final}")
        return view

    def form(self, role: str, relation: Relation, **more: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "kind": BindingKind.FAMILY_ACCOUNT.value,
            "method": "id_number",
            "relation": relation.value,
            "member_name": self.people[role].name,
            "member_id_number": self.id_numbers[role],
        }
        return {**base, **more}


def waits(answer: dict[str, Any]) -> str:
    return ", ".join(answer.get("waiting_for", [])) or "nothing"
