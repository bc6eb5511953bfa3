"""The family-binding story the demo plays against the running services, step by step."""


from __future__ import annotations

import asyncio
import random
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx

from contracts.names import mask_name
from services.binding.handlers import china_today
from services.binding.letter import KIND_ZH, RELATION_ZH
from services.binding.rules import BindingKind, Relation
from services.demo.people import (
    NANCHANG_DISTRICT,
    Person,
    born,
    household_page_pdf,
    signature_png,
)
from services.demo.stack import Stack
from services.identity.age import age_on
from services.identity.face_check import FaceFailureReason
from services.identity.face_provider import SimulatedOutcome
from services.review.domain import case_id_for
from services.review.events import CaseType
from services.runtime.auth import Principal, Role, issue_token

REVIEWER_REGION = "360100"  # a reviewer of Nanchang city covers its districts
PASSWORD = "135790"  # noqa: S105 - the demo holder's payment password, made up
WAIT_S = 20.0  # the longest any one outcome may take before the demo calls it failed

Say = Callable[[str], None]


class DemoFailedError(Exception):
    """An expected outcome did not happen."""


@dataclass
class Scenario:
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
            f"letter signed → waiting for {_waits(signed.json())}",
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
            f"户口本 pages submitted → waiting for {_waits(submitted.json())}",
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

    # ---------------------------------------------------------------------------- the story

    async def run(self) -> bool:
        started = time.monotonic()
        await self.register_everyone()
        await self.step_by_id_number(
            1, "father", Relation.PARENT, "父亲, 70: 身份证号+材料 → 审核 → 本人刷脸"
        )
        await self.step_by_id_number(
            2, "son", Relation.CHILD, "儿子, 10: 身份证号+材料 → 审核 (未满16周岁，无需刷脸)"
        )
        await self.step_newborn()
        await self.step_face_fails()
        await self.step_limit()
        await self.step_revoke()
        await self.show_family()
        self.where_to_read()
        took = time.monotonic() - started
        verdict = (
            "every expected outcome happened"
            if not self.failures
            else f"{len(self.failures)} expected outcome(s) missing"
        )
        self.say(f"\nDone in {took:.1f} s: {verdict}.")
        for failure in self.failures:
            self.say(f"  ✘ {failure}")
        return not self.failures

    async def step_by_id_number(self, n: int, role: str, relation: Relation, title: str) -> None:
        self.say(f"\n{n}. {title}")
        answer = await self.bind(self.form(role, relation))
        ok = answer["status_code"] == 202
        self.expect(
            ok,
            f"202 Accepted, request {answer.get('request_id', '?')[:8]}…"
            f" waiting for {_waits(answer)}",
        )
        if not ok:
            return
        request_id = answer["request_id"]
        await self.provide_materials(request_id, role)
        await self.approve(request_id)
        await self.follow(request_id, "bound")

    async def step_newborn(self) -> None:
        self.say("\n3. 新生儿, 出生医学证明 → 母亲（本人）刷脸, 无需审核")
        baby = Person("newborn", "王小宝", self.today - timedelta(days=20), female=False)
        form = {
            "kind": BindingKind.FAMILY_ACCOUNT.value,
            "method": "birth_certificate",
            "relation": Relation.CHILD.value,
            "member_name": baby.name,
            "member_birth_date": baby.birth_date.isoformat(),
            "mother_name": self.holder.name,
            "mother_id_number": self.id_numbers["holder"],
            "birth_certificate_number": f"R36{self.rng.randrange(10**8):08d}",
        }
        answer = await self.bind(form)
        ok = answer["status_code"] == 202
        self.expect(
            ok,
            f"202 Accepted, waiting for {_waits(answer)} (the mother's face)",
        )
        if ok:
            self.labels[answer["member"]] = f"{mask_name(baby.name)} (newborn)"
            await self.follow(answer["request_id"], "bound")

    async def step_face_fails(self) -> None:
        self.say("\n4. 弟弟, 35: 本人刷脸未通过 → 绑定失败（原因）")
        brother = self.pseudonyms["brother"]
        self.stack.simulator.set_outcome(brother, SimulatedOutcome(FaceFailureReason.NO_MATCH, 0.5))
        answer = await self.bind(self.form("brother", Relation.SIBLING))
        ok = answer["status_code"] == 202
        self.expect(ok, f"202 Accepted, waiting for {_waits(answer)}")
        if ok:
            view = await self.follow(answer["request_id"], "rejected")
            self.expect(
                view.get("rejection_reason") == "face_failed",
                f"reason: {view.get('rejection_reason')} / {view.get('rejection_detail')}",
            )

    async def step_limit(self) -> None:
        self.say("\n5. 上限5人: two more requests wait for materials, then a 6th member is refused")
        for role, relation in (("mother", Relation.PARENT), ("husband", Relation.SPOUSE)):
            answer = await self.bind(self.form(role, relation))
            self.expect(
                answer["status_code"] == 202,
                f"{role}: 202, {answer.get('status')} (waiting for {_waits(answer)})",
            )
        refused = await self.bind(self.form("grandmother", Relation.GRANDPARENT))
        message = refused.get("message", {})
        self.expect(
            refused["status_code"] == 409 and refused.get("code") == "binding.family_full",
            f"6th member refused: {refused['status_code']} {refused.get('code')}"
            f"「{message.get('zh')}」/ {message.get('en')}",
        )

    async def step_revoke(self) -> None:
        self.say("\n6. 解除绑定: she unbinds her son, confirmed with her 6-digit payment password")
        identity = self.stack.urls["identity"]
        check = (
            await self.http.post(
                f"{identity}/face-checks", json={"purpose": "activation"}, headers=self.me
            )
        ).json()
        for _ in range(int(WAIT_S / 0.05)):
            status = (
                await self.http.get(f"{identity}/face-checks/{check['check_id']}", headers=self.me)
            ).json()
            if status["status"] != "pending":
                break
            await asyncio.sleep(0.05)
        activation = {"channel": "national_app", "face_check_id": check["check_id"]}
        await self.http.post(
            f"{identity}/persons/me/voucher-activations", json=activation, headers=self.me
        )
        password = {"password": PASSWORD, "channel": "national_app"}
        await self.http.put(
            f"{identity}/persons/me/payment-password", json=password, headers=self.me
        )
        verified = (
            await self.http.post(
                f"{identity}/persons/me/payment-password/verification",
                json={"password": PASSWORD},
                headers=self.me,
            )
        ).json()
        self.expect(
            verified.get("matched") is True,
            "identity: payment password matched, confirmation issued",
        )
        body = {
            "kind": BindingKind.FAMILY_ACCOUNT.value,
            "confirmation": verified.get("confirmation") or "",
        }
        son = self.pseudonyms["son"]
        revoked = await self.http.post(
            self.url("binding", f"/family/members/{son}/revocation"), json=body, headers=self.me
        )
        self.expect(
            revoked.status_code == 200 and revoked.json().get("status") == "revoked",
            "binding: son revoked",
        )

    async def show_family(self) -> None:
        expected = {
            "father": "bound",
            "newborn": "bound",
            "brother": "rejected",
            "son": "revoked",
            "mother": "awaiting_materials",
            "husband": "awaiting_materials",
        }
        deadline = time.monotonic() + WAIT_S
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:  # the projection follows the log within moments
            rows = (await self.http.get(self.url("binding", "/family"), headers=self.me)).json()
            shown = {
                self.labels.get(r["member"], "?").split("(")[-1].rstrip(")"): r["status"]
                for r in rows
            }
            if shown == expected:
                break
            await asyncio.sleep(0.1)
        self.say("\n我的家庭成员 — the family view (GET /family, from the projection):")
        header = ("member", "relation", "kind", "status", "since (UTC)")
        self.say("  " + "".join(_pad(h, w) for h, w in zip(header, _WIDTHS, strict=True)))
        for row in rows:
            relation = RELATION_ZH.get(Relation(row["relation"]), "?") if row["relation"] else "?"
            status = row["status"] + (
                f" ({row['rejection_detail']})" if row.get("rejection_detail") else ""
            )
            since = row["since"][:19].replace("T", " ")
            who = self.labels.get(row["member"], row["member"][:12])
            kind = KIND_ZH[BindingKind(row["kind"])]
            cells = (who, relation, kind, status, since)
            self.say("  " + "".join(_pad(c, w) for c, w in zip(cells, _WIDTHS, strict=True)))
        self.expect(shown == expected, "the family view shows every outcome")

    def where_to_read(self) -> None:
        ns = self.stack.namespace
        self.say("\nThe events (CloudEvents on Kafka, pseudonyms only):")
        for service in ("identity", "binding", "review"):
            self.say(f"  {ns}.{service}.v1")
        self.say(
            "  read them: java -cp '.local/kafka/libs/*'"
            " org.apache.kafka.tools.consumer.ConsoleConsumer"
            f" --bootstrap-server {self.stack.kafka} --topic {ns}.binding.v1 --from-beginning"
            " --property print.key=true --property print.headers=true"
        )


_WIDTHS = (22, 12, 12, 24, 20)


def _pad(text: str, width: int) -> str:
    """Left-justify counting CJK characters as two columns, as terminals show them."""
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(1, width - shown)


def _waits(answer: dict[str, Any]) -> str:
    return ", ".join(answer.get("waiting_for", [])) or "nothing"
