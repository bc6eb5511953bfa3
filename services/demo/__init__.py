"""`qinqing demo`: start everything, play a real family-binding story, show the result."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Annotated

import typer

from services.demo.client import DemoFailedError
from services.demo.scenario import Scenario
from services.demo.stack import running_stack
from services.runtime.auth import jwt_secret
from services.runtime.consumer import BROKER_LOGGER
from services.runtime.infra.common import InfraError
from services.runtime.infra.stack import ensure_up
from services.runtime.logging import configure_logging
from services.runtime.settings import Settings


def say(line: str) -> None:
    typer.echo(line)


async def play(settings: Settings, database_url: str, kafka: str) -> bool:
    started = time.monotonic()
    async with running_stack(database_url, kafka, namespace=settings.topic_namespace) as stack:
        say(
            f"Services up in {time.monotonic() - started:.1f} s: "
            + ", ".join(f"{name} {url}" for name, url in stack.urls.items())
        )
        scenario = Scenario(stack, jwt_secret(settings), say)
        try:
            return await scenario.run()
        finally:
            await scenario.close()


def demo_command(
    verbose: Annotated[bool, typer.Option(help="Show the services' own logs too.")] = False,
) -> None:
    """Start PostgreSQL, Kafka and the services, then play the family-binding story against
    their HTTP APIs: exit 0 only if every expected outcome happened."""
    settings = Settings()
    configure_logging("INFO" if verbose else "ERROR", settings.log_json)
    if not verbose:  # the story only; the libraries' own loggers are not structlog's
        for name in ("aiokafka", BROKER_LOGGER, "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        endpoints = ensure_up(settings, say=say)
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        ok = asyncio.run(play(settings, endpoints.database_url, endpoints.kafka_bootstrap))
    except DemoFailedError as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    sys.stdout.flush()
    raise typer.Exit(0 if ok else 1)
