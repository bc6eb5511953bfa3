"""The review HTTP API on the in-memory adapters: roles per endpoint, cases of other regions
reading as not found, bilingual field-level refusals, one decision per case, materials with
safe headers, and no stack trace or typed ID number in any answer or log line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import structlog.testing

from contracts.vocabulary import MaterialRef, MaterialRole
from services.review.api import ReviewApi, create_app
from services.review.commands import NewCase
from services.review.events import CaseType
from services.review.handlers import ReviewDeps, ReviewHandlers
from services.review.queries import QueuePage, QueueStats
from services.runtime.auth import issue_token
from services.runtime.blobs import InMemoryBlobStore
from services.runtime.decider import CommandContext
from services.runtime.memory import InMemoryEventStore
from services.runtime.principal import Principal, Role
from tests.unit.review.builders import BEIJING, MATERIALS, NANCHANG, NANCHANG_2, NOW, REGION

SECRET = "s" * 32
OPERATOR = Principal("ops-1", Role.OPERATOR)
INSURED = Principal("p_someone", Role.INSURED)
ID_NUMBER = "360426199101010047"
PDF = b"%PDF-1.4 commitment letter"


class FakeQueries:
    """Answers every query with nothing, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    async def queue(self, reviewer: Principal, now: datetime, **kw: Any) -> QueuePage:
        self.asked.append(("queue", (reviewer.subject, kw)))
        return QueuePage([], None)

    async def search(
        self, reviewer: Principal, id_number: str, now: datetime, **kw: Any
    ) -> QueuePage:
        self.asked.append(("search", (reviewer.subject, len(id_number))))
        return QueuePage([], None)

    async def stats(self, now: datetime) -> QueueStats:
        return QueueStats([], 0, 0, 0)

    async def overdue(self, opened_before: datetime, limit: int) -> list[str]:
        return []


def bearer(who: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(who, timedelta(hours=1), secret=SECRET)}"}


class World:
    def __init__(self) -> None:
        self.blobs = InMemoryBlobStore()
        self.queries = FakeQueries()
        self.handlers = ReviewHandlers(ReviewDeps(InMemoryEventStore(), self.blobs, self.queries))

    @asynccontextmanager
    async def open(self) -> AsyncIterator[ReviewApi]:
        async def ready() -> bool:
            return True

        yield ReviewApi(self.handlers, self.queries, lambda: NOW, ready)

    async def case(self, request_id: str = "req-1") -> str:
        stored = await self.blobs.put(PDF)
        letter = MaterialRef(
            role=MaterialRole.COMMITMENT_LETTER,
            sha256=stored.sha256,
            content_type="application/pdf",
        )
        new = NewCase(
            CaseType.MEMBER_BINDING, request_id, REGION, "p_h", "p_m", None, None,
            (letter, *MATERIALS[1:]),
        )  # fmt: skip
        ctx = CommandContext(uuid4(), NOW, "corr", "binding")
        return (await self.handlers.open_case(new, ctx)).case_id


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SECRET, world.open)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            yield client


async def test_health_and_readiness_need_no_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"ready": True}


@pytest.mark.parametrize(
    ("method", "path", "who", "status"),
    [
        ("GET", "/cases", None, 401),
        ("GET", "/cases", INSURED, 403),
        ("GET", "/cases", OPERATOR, 403),
        ("GET", "/stats", NANCHANG, 403),
        ("PUT", "/policies/36/member_binding", NANCHANG, 403),
    ],
)
async def test_each_endpoint_admits_its_role_only(
    http: httpx.AsyncClient, method: str, path: str, who: Principal | None, status: int
) -> None:
    headers = bearer(who) if who else {}
    answer = await http.request(method, path, headers=headers, json={"mode": "manual"})
    assert answer.status_code == status
    assert set(answer.json()["message"]) == {"zh", "en"}


async def test_a_case_of_another_region_reads_as_not_found_everywhere(
    http: httpx.AsyncClient, world: World
) -> None:
    case_id = await world.case()
    sha256 = (await world.handlers.case_detail(case_id, NANCHANG)).materials[0].sha256
    for method, path in [
        ("GET", f"/cases/{case_id}"),
        ("POST", f"/cases/{case_id}/claim"),
        ("POST", f"/cases/{case_id}/approve"),
        ("GET", f"/cases/{case_id}/materials/{sha256}"),
    ]:
        answer = await http.request(method, path, headers=bearer(BEIJING))
        assert (answer.status_code, answer.json()["code"]) == (404, "case.not_found")
    unknown = await http.get("/cases/nope", headers=bearer(NANCHANG))
    assert unknown.json() == (await http.get(f"/cases/{case_id}", headers=bearer(BEIJING))).json()


