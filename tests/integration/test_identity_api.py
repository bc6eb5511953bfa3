"""The identity app as `qinqing identity serve` builds it, on the real PostgreSQL: readiness,
register -> masked profile, erase from the command line -> the profile reads as erased."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest

from services.identity.app import IdentitySettings, build_app, make_handlers
from services.identity.cli import erase
from services.identity.face_provider import FaceSimulator
from services.runtime.auth import issue_token, jwt_secret
from services.runtime.migrate import migrate, service_migrations
from services.runtime.principal import Principal, Role
from services.runtime.workers import utc_now

NAME, ID_NUMBER, PLACE = "王小明", "360426199101010071", "360100"


@pytest.fixture
def settings(database_url: str) -> IdentitySettings:
    return IdentitySettings()  # DATABASE_URL is exported by the infra fixture


def bearer(settings: IdentitySettings, role: Role, subject: str = "staff-1") -> dict[str, str]:
    token = issue_token(Principal(subject, role), timedelta(hours=1), secret=jwt_secret(settings))
    return {"Authorization": f"Bearer {token}"}


async def client_for(settings: IdentitySettings, schema: str) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, schema=schema)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as http:
            yield http


@pytest.fixture
async def client(
    settings: IdentitySettings, db_pool: asyncpg.Pool, pg_schema: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with db_pool.acquire() as conn:
        await migrate(conn, pg_schema, service_migrations("identity"))
    async for http in client_for(settings, pg_schema):
        yield http


async def test_register_then_profile_then_erase_on_postgres(
    client: httpx.AsyncClient, settings: IdentitySettings, pg_schema: str
) -> None:
    assert (await client.get("/readyz")).json() == {"ready": True}
    person = {"name": NAME, "id_number": ID_NUMBER, "insured_place": PLACE}
    registered = await client.post("/persons", json=person, headers=bearer(settings, Role.OPERATOR))
    assert registered.status_code == 201, registered.text
    pseudonym = registered.json()["pseudonym"]
    assert await relayed(pg_schema) >= 1  # the app's relay published the registration
    me = bearer(settings, Role.INSURED, pseudonym)
    profile = (await client.get("/persons/me", headers=me)).json()
    assert (profile["name"], profile["id_number"]) == ("王**", "360***********0071")
    await erase(settings, pseudonym, pg_schema)
    erased = (await client.get("/persons/me", headers=me)).json()
    assert (erased["name"], erased["id_number"], erased["erased"]) == (None, None, True)


async def relayed(schema: str, timeout_s: float = 20.0) -> int:
    """How many of `schema`'s events the app's outbox relay has had acknowledged by Kafka."""
    conn = await asyncpg.connect(IdentitySettings().database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            count = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.events e, {schema}.checkpoints c"
                " WHERE c.name = 'relay:qinqing.identity.v1'"
                "   AND (e.tx_id, e.seq) <= (c.tx_id, c.seq)"
            )
            if count:
                return int(count)
            await asyncio.sleep(0.2)
        return 0
    finally:
        await conn.close()


async def test_not_ready_while_the_schema_is_not_migrated(
    settings: IdentitySettings, pg_schema: str
) -> None:
    async for http in client_for(settings, pg_schema):
        answer = await http.get("/readyz")
        assert (answer.status_code, answer.json()) == (503, {"ready": False})
        assert (await http.get("/healthz")).status_code == 200


async def test_the_password_lock_period_comes_from_settings(
    db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    settings = IdentitySettings(password_lock_minutes=30)
    handlers = make_handlers(settings, db_pool, FaceSimulator(utc_now), pg_schema)
    assert handlers.deps.policy.lock_for == timedelta(minutes=30)


async def test_a_retried_registration_on_postgres_is_the_same_person_and_claims_nothing_more(
    client: httpx.AsyncClient, settings: IdentitySettings, db_pool: asyncpg.Pool, pg_schema: str
) -> None:
    person = {"name": NAME, "id_number": ID_NUMBER, "insured_place": PLACE}
    keyed = bearer(settings, Role.OPERATOR) | {"Idempotency-Key": "register-1"}
    first, again = [await client.post("/persons", json=person, headers=keyed) for _ in range(2)]
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json()
    other = person | {"id_number": "360426199101010047"}
    reused = await client.post("/persons", json=other, headers=keyed)
    assert (reused.status_code, reused.json()["code"]) == (422, "request.key_reused")
    claims = await db_pool.fetchval(f"SELECT count(*) FROM {pg_schema}.id_number_claims")
    events = await db_pool.fetchval(f"SELECT count(*) FROM {pg_schema}.events")
    assert (claims, events) == (1, 1)
