"""End to end on the real PostgreSQL and Kafka: identity, binding and review as running
services that talk only through Kafka, driven through their HTTP APIs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from uuid import uuid4

import asyncpg
import httpx
import pytest

from services.binding.projections import BindingViews, family_view
from services.binding.rules import Relation
from services.demo.people import Person
from services.demo.scenario import Scenario
from services.demo.stack import SERVICES, Stack, running_stack
from services.runtime.projection import ProjectionRunner
from services.runtime.settings import Settings

SECRET = Settings().jwt_secret.get_secret_value()
ADULT = date(1980, 4, 1)


def _schemas(tag: str) -> dict[str, str]:
    return {s: f"{s}_{tag}" for s in SERVICES}


async def _drop(database_url: str, schemas: dict[str, str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas.values():
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def stack(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    tag = uuid4().hex[:10]
    schemas = _schemas(tag)
    try:
        async with running_stack(
            database_url,
            kafka_bootstrap,
            namespace=f"e2e{tag}",
            schemas=schemas,
            face_latency_s=0.2,
        ) as running:
            yield running
    finally:
        await _drop(database_url, schemas)


@pytest.fixture
async def story(stack: Stack) -> AsyncIterator[Scenario]:
    lines: list[str] = []
    scenario = Scenario(stack, SECRET, lines.append)
    try:
        yield scenario
    finally:
        await scenario.close()


async def test_the_demo_story_reaches_every_outcome_and_the_rebuilt_view_matches(
    story: Scenario, stack: Stack, db_pool: asyncpg.Pool
) -> None:
    assert await story.run(), story.failures
    holder, schema = story.pseudonyms["holder"], stack.schemas["binding"]
    live = await family_view(db_pool, schema, holder)
    assert Counter(m.status for m in live) == {
        "bound": 2,
        "revoked": 1,
        "rejected": 1,
        "awaiting_materials": 2,
    }
    replayed = await ProjectionRunner(db_pool, schema, BindingViews(schema)).rebuild()
    assert replayed > 0
    assert await family_view(db_pool, schema, holder) == live


async def test_thirty_concurrent_requests_of_one_holder_admit_exactly_five(
    story: Scenario,
) -> None:
    await story.register(story.holder)
    members = [
        Person(f"m{n}", f"成员{'甲乙丙丁戊己庚辛壬癸'[n % 10]}", ADULT, n % 2 == 0)
        for n in range(30)
    ]
    await asyncio.gather(*(story.register(m) for m in members))
    forms = [story.form(m.role, Relation.OTHER_RELATIVE) for m in members]
    answers = await asyncio.gather(*(story.bind(f) for f in forms))
    codes = Counter((a["status_code"], a.get("code")) for a in answers)
    assert codes == {(202, None): 5, (409, "binding.family_full"): 25}
    family = (await story.http.get(story.url("binding", "/family"), headers=story.me)).json()
    for _ in range(100):  # the projection follows the log within moments
        if len(family) == 5:
            break
        await asyncio.sleep(0.05)
        family = (await story.http.get(story.url("binding", "/family"), headers=story.me)).json()
    assert len(family) == 5


async def test_two_holders_binding_the_same_member_at_once_are_both_bound(
    story: Scenario,
) -> None:
    holders = [Person(f"h{n}", "周慧敏", ADULT, True) for n in range(2)]
    member = Person("neighbour", "赵大爷", date(1950, 1, 2), False)
    for person in (*holders, member):
        await story.register(person)
    form = story.form("neighbour", Relation.NON_RELATIVE, kind="proxy", method="proxy_with_id")
    answers = await asyncio.gather(*(story.bind(form, holder=h.role) for h in holders))
    assert [a["status_code"] for a in answers] == [202, 202]
    assert all(a["waiting_for"] == ["face"] for a in answers)
    for holder, answer in zip(holders, answers, strict=True):
        story.pseudonyms["holder"] = story.pseudonyms[holder.role]  # follow as that holder
        await story.follow(answer["request_id"], "bound")
    assert not story.failures
    holders_of = await story.http.get(
        story.url("binding", f"/members/{story.pseudonyms['neighbour']}/holders"),
        headers=story.as_insured("neighbour"),
    )
    assert sorted(h["holder"] for h in holders_of.json()) == sorted(
        story.pseudonyms[h.role] for h in holders
    )


# ---------------------------------------------------------------------------- a killed service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_binding(
    database_url: str, kafka: str, namespace: str, schema: str, port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "QINQING_TOPIC_NAMESPACE": namespace,
        "QINQING_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "services.cli",
        "binding",
        "serve",
        "--port",
        str(port),
        "--schema",
        schema,
    ]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet)  # noqa: S603 - our CLI


async def _ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the binding service exited while starting"
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the binding service did not become ready")


async def test_a_binding_service_killed_mid_flow_loses_no_outcome_and_applies_none_twice(
    database_url: str, kafka_bootstrap: str, db_pool: asyncpg.Pool
) -> None:
    tag = uuid4().hex[:10]
    schemas, namespace = _schemas(tag), f"e2e{tag}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        async with running_stack(
            database_url,
            kafka_bootstrap,
            namespace=namespace,
            schemas=schemas,
            face_latency_s=1.0,
            only=("identity", "review"),
        ) as partial:
            binding = _start_binding(
                database_url, kafka_bootstrap, namespace, schemas["binding"], port
            )
            try:
                await _ready(url, binding)
                stack = replace(partial, urls={**partial.urls, "binding": url})
                story = Scenario(stack, SECRET, lambda _: None)
                await story.register(story.holder)
                await story.register(story.cast["father"])
                answer = await story.bind(story.form("father", Relation.PARENT))
                request_id = answer["request_id"]
                await story.provide_materials(request_id, "father")
                binding.send_signal(signal.SIGKILL)  # mid-flow: the face check is answering
                binding.wait(timeout=10)
                await story.approve(request_id)  # review decides while binding is down
                await asyncio.sleep(1.5)  # and the face check is verified meanwhile
                binding = _start_binding(
                    database_url, kafka_bootstrap, namespace, schemas["binding"], port
                )
                await _ready(url, binding)
                view = await story.follow(request_id, "bound")
                await story.close()
            finally:
                binding.send_signal(signal.SIGTERM)
                binding.wait(timeout=20)
        assert view["status"] == "bound", story.failures
        kinds = Counter(
            r["event_type"]
            for r in await db_pool.fetch(f'SELECT event_type FROM "{schemas["binding"]}".events')
        )
        assert kinds["MemberBound"] == kinds["BindingMaterialsApproved"] == 1
        assert kinds["BindingFaceVerified"] == 1
    finally:
        await _drop(database_url, schemas)