async def test_a_case_is_decided_once_and_the_second_decision_is_a_conflict(
    http: httpx.AsyncClient, world: World
) -> None:
    case_id = await world.case()
    first = await http.post(f"/cases/{case_id}/approve", headers=bearer(NANCHANG))
    assert (first.status_code, first.json()["status"]) == (200, "approved")
    body = {"reason": "other", "note": ""}
    second = await http.post(f"/cases/{case_id}/reject", json=body, headers=bearer(NANCHANG_2))
    assert second.status_code == 409
    assert second.json()["code"] == "case.decided"
    assert second.json()["message"]["zh"] == "该审核业务已有审核结果"


async def test_an_idempotency_key_makes_a_retried_approval_answer_as_the_first(
    http: httpx.AsyncClient, world: World
) -> None:
    case_id = await world.case()
    headers = bearer(NANCHANG) | {"Idempotency-Key": "approve-1"}
    first = await http.post(f"/cases/{case_id}/approve", headers=headers)
    retry = await http.post(f"/cases/{case_id}/approve", headers=headers)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert [h["event"] for h in retry.json()["history"]] == [
        "ReviewCaseOpened",
        "MaterialsApproved",
    ]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"reason": "ugly"}, "reason", "request.invalid"),
        ({"reason": "other", "note": "长" * 201}, "note", "request.invalid"),
        (
            {"reason": "other", "note": "身份证360426199101010047"},
            "note",
            "case.note_personal_data",
        ),
        ({"reason": "other", "extra": 1}, "extra", "request.invalid"),
    ],
    ids=["reason", "note-length", "note-personal", "extra"],
)
async def test_a_refused_rejection_names_its_field_in_both_languages(
    http: httpx.AsyncClient, world: World, body: dict[str, Any], field: str, code: str
) -> None:
    case_id = await world.case()
    with structlog.testing.capture_logs() as logs:
        answer = await http.post(f"/cases/{case_id}/reject", json=body, headers=bearer(NANCHANG))
    assert (answer.status_code, answer.json()["field"], answer.json()["code"]) == (422, field, code)
    assert answer.json()["message"]["zh"]
    assert ID_NUMBER not in answer.text
    assert ID_NUMBER not in repr(logs)


async def test_a_material_is_served_inline_with_its_type_and_no_sniffing(
    http: httpx.AsyncClient, world: World
) -> None:
    case_id = await world.case()
    case = (await http.get(f"/cases/{case_id}", headers=bearer(NANCHANG))).json()
    letter = await http.get(case["materials"][0]["href"], headers=bearer(NANCHANG))
    assert letter.content == PDF
    assert letter.headers["content-type"] == "application/pdf"
    assert letter.headers["content-disposition"] == "inline"
    assert letter.headers["x-content-type-options"] == "nosniff"
    not_a_hash = await http.get(f"/cases/{case_id}/materials/xyz", headers=bearer(NANCHANG))
    assert (not_a_hash.status_code, not_a_hash.json()["field"]) == (422, "sha256")


async def test_the_search_takes_the_id_number_in_the_body_and_never_logs_it(
    http: httpx.AsyncClient, world: World
) -> None:
    with structlog.testing.capture_logs() as logs:
        answer = await http.post(
            "/cases/search", json={"id_number": ID_NUMBER}, headers=bearer(NANCHANG)
        )
    assert answer.json() == {"items": [], "next_after": None}
    assert world.queries.asked == [("search", ("rev-nc", 18))]
    assert ID_NUMBER not in repr(logs)


async def test_an_operator_sets_a_policy_and_a_bad_region_is_refused_by_field(
    http: httpx.AsyncClient,
) -> None:
    body = {"mode": "rules", "checks": ["materials_present"], "on_failure": "reject"}
    answer = await http.put("/policies/360000/member_binding", json=body, headers=bearer(OPERATOR))
    assert answer.json() | {"changed_at": None} == {
        "policy_id": "36/member_binding",
        "region_prefix": "36",
        "case_type": "member_binding",
        "mode": "rules",
        "checks": ["materials_present"],
        "on_failure": "reject",
        "version": 1,
        "changed_by": "ops-1",
        "changed_at": None,
    }
    bad = await http.put("/policies/3/member_binding", json=body, headers=bearer(OPERATOR))
    assert (bad.status_code, bad.json()["field"], bad.json()["code"]) == (
        422, "region", "policy.region",
    )  # fmt: skip
    manual_checks = {"mode": "manual", "checks": ["materials_present"]}
    mixed = await http.put("/policies/36/filing", json=manual_checks, headers=bearer(OPERATOR))
    assert (mixed.status_code, mixed.json()["field"]) == (422, "checks")
    listed = await http.get("/policies", headers=bearer(OPERATOR))
    assert [p["policy_id"] for p in listed.json()] == ["36/member_binding"]


async def test_an_unexpected_failure_is_a_bare_500(
    http: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> QueuePage:
        raise RuntimeError(f"boom {ID_NUMBER}")

    monkeypatch.setattr(world.queries, "queue", broken)
    with structlog.testing.capture_logs() as logs:
        answer = await http.get("/cases", headers=bearer(NANCHANG))
    assert (answer.status_code, answer.json()["code"]) == (500, "internal")
    assert ID_NUMBER not in answer.text
    assert ID_NUMBER not in repr(logs)
