"""The three services' apps on their in-memory adapters, served to an httpx client, for the
specs of what every route shares: its OpenAPI entry, strict parsing and who may call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.binding.api import BindingApi
from services.binding.api import create_app as binding_app
from services.binding.handlers import BindingDeps, BindingHandlers
from services.binding.tables import InMemoryBindingTables
from services.identity.api import create_app as identity_app
from services.review.api import create_app as review_app
from services.runtime.blobs import InMemoryBlobStore
from services.runtime.memory import InMemoryEventStore
from tests.unit.identity.test_api import World as IdentityWorld
from tests.unit.review.builders import NANCHANG, NOW
from tests.unit.review.test_api import World as ReviewWorld

SECRET = "s" * 32  # the token key of the identity and review API specs too


class NoRows:
    """Binding's views read its projection tables through the pool: here they are empty."""

    async def fetch(self, *_: Any) -> list[Any]:
        return []


class BindingWorld:
    def __init__(self) -> None:
        deps = BindingDeps(
            InMemoryEventStore(), InMemoryBindingTables(), InMemoryBlobStore(), b"L" * 32, SECRET
        )
        self.handlers = BindingHandlers(deps)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[BindingApi]:
        async def ready() -> bool:
            return True

        pool = cast(asyncpg.Pool, NoRows())
        yield BindingApi(self.handlers, pool, "binding", lambda: NOW, ready)


Opener = Callable[[], AbstractAsyncContextManager[Any]]
CREATE: dict[str, Callable[[str, Opener], FastAPI]] = {
    "identity": identity_app,
    "binding": binding_app,
    "review": review_app,
}


def documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document (building it needs no dependencies)."""
    return {name: create(SECRET, _nothing).openapi() for name, create in CREATE.items()}


def routes() -> list[tuple[str, str, str]]:
    """(service, method, path) of every documented route, from the apps' own route lists
    rather than their documents: a route left out of a document is not missed."""
    found = []
    for service, create in CREATE.items():
        for route in create(SECRET, _nothing).routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                found += [(service, method, route.path) for method in sorted(route.methods)]
    return found


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield None


@dataclass(frozen=True)
class Served:
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    review: ReviewWorld  # holds an open case in Nanchang once `case_id` is set
    case_id: str
    material: str  # the sha256 of one of the case's materials


@asynccontextmanager
async def served() -> AsyncIterator[Served]:
    """Fresh in-memory worlds, each app started and answering an ASGI client."""
    review = ReviewWorld()
    worlds: dict[str, Opener] = {
        "identity": IdentityWorld().open,
        "binding": BindingWorld().open,
        "review": review.open,
    }
    async with AsyncExitStack() as stack:
        apps, clients = {}, {}
        for name, create in CREATE.items():
            app = apps[name] = create(SECRET, worlds[name])
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
            )
        case_id = await review.case()
        material = (await review.handlers.case_detail(case_id, NANCHANG)).materials[0].sha256
        yield Served(apps, clients, review, case_id, material)
