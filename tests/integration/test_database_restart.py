"""While PostgreSQL restarts under a served API, every answer is a 2xx or a 503 with Retry-After
(never a 500), and the API answers 2xx again once the database is back.

It restarts the machine's PostgreSQL: run it alone where others share the server (the local
lock is `flock -x /tmp/qinqing-infra.lock`)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx

from services.demo.stack import drop_stack, migrate_stack
from services.runtime.auth import issue_token
from services.runtime.infra.postgres import wait_for_postgres
from services.runtime.principal import Principal, Role
from tests.integration.test_binding_e2e import SECRET, _free_port, _ready, _start_binding


def _acceptable(answer: httpx.Response) -> bool:
    if answer.is_success:
        return True
    return answer.status_code == 503 and answer.headers.get("Retry-After", "").isdigit()


async def test_a_served_api_answers_503_while_postgres_restarts_and_2xx_after(
    restart_postgres: Callable[[], None], database_url: str, kafka_bootstrap: str
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
            await asyncio.to_thread(restart_postgres)
            restarted.set()
            await asyncio.wait_for(asking, timeout=30)
        assert process.poll() is None, "the service exited during the restart"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        # The server may still be starting when a failure lands here.
        await wait_for_postgres(database_url, timeout_s=30)
        await drop_stack(database_url, {"binding": schema})
    statuses = Counter(a.status_code for a in answers)
    assert all(_acceptable(a) for a in answers), statuses
    assert statuses[503] > 0, f"no request met the outage: {statuses}"
    assert all(a.json()["code"] == "service.unavailable" for a in answers if a.status_code == 503)
    assert answers[-1].is_success  # and the API is back
