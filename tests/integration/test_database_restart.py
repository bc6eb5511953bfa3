"""While PostgreSQL restarts under a served API, every answer is a 2xx or a 503 with Retry-After
(never a 500), and the API answers 2xx again once the database is back.

It restarts the machine's PostgreSQL: run it alone where others share the server (the local
lock is `flock -x /tmp/qinqing-infra.lock`)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import httpx
import pytest

from services.demo.stack import migrate_stack
from services.runtime.auth import issue_token
from services.runtime.infra.common import InfraError
from services.runtime.infra.postgres import pg_restart
from services.runtime.principal import Principal, Role
from tests.conftest import Infra
from tests.integration.test_binding_e2e import SECRET, _free_port, _ready, _start_binding


def _restart(infra: Infra) -> None:
    """Only the local Debian cluster can be restarted from here: anywhere else the test fails
    and says why, rather than passing without an outage."""
    if infra.database_source != "local":
        pytest.fail(
            f"this test restarts PostgreSQL with pg_ctlcluster; the database here comes from"
            f" {infra.database_source!r} (DATABASE_URL or a test container), which it cannot"
            " restart: run it against the local cluster (unset DATABASE_URL, no Docker engine)",
            pytrace=False,
        )
    try:
        pg_restart()
    except InfraError as exc:
        pytest.fail(f"PostgreSQL could not be restarted: {exc}", pytrace=False)


def _acceptable(answer: httpx.Response) -> bool:
    if answer.is_success:
        return True
    return answer.status_code == 503 and answer.headers.get("Retry-After", "").isdigit()


async def test_a_served_api_answers_503_while_postgres_restarts_and_2xx_after(
    infra: Infra, database_url: str, kafka_bootstrap: str
) -> None:
    tag = uuid4().hex[:10]
    schema = f"binding_{tag}"
    await migrate_stack(database_url, {"binding": schema})
    port = _free_port()
    process = _start_binding(database_url, kafka_bootstrap, f"restart{tag}", schema, port)
    token = issue_token(Principal("p_holder", Role.INSURED), timedelta(hours=1), secret=SECRET)
    answers: list[httpx.Response] = []
    try:
        await _ready(f"http://127.0.0.1:{port}", process)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        ) as http:
            restarted = asyncio.Event()

            async def keep_asking() -> None:
                # The family view (a read model) and the family as of now (the event log).
                as_of = {"as_of": datetime.now(UTC).isoformat()}
                while True:
                    answers.append(await http.get("/family"))
                    answers.append(await http.get("/family", params=as_of))
                    if restarted.is_set() and answers[-1].is_success and answers[-2].is_success:
                        return
                    await asyncio.sleep(0.02)

            asking = asyncio.create_task(keep_asking())
            await asyncio.sleep(0.5)
            await asyncio.to_thread(_restart, infra)
            restarted.set()
            await asyncio.wait_for(asking, timeout=30)
        assert process.poll() is None, "the service exited during the restart"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        await _drop(database_url, schema)
    statuses = Counter(a.status_code for a in answers)
    assert all(_acceptable(a) for a in answers), statuses
    assert statuses[503] > 0, f"no request met the outage: {statuses}"
    assert all(a.json()["code"] == "service.unavailable" for a in answers if a.status_code == 503)
    assert answers[-1].is_success  # and the API is back


async def _drop(database_url: str, schema: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # the server may still be starting when a failure lands here
        try:
            conn = await asyncpg.connect(database_url)
            break
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
