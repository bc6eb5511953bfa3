"""The platform in one process: every service's app served over loopback HTTP, for the demo
and the end-to-end tests. The services still talk only through Kafka and their own schemas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI

from services.binding.app import BindingSettings
from services.binding.app import build_app as binding_app
from services.identity.app import IdentitySettings
from services.identity.app import build_app as identity_app
from services.identity.face_provider import FaceSimulator, SimulatedOutcome
from services.review.app import ReviewSettings
from services.review.app import build_app as review_app
from services.runtime.blobs import BLOB_SCHEMA, blob_migrations
from services.runtime.migrate import migrate, service_migrations
from services.runtime.workers import utc_now

SERVICES = ("identity", "binding", "review")


@dataclass(frozen=True)
class Stack:
    urls: dict[str, str]  # service -> http://127.0.0.1:<port>
    simulator: FaceSimulator  # identity's face provider: the caller sets outcomes per person
    schemas: dict[str, str]
    namespace: str
    kafka: str  # bootstrap servers


async def migrate_stack(database_url: str, schemas: dict[str, str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for service, schema in schemas.items():
            await migrate(conn, schema, service_migrations(service))
        await migrate(conn, BLOB_SCHEMA, blob_migrations())
    finally:
        await conn.close()


async def drop_stack(database_url: str, schemas: dict[str, str]) -> None:
    """Drop the schemas `migrate_stack` made (a test's or a benchmark's own)."""
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas.values():
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _serve(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Serve `app` on a free loopback port; returns once it accepts connections."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # the app failed to start: raise its error
            task.result()
            raise RuntimeError("the server stopped while starting")
        await asyncio.sleep(0.02)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


@asynccontextmanager
async def running_stack(
    database_url: str,
    kafka_bootstrap_servers: str,
    *,
    namespace: str = "qinqing",
    schemas: dict[str, str] | None = None,
    face_latency_s: float = 0.5,
    only: tuple[str, ...] = SERVICES,
    **more_settings: Any,
) -> AsyncIterator[Stack]:
    """Migrate, then serve identity, binding and review (or `only` some: a test runs one in a
    process of its own) until the block ends."""
    schemas = schemas or {s: s for s in SERVICES}
    await migrate_stack(database_url, schemas)
    common: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap_servers,
        "topic_namespace": namespace,
        **more_settings,
    }
    simulator = FaceSimulator(utc_now, SimulatedOutcome(latency_s=face_latency_s))
    apps: dict[str, Callable[[], FastAPI]] = {
        "identity": lambda: identity_app(
            IdentitySettings(**common), schema=schemas["identity"], simulator=simulator
        ),
        "binding": lambda: binding_app(BindingSettings(**common), schema=schemas["binding"]),
        "review": lambda: review_app(ReviewSettings(**common), schema=schemas["review"]),
    }
    served: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    urls: dict[str, str] = {}
    try:
        for name, make in ((n, m) for n, m in apps.items() if n in only):
            server, task, port = await _serve(make())
            served.append((server, task))
            urls[name] = f"http://127.0.0.1:{port}"
        yield Stack(urls, simulator, schemas, namespace, kafka_bootstrap_servers)
    finally:
        for server, task in reversed(served):
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=15)
