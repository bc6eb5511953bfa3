"""A holder's app for the bench and the fault suite: registering persons, the review policy, the
materials every flow attaches, and the forms and calls of one binding."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from contracts.vocabulary import BindingKind, Relation
from services.bench.common import BenchError
from services.bench.stack import POLICY_REGION, Insured, Services
from services.binding.rules import Method
from services.demo.people import NANCHANG_DISTRICT, household_page_pdf, signature_png
from services.review.events import CaseType, ReviewMode
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role


class Driver:
    """A holder's app for many holders: tokens issued once, one HTTP client for all."""

    def __init__(
        self, stack: Services, secret: str, concurrency: int, timeout_s: float = 60.0
    ) -> None:
        self.stack, self.secret = stack, secret
        limits = httpx.Limits(max_connections=concurrency + 20, max_keepalive_connections=None)
        self.http = httpx.AsyncClient(timeout=timeout_s, limits=limits)
        self.operator = self.token(Principal("bench-operator", Role.OPERATOR))
        self.tokens: dict[str, dict[str, str]] = {}
        self.signature = self.holder_page = self.member_page = ""

    def token(self, principal: Principal) -> dict[str, str]:
        token = issue_token(principal, timedelta(hours=2), secret=self.secret)
        return {"Authorization": f"Bearer {token}"}

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.urls[service]}{path}"

    async def register(self, person: Insured) -> Insured:
        body = {
            "name": person.person.name,
            "id_number": person.id_number,
            "insured_place": NANCHANG_DISTRICT,
        }
        answer = await self.http.post(
            self.url("identity", "/persons"), json=body, headers=self.operator
        )
        if answer.status_code != 201:
            raise BenchError(f"registering a person: {answer.status_code} {code_of(answer)}")
        pseudonym = str(answer.json()["pseudonym"])
        self.tokens[pseudonym] = self.token(Principal(pseudonym, Role.INSURED))
        return Insured(person.person, person.id_number, pseudonym)

    async def auto_approve(self) -> dict[str, Any]:
        body = {"mode": ReviewMode.AUTO_APPROVE.value}
        path = f"/policies/{POLICY_REGION}/{CaseType.MEMBER_BINDING.value}"
        answer = await self.http.put(self.url("review", path), json=body, headers=self.operator)
        if answer.status_code != 200:
            raise BenchError(f"setting the review policy: {answer.status_code} {code_of(answer)}")
        policy: dict[str, Any] = answer.json()
        return policy

    async def upload_materials(self, holder: Insured, member: Insured) -> None:
        """The signature image and both household pages, once: every flow attaches them."""
        headers = self.tokens[holder.pseudonym]

        async def upload(data: bytes, content_type: str, name: str) -> str:
            files = {"file": (name, data, content_type)}
            answer = await self.http.post(
                self.url("binding", "/materials"), files=files, headers=headers
            )
            if answer.status_code != 201:
                raise BenchError(f"uploading {name}: {answer.status_code} {code_of(answer)}")
            return str(answer.json()["sha256"])

        self.signature = await upload(signature_png("bench"), "image/png", "signature.png")
        self.holder_page = await upload(
            household_page_pdf(holder.person, holder.id_number), "application/pdf", "holder.pdf"
        )
        self.member_page = await upload(
            household_page_pdf(member.person, member.id_number), "application/pdf", "member.pdf"
        )

    @staticmethod
    def form(member: Insured, relation: Relation) -> dict[str, str]:
        """A family-account request naming the member by ID number."""
        return {
            "kind": BindingKind.FAMILY_ACCOUNT.value,
            "method": Method.ID_NUMBER.value,
            "relation": relation.value,
            "member_name": member.person.name,
            "member_id_number": member.id_number,
        }

    def material_calls(self, request_id: str) -> tuple[tuple[str, str, dict[str, str]], ...]:
        """The holder's calls after the request, (name, path, body) each: sign the letter with
        the uploaded signature, then submit both household pages."""
        return (
            ("sign", f"/bindings/{request_id}/commitment-letter/signature",
             {"signature_sha256": self.signature}),
            ("submit", f"/bindings/{request_id}/materials",
             {"holder_household": self.holder_page, "member_household": self.member_page}),
        )  # fmt: skip

    async def close(self) -> None:
        await self.http.aclose()


def code_of(answer: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(answer.json().get("code", ""))
    return ""


async def gather_bounded(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def count_rows(conn: asyncpg.Connection, schema: str, table: str) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}'))


async def wait_for_directories(
    conn: asyncpg.Connection, schemas: dict[str, str], persons: int, timeout_s: float
) -> float:
    """Until binding's persons and review's lookups know all `persons`; the seconds it took."""
    started = time.perf_counter()
    while True:
        known = await count_rows(conn, schemas["binding"], "persons")
        looked_up = await count_rows(conn, schemas["review"], "person_lookups")
        if known >= persons and looked_up >= persons:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            raise BenchError(
                f"after {timeout_s:.0f} s binding knows {known} and review {looked_up} of "
                f"{persons} registered persons"
            )
        await asyncio.sleep(0.2)
