"""The family-binding story the demo plays against the running services, step by step."""

from __future__ import annotations

import asyncio
import time
import unicodedata
from datetime import timedelta
from typing import Any

from contracts.names import mask_name
from contracts.vocabulary import KIND_ZH, RELATION_ZH, BindingKind, Relation
from services.demo.client import WAIT_S, DemoClient, waits
from services.demo.people import Person
from services.identity.face_check import FaceFailureReason
from services.identity.face_provider import SimulatedOutcome

PASSWORD = "135790"  # noqa: S105 - the demo holder's payment password, made up


class Scenario(DemoClient):
    """The story: each step binds a member of the cast and checks what the platform answers."""

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
            f" waiting for {waits(answer)}",
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
            f"202 Accepted, waiting for {waits(answer)} (the mother's face)",
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
        self.expect(ok, f"202 Accepted, waiting for {waits(answer)}")
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
                f"{role}: 202, {answer.get('status')} (waiting for {waits(answer)})",
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
