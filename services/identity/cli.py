"""`qinqing identity`: erase a person (crypto-shredding) and serve the HTTP API."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import uuid4

import typer

from services.identity.app import SCHEMA, IdentitySettings, make_handlers, serve
from services.identity.errors import IdentityError
from services.identity.face_provider import FaceSimulator
from services.runtime.db import create_pool
from services.runtime.decider import CommandContext
from services.runtime.logging import configure_logging
from services.runtime.workers import utc_now

identity_app = typer.Typer(no_args_is_help=True, help="The identity service.")


async def erase(settings: IdentitySettings, pseudonym: str, schema: str = SCHEMA) -> None:
    """Delete the person's data key and record PersonErased (repeatable)."""
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        handlers = make_handlers(settings, pool, FaceSimulator(utc_now), schema)
        ctx = CommandContext(uuid4(), utc_now(), f"erase-{uuid4().hex}", "operator-cli")
        await handlers.erase_person(pseudonym, ctx)
    finally:
        await pool.close()


@identity_app.command("erase")
def erase_command(
    pseudonym: Annotated[str, typer.Argument(help="The person's pseudonym.")],
) -> None:
    """Crypto-shred a person: their name and ID number become unreadable everywhere."""
    settings = IdentitySettings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        asyncio.run(erase(settings, pseudonym))
    except IdentityError as exc:
        typer.echo(f"{pseudonym}: {exc.en}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{pseudonym}: erased")


@identity_app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8101,
    schema: Annotated[str, typer.Option(help="The service's PostgreSQL schema.")] = SCHEMA,
) -> None:
    """Run the identity HTTP API (OpenAPI at /openapi.json)."""
    serve(IdentitySettings(), host, port, schema)
