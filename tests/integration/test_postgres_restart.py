"""A PostgreSQL restart under running services: they answer not ready while it is down, ready
again after, and their background work (relays, consumers, projections) resumes by itself.

It restarts the machine's shared cluster: run it under `flock -x
/tmp/qinqing-infra.lock` when other test runs share the infrastructure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import date
from uuid import uuid4

import httpx
import pytest

from contracts.vocabulary import Relation
from services.demo.people import Person
from services.demo.scenario import Scenario
from services.demo.stack import drop_stack, running_stack
from services.runtime.settings import Settings

SECRET = Settings().jwt_secret.get_secret_value()
SERVED = ("identity", "binding")


@pytest.fixture
async def stack_and_story(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Scenario]:
    tag = uuid4().hex[:10]
    schemas = {s: f"{s}_{tag}" for s in SERVED}
    try:
        async with running_stack(
            database_url,
            kafka_bootstrap,
            namespace=f"pgr{tag}",
            schemas=schemas,
            face_latency_s=0.1,
            only=SERVED,
        ) as stack:
            story = Scenario(stack, SECRET, lambda _: None)
            try:
                yield story
            finally:
                await story.close()
    finally:
        await drop_stack(database_url, schemas)


async def readiness(story: Scenario, http: httpx.AsyncClient) -> dict[str, int]:
    return {s: (await http.get(story.url(s, "/readyz"))).status_code for s in SERVED}


async def readiness_through(story: Scenario, restart: Callable[[], None]) -> list[set[int]]:
    """Each distinct readiness seen while `restart` runs and until both services are ready
    again (at most 20 s: jobs back off to 5 s between rounds), polled every 20 ms."""
    seen: list[set[int]] = []
    restarting = asyncio.create_task(asyncio.to_thread(restart))
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            now = set((await readiness(story, http)).values())
            if not seen or seen[-1] != now:
                seen.append(now)
            if restarting.done() and now == {200}:
                break
            await asyncio.sleep(0.02)
    await restarting
    return seen


async def test_after_a_postgres_restart_services_are_ready_again_and_their_work_resumes(
    restart_postgres: Callable[[], None], stack_and_story: Scenario
) -> None:
    story = stack_and_story
    async with httpx.AsyncClient(timeout=5) as http:
        assert await readiness(story, http) == dict.fromkeys(SERVED, 200)

    seen = await readiness_through(story, restart_postgres)
    assert {503} in seen, f"never unready while PostgreSQL restarted: {seen}"
    assert seen[-1] == {200}, f"not ready again within 20 s: {seen}"
    assert set().union(*seen) == {200, 503}, f"/readyz answered otherwise: {seen}"

    # Appended after the restart: identity's relay must publish the registrations for
    # binding's consumer to know the people (else 409 binding.holder_unknown)…
    holder = Person("holder", "李秀英", date(1986, 5, 12), female=True)
    neighbour = Person("neighbour", "赵大爷", date(1950, 1, 2), female=False)
    for person in (holder, neighbour):
        await story.register(person)
    form = story.form("neighbour", Relation.NON_RELATIVE, kind="proxy", method="proxy_with_id")
    answer = await story.bind(form)
    assert answer["status_code"] == 202, answer
    assert answer["waiting_for"] == ["face"]
    # …and the rest of the flow crosses both relays and consumers once more: binding's
    # request opens identity's face check, whose outcome binds the member in binding's log,
    # and the family view (a projection of that log) shows it.
    await story.follow(answer["request_id"], "bound")
    assert not story.failures
    bound = [(story.pseudonyms["neighbour"], "bound")]
    deadline = time.monotonic() + 10
    while (shown := await family_view(story)) != bound:
        assert time.monotonic() < deadline, f"the family view still shows {shown}"
        await asyncio.sleep(0.05)


async def family_view(story: Scenario) -> list[tuple[str, str]]:
    family = (await story.http.get(story.url("binding", "/family"), headers=story.me)).json()
    return [(m["member"], m["status"]) for m in family]
