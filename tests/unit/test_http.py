"""The answers every service's API shares: body limits, validation errors, a 503 while a
dependency is down, a safe 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import structlog.testing
from asyncpg.exceptions import _base as asyncpg_base
from fastapi import FastAPI, Request, UploadFile
from pydantic import BaseModel

from contracts.names import MESSAGE_ZH, PersonName
from services.runtime.http import RETRY_AFTER_S, configure_errors

LIMIT = 100


class Note(BaseModel):
    text: str


class Person(BaseModel):
    name: PersonName


class Outage:
    """A pool whose every acquisition fails with the error it is given."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    async def acquire(self) -> None:
        assert self.error is not None
        raise self.error


class World:
    def __init__(self) -> None:
        self.bodies_seen = 0  # how many bodies reached a route
        self.pool = Outage()
        self.app = FastAPI()
        configure_errors(self.app, {}, max_body_bytes=LIMIT)
        app = self.app

        @app.post("/echo")
        async def echo(request: Request) -> dict[str, int]:
            size = len(await request.body())
            self.bodies_seen += 1
            return {"size": size}

        @app.post("/notes")
        async def note(body: Note) -> dict[str, int]:
            self.bodies_seen += 1
            return {"size": len(body.text)}

        @app.post("/persons")
        async def person(body: Person) -> dict[str, str]:
            return {"name": body.name}

        @app.post("/uploads")
        async def upload(file: UploadFile) -> dict[str, int]:
            self.bodies_seen += 1
            return {"size": len(await file.read())}

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("a person's name could be in here")

        @app.get("/data")
        async def data() -> None:
            await self.pool.acquire()

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)  # an exception reaching the server fails
        return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.fixture
def world() -> World:
    return World()


async def test_a_body_within_the_limit_reaches_the_route(world: World) -> None:
    async with world.client() as client:
        answer = await client.post("/echo", content=b"x" * LIMIT)
    assert answer.json() == {"size": LIMIT}


async def test_a_published_type_refuses_on_its_field_in_its_own_chinese(world: World) -> None:
    async with world.client() as client:
        answer = await client.post("/persons", json={"name": "*王"})
    assert answer.status_code == 422
    reason = answer.json()["errors"][0]
    assert (reason["field"], reason["type"], reason["message"]["zh"]) == (
        "name",
        "name.invalid",
        MESSAGE_ZH,
    )


async def test_a_declared_length_over_the_limit_is_refused_before_reading(world: World) -> None:
    async with world.client() as client:
        answer = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert (answer.status_code, answer.json()["code"]) == (413, "request.too_large")
    assert world.bodies_seen == 0


_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'


async def _chunks(start: bytes) -> AsyncIterator[bytes]:
    yield start
    for _ in range(10):
        yield b"x" * 30


@pytest.mark.parametrize(
    ("path", "content_type", "start"),
    [
        ("/echo", "text/plain", b""),  # the route reads the body itself
        ("/notes", "application/json", b'{"text": "'),  # FastAPI parses it for the route
        ("/uploads", "multipart/form-data; boundary=b", _PART),  # and a form
    ],
    ids=["read-by-the-route", "json", "multipart"],
)
async def test_a_chunked_body_is_refused_with_413_once_it_passes_the_limit(
    world: World, path: str, content_type: str, start: bytes
) -> None:
    headers = {"Content-Type": content_type}
    async with world.client() as client:
        answer = await client.post(path, content=_chunks(start), headers=headers)
    assert answer.status_code == 413
    body = answer.json()
    assert (body["code"], body["max_bytes"], set(body["message"])) == (
        "request.too_large",
        LIMIT,
        {"zh", "en"},
    )
    assert world.bodies_seen == 0


async def test_an_unexpected_failure_answers_500_without_its_message(world: World) -> None:
    async with world.client() as client:
        answer = await client.get("/boom")
    assert answer.status_code == 500
    assert "name" not in answer.text


def _starting_up() -> asyncpg.CannotConnectNowError:
    # As asyncpg builds a server's error from the fields of its ErrorResponse message.
    fields = {"S": "FATAL", "C": "57P03", "M": "the database system is starting up"}
    error = asyncpg_base.PostgresError.new(fields)
    assert isinstance(error, asyncpg.CannotConnectNowError)
    return error


@pytest.mark.parametrize(
    "error",
    [
        _starting_up(),
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 54329)"),
        TimeoutError(),  # what asyncpg's pool raises when no connection frees up in time
    ],
    ids=["postgres-starting-up", "connection-refused", "pool-acquisition-timeout"],
)
async def test_a_database_that_is_down_answers_503_with_retry_after(
    world: World, error: BaseException
) -> None:
    world.pool.error = error
    with structlog.testing.capture_logs() as logs:
        async with world.client() as client:
            answer = await client.get("/data")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_S)
    body = answer.json()
    assert (body["code"], set(body["message"])) == ("service.unavailable", {"zh", "en"})
    assert [log["log_level"] for log in logs] == ["warning"]
    assert "54329" not in str(logs)  # the error's class is logged, never its text
