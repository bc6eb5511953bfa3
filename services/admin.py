"""Operator commands over the service schemas: `qinqing migrate` and `qinqing verify`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
import typer

from services.runtime.blobs import BLOB_SCHEMA, blob_migrations
from services.runtime.integrity import Sealer, missing_tables, verify
from services.runtime.logging import configure_logging
from services.runtime.migrate import migrate, service_migrations
from services.runtime.settings import Settings

# Every service owns one schema of the same name; this is the only list of them.
SERVICES = ("identity", "binding", "review", "voucher", "proxy", "audit")

ServiceOption = Annotated[
    list[str] | None, typer.Option("--service", "-s", help="Only these services (repeatable).")
]


def _chosen(services: list[str] | None) -> list[str]:
    unknown = sorted(set(services or ()) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {unknown}; known: {', '.join(SERVICES)}")
    return list(services or SERVICES)


async def migrate_all(database_url: str, services: list[str]) -> dict[str, list[str]]:
    """The migrations applied per schema: the shared `blobs` schema first, then each service's."""
    conn = await asyncpg.connect(database_url)
    try:
        # Materials are shared infrastructure that any service may read: always kept current.
        applied = {BLOB_SCHEMA: await migrate(conn, BLOB_SCHEMA, blob_migrations())}
        for s in services:
            applied[s] = await migrate(conn, s, service_migrations(s))
        return applied
    finally:
        await conn.close()


def migrate_command(service: ServiceOption = None) -> None:
    """Create or update each service's schema and the shared `blobs` one (safe to run again)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    applied = asyncio.run(migrate_all(settings.database_url, _chosen(service)))
    for name, done in applied.items():
        typer.echo(f"{name}: {len(done)} migration(s) applied" if done else f"{name}: up to date")


async def _verify(database_url: str, services: list[str], seal: bool) -> bool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    ok = True
    try:
        for name in services:
            if seal and not await missing_tables(pool, name):
                await Sealer(pool, name).seal_once()
            report = await verify(pool, name)
            ok = ok and report.ok
            if not report.deployed:
                typer.echo(f"{name}: no schema yet (not migrated): nothing to verify")
                continue
            status = "ok" if report.ok else f"TAMPERED: {report.first_problem}"
            typer.echo(
                f"{name}: {status} ({report.events_checked} events, {report.blocks_checked} blocks,"
                f" {report.unsealed} not sealed yet)"
            )
    finally:
        await pool.close()
    return ok


def verify_command(
    service: ServiceOption = None,
    seal: Annotated[bool, typer.Option(help="Seal committed events before verifying.")] = False,
) -> None:
    """Recompute every stream's hash chain and every sealed block; exit 1 if history changed."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    if not asyncio.run(_verify(settings.database_url, _chosen(service), seal)):
        raise typer.Exit(1)
