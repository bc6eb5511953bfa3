"""`run_bench`, which runs the phases (five in fresh schemas), and the `qinqing bench` command."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer

from services.bench.appends import append_figures
from services.bench.common import (
    ABSOLUTES,
    FIGURES,
    FLOW_FIGURES,
    FULL,
    QUICK,
    BenchConfig,
    BenchError,
    Say,
    now,
    rate,
)
from services.bench.flows import flow_figures
from services.bench.identity import identity_figures
from services.bench.kafka import kafka_preflight
from services.bench.meters import load_average
from services.bench.rebuild import rebuild_figure
from services.bench.relay import LOAD_WRITERS, relay_figure
from services.bench.report import (
    machine_info,
    render_table,
    update_readme,
    write_outputs,
)
from services.bench.review import REVIEW_FIGURES, review_figures
from services.runtime.db import create_pool
from services.runtime.infra import repo_root
from services.runtime.infra.postgres import redact
from services.runtime.logging import configure_logging
from services.runtime.migrate import migrate, package_migrations
from services.runtime.settings import Settings

# The document's keys, in the order it lists them.
_KEYS = (
    "date",
    "mode",
    "elapsed_s",
    "machine",
    "stack",
    *FIGURES,
    *ABSOLUTES,
    *FLOW_FIGURES,
    "binding_flows",
    *REVIEW_FIGURES,
    "load",
    "config",
)


async def run_bench(
    cfg: BenchConfig,
    settings: Settings | None = None,
    say: Say = lambda line: typer.echo(line, err=True),
) -> dict[str, Any]:
    """One run in fresh schemas, dropped afterwards; returns the JSON document.

    Appends run in `bench_<hex>_a`; the relay backlog (which the rebuild then replays) lives in
    `bench_<hex>_r`, so the rebuild replays exactly the warm-up + backlog events; the review
    queries run on cases seeded in `bench_<hex>_v`. The binding
    flows run last, against identity, binding and review in `bench_<hex>_f_<service>` with
    topics `bench<hex>.<service>.v1`.
    """
    settings = settings or Settings()
    base = f"bench_{uuid.uuid4().hex[:12]}"
    schemas = (f"{base}_a", f"{base}_r")
    began = time.perf_counter()
    try:
        pool = await create_pool(settings, min_size=cfg.writers, max_size=cfg.writers + 2)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(
            f"PostgreSQL at {settings.database_url} does not answer ({exc}): run `qinqing infra up`"
        ) from exc
    assert pool is not None
    result: dict[str, Any] = {"mode": cfg.mode, "date": now().isoformat(timespec="seconds")}
    try:
        result["machine"] = await machine_info(pool)
        result["machine"]["load_average_at_start"] = load_average()
        result["stack"] = {
            "database": redact(settings.database_url),
            "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        }
        result.update(await _phases(pool, base, schemas, cfg=cfg, settings=settings, say=say))
    finally:
        for schema in schemas:
            with contextlib.suppress(Exception):
                await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
    result["machine"]["load_average_at_end"] = load_average()
    result["config"] = asdict(cfg)
    result["elapsed_s"] = round(time.perf_counter() - began, 1)
    say(f"done in {result['elapsed_s']:.0f} s; schemas {base}_a/_r/_v/_f_* dropped")
    return {key: result[key] for key in _KEYS}


async def _phases(
    pool: asyncpg.Pool,
    base: str,
    schemas: tuple[str, str],
    *,
    cfg: BenchConfig,
    settings: Settings,
    say: Say,
) -> dict[str, Any]:
    """Every phase's figures, in the order they run; `schemas` are the appends' and the log's."""
    appends_schema, log_schema = schemas
    say(f"setup: schemas {appends_schema}, {log_schema} (mode {cfg.mode})")
    conn = await asyncpg.connect(settings.database_url)
    try:
        for schema in schemas:
            await migrate(conn, schema, package_migrations("services.runtime"))
    finally:
        await conn.close()
    await kafka_preflight(settings.kafka_bootstrap_servers)
    # CPU-only and synchronous on this thread, before the database and broker get busy.
    figures: dict[str, Any] = identity_figures(cfg, say)
    figures.update(await append_figures(pool, appends_schema, cfg, say))
    relay, load_s = await relay_figure(pool, log_schema, cfg, settings, say)
    figures["relay_vs_producer_perf"] = relay
    figures["rebuild_vs_raw_read"] = await rebuild_figure(pool, log_schema, cfg, say)
    figures["load"] = {
        "definition": "loading the relay backlog: store appends of "
        f"{cfg.load_batch}-event commands, {LOAD_WRITERS} writers, ~1 KB events",
        "events": cfg.relay_events,
        "seconds": round(load_s, 2),
        "events_per_s": round(rate(cfg.relay_events, load_s), 1),
        "events_per_command": cfg.load_batch,
        "writers": LOAD_WRITERS,
    }
    figures.update(await review_figures(pool, f"{base}_v", cfg, say))
    figures.update(await flow_figures(cfg, settings, base, say))
    return figures


def bench_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller sizes, under ~1 min (full run: ~4 min).")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where benchmarks.json and benchmarks.md go (default: <repo>/docs for a full"
            " run, which also refreshes the README's table; <repo>/.local/bench for --quick)."
        ),
    ] = None,
) -> None:
    """Measure the event store, relay and rebuild against raw ceilings, the identity rates and
    end-to-end binding flows through identity, binding and review."""
    cfg = QUICK if quick else FULL
    # The services' own INFO lines (migrations, retried decisions) would interleave the output.
    configure_logging("WARNING", Settings().log_json)
    try:
        result = asyncio.run(run_bench(cfg))
    except BenchError as exc:
        typer.echo(f"bench failed: {exc}", err=True)
        raise typer.Exit(1) from None
    # Only a full run replaces the committed figures; a quick one is for a look.
    default_dir = repo_root() / (".local/bench" if quick else "docs")
    json_path, md_path = write_outputs(result, output_dir or default_dir)
    typer.echo(render_table(result))
    typer.echo(f"wrote {json_path} and {md_path}")
    if (
        output_dir is None
        and not quick
        and update_readme(repo_root() / "README.md", md_path.read_text(encoding="utf-8"))
    ):
        typer.echo("updated the benchmark table in README.md")
