"""The review service on the real PostgreSQL and Kafka: a binding submission published on the
binding topic opens a case in its region's queue, and reviewers' decisions, automatic policies,
conflicts, withdrawals, escalation and the search by ID number are seen from the outside."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts import review
from services.review.app import ReviewSettings, build_app
from services.runtime.auth import issue_token, jwt_secret
from services.runtime.blobs import BLOB_SCHEMA, PostgresBlobStore, blob_migrations
from services.runtime.kafka_codec import to_record
from services.runtime.migrate import migrate, service_migrations
from services.runtime.pii import lookup_hash, lookup_key
from services.runtime.principal import Principal, Role
from tests.builders import recorded_event
from tests.integration.test_messaging import create_topics, read_topic, wait_for

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n% commitment letter\n"
PNG = b"\x89PNG\r\n\x1a\n signature"
JPEG = b"\xff\xd8\xff household page"
NANCHANG = Principal("rev-nc", Role.REVIEWER, ("360100",))
NANCHANG_2 = Principal("rev-nc-2", Role.REVIEWER, ("360100",))
BEIJING = Principal("rev-bj", Role.REVIEWER, ("110000",))
OPERATOR = Principal("ops-1", Role.OPERATOR)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReviewWorld:
    settings: ReviewSettings
    schema: str
    pool: asyncpg.Pool
    http: httpx.AsyncClient
    producer: AIOKafkaProducer
    materials: list[dict[str, str]]

    def bearer(self, who: Principal) -> dict[str, str]:
        secret = jwt_secret(self.settings)
        return {"Authorization": f"Bearer {issue_token(who, timedelta(hours=1), secret=secret)}"}

    async def publish(self, service: str, stream_id: str, type_: str, data: dict[str, Any]) -> None:
        """One event as `service`'s relay would put it on its topic."""
        meta = {"correlation_id": f"corr-{uuid.uuid4().hex[:8]}", "actor": "test"}
        event = recorded_event(stream_id, type_, data, at=now(), metadata=meta)
        record = to_record(event, service)
        topic = self.settings.topic(service)
        await self.producer.send_and_wait(topic, record.value, record.key, headers=record.headers)

    async def submit(self, region: str = "360102", **over: Any) -> str:
        """BindingMaterialsSubmitted for a new request; returns its request id."""
        data = {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "holder": "p_holder_0123456789",
            "member": "p_member_0123456789",
            "kind": "family_account",
            "relation": "parent",
            "region": region,
            "materials": self.materials,
        } | over
        await self.publish("binding", f"holder-{data['holder']}", "BindingMaterialsSubmitted", data)
        return str(data["request_id"])

    async def queue(self, who: Principal, **params: Any) -> list[dict[str, Any]]:
        answer = await self.http.get("/cases", params=params, headers=self.bearer(who))
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def case_of(self, request_id: str, who: Principal = NANCHANG) -> dict[str, Any]:
        """The case the request opened, once the queue shows it (or its detail once decided)."""

        async def opened() -> bool:
            count = await self.pool.fetchval(
                f"SELECT count(*) FROM {self.schema}.cases WHERE request_id = $1", request_id
            )
            return bool(count)

        await wait_for(opened, 40, f"the case of {request_id}")
        case_id = await self.pool.fetchval(
            f"SELECT case_id FROM {self.schema}.cases WHERE request_id = $1", request_id
        )
        answer = await self.http.get(f"/cases/{case_id}", headers=self.bearer(who))
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def wait_status(self, case_id: str, status: str) -> None:
        async def reached() -> bool:
            found = await self.pool.fetchval(
                f"SELECT status FROM {self.schema}.cases WHERE case_id = $1", case_id
            )
            return bool(found == status)

        await wait_for(reached, 40, f"case {case_id} to be {status}")

    async def decisions(self, request_id: str) -> list[Any]:
        """The review topic's records of decisions on `request_id`, once one is there."""

        def decided(records: list[Any]) -> bool:
            return any(_is_decision(r, request_id) for r in records)

        records = await read_topic(
            self.settings.kafka_bootstrap_servers, self.settings.topic("review"), decided, 40
        )
        return [r for r in records if _is_decision(r, request_id)]


def _is_decision(record: Any, request_id: str) -> bool:
    types = {k: v.decode() for k, v in record.headers}.get("ce_type", "")
    return types.split(".")[-2] in {"MaterialsApproved", "MaterialsRejected"} and (
        request_id.encode() in record.value
    )


