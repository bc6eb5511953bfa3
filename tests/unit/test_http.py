"""The answers every service's API shares: body limits, validation errors, a safe 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from services.runtime.http import configure_errors

LIMIT = 100


def _app() -> FastAPI:
    app = FastAPI()
    configure_errors(app, {}, max_body_bytes=LIMIT)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a person's name could be in here")

    return app


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


async def test_a_body_within_the_limit_reaches_the_route() -> None:
    async with _client() as client:
        answer = await client.post("/echo", content=b"x" * LIMIT)
    assert answer.json() == {"size": LIMIT}


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async with _client() as client:
        answer = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert (answer.status_code, answer.json()["code"]) == (413, "request.too_large")


async def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 30

    async with _client() as client:
        answer = await client.post("/echo", content=chunks())
    assert (answer.status_code, answer.json()["max_bytes"]) == (413, LIMIT)


async def test_an_unexpected_failure_answers_500_without_its_message() -> None:
    async with _client() as client:
        answer = await client.get("/boom")
    assert answer.status_code == 500
    assert "name" not in answer.text