async def review_world(
    kafka_bootstrap: str, pool: asyncpg.Pool, schema: str, **settings: Any
) -> AsyncIterator[ReviewWorld]:
    """DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS are exported by the infra fixture."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    config = ReviewSettings(topic_namespace=namespace, **settings)
    async with pool.acquire() as proxy:
        conn = cast(asyncpg.Connection, proxy)
        await migrate(conn, schema, service_migrations("review"))
        await migrate(conn, BLOB_SCHEMA, blob_migrations())
    topics = [config.topic(s) for s in ("binding", "identity", "review")]
    await create_topics(kafka_bootstrap, *topics, partitions=1)
    blobs = PostgresBlobStore(pool)
    roles = ("commitment_letter", "signature", "holder_household", "member_household")
    stored = [await blobs.put(data + uuid.uuid4().bytes) for data in (PDF, PNG, JPEG, JPEG)]
    materials = [
        {"role": role, "sha256": s.sha256, "content_type": s.content_type}
        for role, s in zip(roles, stored, strict=True)
    ]
    app = build_app(config, schema=schema)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://review") as http:
                yield ReviewWorld(config, schema, pool, http, producer, materials)
    finally:
        await producer.stop()


async def gather_statuses(*calls: Callable[[], Any]) -> list[int]:
    answers = await asyncio.gather(*(call() for call in calls))
    return sorted(a.status_code for a in answers)


@pytest.fixture
async def world(
    kafka_bootstrap: str, db_pool: asyncpg.Pool, pg_schema: str
) -> AsyncIterator[ReviewWorld]:
    async for made in review_world(kafka_bootstrap, db_pool, pg_schema):
        yield made


# ----------------------------------------------------------------------------------- tests


async def test_a_submission_on_kafka_opens_a_case_in_its_regions_queue_and_approval_is_published(
    world: ReviewWorld,
) -> None:
    request_id = await world.submit(region="360102")
    case = await world.case_of(request_id)
    case_id = case["case_id"]
    assert (case["status"], case["region"], case["policy_id"], case["policy_version"]) == (
        "open", "360102", "*/member_binding", 0,
    )  # fmt: skip
    assert [m["role"] for m in case["materials"]] == [m["role"] for m in world.materials]
    (entry,) = await world.queue(NANCHANG)
    assert entry["case_id"] == case_id
    assert entry["member"] == "p_memb…6789"  # masked
    assert [e["event"] for e in case["history"]] == ["ReviewCaseOpened"]

    # Another region's reviewer neither sees nor reaches it.
    assert await world.queue(BEIJING) == []
    beijing = world.bearer(BEIJING)
    for answer in (
        await world.http.get(f"/cases/{case_id}", headers=beijing),
        await world.http.post(f"/cases/{case_id}/approve", headers=beijing),
        await world.http.get(case["materials"][0]["href"], headers=beijing),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "case.not_found"

    # The materials, for the covering reviewer only, and only the case's own hashes.
    mine = world.bearer(NANCHANG)
    letter = await world.http.get(case["materials"][0]["href"], headers=mine)
    assert letter.status_code == 200
    assert letter.content.startswith(b"%PDF-")
    assert letter.headers["content-type"] == "application/pdf"
    assert letter.headers["content-disposition"] == "inline"
    assert letter.headers["x-content-type-options"] == "nosniff"
    stranger = await world.http.get(f"/cases/{case_id}/materials/{'0' * 64}", headers=mine)
    assert (stranger.status_code, stranger.json()["code"]) == (404, "case.material_not_found")

    approved = await world.http.post(f"/cases/{case_id}/approve", headers=mine)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "rev-nc")
    (record,) = await world.decisions(request_id)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_type"].endswith(".MaterialsApproved.v1")
    assert headers["ce_subject"] == f"case-{case_id}"
    body = review.MaterialsApproved.model_validate_json(record.value)
    assert (body.request_id, body.case_type, body.decided_by) == (
        request_id, "member_binding", "rev-nc",
    )  # fmt: skip
    await world.wait_status(case_id, "approved")
    assert await world.queue(NANCHANG) == []
    again = await world.http.post(f"/cases/{case_id}/approve", headers=mine)
    assert (again.status_code, again.json()["code"]) == (409, "case.decided")


async def test_a_redelivered_submission_opens_no_second_case(world: ReviewWorld) -> None:
    request_id = await world.submit()
    await world.submit(request_id=request_id)  # binding's relay sent it again
    other = await world.submit()
    await world.case_of(other)
    assert len(await world.queue(NANCHANG)) == 2


async def test_an_auto_approve_region_decides_new_cases_only_and_names_its_policy(
    world: ReviewWorld,
) -> None:
    before = await world.submit(region="360102")
    waiting = await world.case_of(before)
    operator = world.bearer(OPERATOR)
    body = {"mode": "auto_approve"}
    changed = await world.http.put("/policies/360100/member_binding", json=body, headers=operator)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["policy_id"], changed.json()["version"]) == ("3601/member_binding", 1)

    after = await world.submit(region="360102")
    elsewhere = await world.submit(region="360702")  # Ganzhou: not under the Nanchang policy
    (decision,) = await world.decisions(after)
    approved = review.MaterialsApproved.model_validate_json(decision.value)
    assert approved.decided_by == "policy:3601/member_binding/v1"
    decided = await world.case_of(after)
    assert (decided["status"], decided["policy_version"], decided["mode"]) == (
        "approved", 1, "auto_approve",
    )  # fmt: skip
    assert [e["event"] for e in decided["history"]] == ["ReviewCaseOpened", "MaterialsApproved"]
    # The case opened before the change keeps its policy and still waits for a reviewer.
    jiangxi = Principal("rev-jx", Role.REVIEWER, ("360000",))
    await world.case_of(elsewhere, jiangxi)
    queue = {e["case_id"] for e in await world.queue(jiangxi)}
    assert waiting["case_id"] in queue
    assert decided["case_id"] not in queue
    assert len(queue) == 2
    kept = await world.http.get(f"/cases/{waiting['case_id']}", headers=world.bearer(NANCHANG))
    assert (kept.json()["status"], kept.json()["policy_version"]) == ("open", 0)
    listed = await world.http.get("/policies", headers=operator)
    assert [p["policy_id"] for p in listed.json()] == ["3601/member_binding"]


async def test_rules_reject_incomplete_materials_in_a_region_that_says_so(
    world: ReviewWorld,
) -> None:
    body = {"mode": "rules", "on_failure": "reject"}
    answer = await world.http.put(
        "/policies/36/member_binding", json=body, headers=world.bearer(OPERATOR)
    )
    assert answer.json()["checks"] == ["materials_present", "material_types", "relation_allowed"]
    complete = await world.submit()
    missing = await world.submit(materials=world.materials[:3])
    (ok,) = await world.decisions(complete)
    (refused,) = await world.decisions(missing)
    assert review.MaterialsApproved.model_validate_json(ok.value).request_id == complete
    rejected = review.MaterialsRejected.model_validate_json(refused.value)
    assert rejected.reason == "materials_missing"


async def test_two_reviewers_approving_at_once_give_one_decision_and_one_conflict(
    world: ReviewWorld,
) -> None:
    case_id = (await world.case_of(await world.submit()))["case_id"]
    path = f"/cases/{case_id}/approve"
    statuses = await gather_statuses(
        lambda: world.http.post(path, headers=world.bearer(NANCHANG)),
        lambda: world.http.post(path, headers=world.bearer(NANCHANG_2)),
    )
    assert statuses == [200, 409]
    count = await world.pool.fetchval(
        f"SELECT count(*) FROM {world.schema}.events"
        " WHERE stream_id = $1 AND event_type = 'MaterialsApproved'",
        f"case-{case_id}",
    )
    assert count == 1


async def test_a_claimed_case_is_decided_by_its_claimant_and_rejected_with_a_reason(
    world: ReviewWorld,
) -> None:
    request_id = await world.submit()
    case_id = (await world.case_of(request_id))["case_id"]
    claimed = await world.http.post(f"/cases/{case_id}/claim", headers=world.bearer(NANCHANG))
    assert claimed.json()["claimed_by"] == "rev-nc"
    reject = {"reason": "materials_unclear", "note": "户口本照片模糊"}
    other = await world.http.post(
        f"/cases/{case_id}/reject", json=reject, headers=world.bearer(NANCHANG_2)
    )
    assert (other.status_code, other.json()["code"]) == (409, "case.claimed")
    personal = {"reason": "other", "note": "电话13800138000"}
    refused = await world.http.post(
        f"/cases/{case_id}/reject", json=personal, headers=world.bearer(NANCHANG)
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "note")
    done = await world.http.post(
        f"/cases/{case_id}/reject", json=reject, headers=world.bearer(NANCHANG)
    )
    assert (done.json()["status"], done.json()["reason"]) == ("rejected", "materials_unclear")
    (record,) = await world.decisions(request_id)
    rejected = review.MaterialsRejected.model_validate_json(record.value)
    assert (rejected.reason, rejected.note) == ("materials_unclear", "户口本照片模糊")


async def test_an_expired_request_withdraws_its_open_case(world: ReviewWorld) -> None:
    request_id = await world.submit()
    case_id = (await world.case_of(request_id))["case_id"]
    expired = {
        "request_id": request_id,
        "member": "p_member_0123456789",
        "kind": "family_account",
        "deadline": now().isoformat(),
    }
    await world.publish("binding", "holder-p_holder_0123456789", "BindRequestExpired", expired)
    await world.wait_status(case_id, "withdrawn")
    assert await world.queue(NANCHANG) == []
    late = await world.http.post(f"/cases/{case_id}/approve", headers=world.bearer(NANCHANG))
    assert (late.status_code, late.json()["code"]) == (409, "case.withdrawn")


ID_NUMBER = "360426199101010047"


async def test_a_reviewer_finds_cases_by_id_number_through_its_keyed_hash(
    world: ReviewWorld,
) -> None:
    member = "p_searched_member_01"
    digest = lookup_hash(lookup_key(world.settings), ID_NUMBER)
    registered = {
        "pseudonym": member,
        "insured_place": "360102",
        "personal": {
            f: f"v1.bm9uY2U.c2VhbGVk{f}" for f in ("name", "id_number", "birth_date", "sex")
        },
        "id_lookup": digest,
    }
    await world.publish("identity", f"person-{member}", "PersonRegistered", registered)
    request_id = await world.submit(member=member)
    await world.submit()  # someone else's case
    case_id = (await world.case_of(request_id))["case_id"]

    async def search(number: str, who: Principal = NANCHANG) -> list[str]:
        answer = await world.http.post(
            "/cases/search", json={"id_number": number}, headers=world.bearer(who)
        )
        assert answer.status_code == 200, answer.text
        return [e["case_id"] for e in answer.json()["items"]]

    async def known() -> bool:
        return await search(ID_NUMBER) == [case_id]

    await wait_for(known, 40, "the person lookup from identity's topic")
    assert await search(ID_NUMBER, BEIJING) == []
    assert await search("11010519491231002X") == []
    stored = await world.pool.fetch(f"SELECT * FROM {world.schema}.person_lookups")
    assert ID_NUMBER not in repr([dict(r) for r in stored])

    await world.publish("identity", f"person-{member}", "PersonErased", {})

    async def forgotten() -> bool:
        return await search(ID_NUMBER) == []

    await wait_for(forgotten, 40, "the erasure to forget the lookup")


async def test_operators_see_open_cases_per_region_and_decisions_of_the_last_hour(
    world: ReviewWorld,
) -> None:
    first = await world.submit(region="360102")
    await world.submit(region="360702")
    case_id = (await world.case_of(first))["case_id"]
    await world.case_of(
        await world.submit(region="360702"), Principal("r", Role.REVIEWER, ("360700",))
    )
    await world.http.post(f"/cases/{case_id}/approve", headers=world.bearer(NANCHANG))
    await world.wait_status(case_id, "approved")
    answer = await world.http.get("/stats", headers=world.bearer(OPERATOR))
    stats = answer.json()
    assert [(r["region"], r["open_cases"]) for r in stats["regions"]] == [("360702", 2)]
    assert (stats["open_cases"], stats["decisions_last_hour"]) == (2, 1)
    refused = await world.http.get("/stats", headers=world.bearer(NANCHANG))
    assert refused.status_code == 403


async def test_a_case_open_longer_than_the_limit_is_escalated(
    kafka_bootstrap: str, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    quick = {"review_escalate_after_hours": 1 / 3600, "review_escalation_interval_s": 0.2}
    async for world in review_world(kafka_bootstrap, db_pool, pg_schema, **quick):
        case_id = (await world.case_of(await world.submit()))["case_id"]

        async def escalated(world: ReviewWorld = world) -> bool:
            (entry,) = await world.queue(NANCHANG)
            return bool(entry["escalated"])

        await wait_for(escalated, 40, "the escalation timer")
        case = await world.http.get(f"/cases/{case_id}", headers=world.bearer(NANCHANG))
        assert [e["event"] for e in case.json()["history"]] == [
            "ReviewCaseOpened",
            "ReviewCaseEscalated",
        ]
