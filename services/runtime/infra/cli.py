"""`qinqing infra up|down|status`: the typer app over `ensure_up`, `ensure_down` and the probes."""

from __future__ import annotations

import logging

import typer

from services.runtime.infra.common import InfraError, run_async
from services.runtime.infra.kafka import KafkaPaths, kafka_answers, kafka_pid
from services.runtime.infra.postgres import pg_cluster, postgres_answers, redact
from services.runtime.infra.stack import ensure_down, ensure_up, external
from services.runtime.settings import Settings

infra_app = typer.Typer(
    no_args_is_help=True,
    help="Start, stop and inspect the local PostgreSQL and Kafka (no Docker needed).",
)


def _echo(line: str) -> None:
    typer.echo(line)


def _quiet_probes() -> None:
    # In the CLI process only: the readiness probes' "Unable connect" warnings are noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@infra_app.command()
def up(
    timeout: float = typer.Option(120.0, help="Seconds to wait for each service to answer."),
) -> None:
    """Start PostgreSQL and Kafka (idempotent) and wait until both answer."""
    _quiet_probes()
    try:
        endpoints = ensure_up(Settings(), timeout=timeout, say=_echo)
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"DATABASE_URL={endpoints.database_url}")
    typer.echo(f"KAFKA_BOOTSTRAP_SERVERS={endpoints.kafka_bootstrap}")


@infra_app.command()
def down() -> None:
    """Stop the broker and the cluster that `up` started, and nothing else."""
    try:
        ensure_down(Settings(), say=_echo)
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@infra_app.command()
def status() -> None:
    """Print the state of both services; exit 3 unless both answer."""
    _quiet_probes()
    settings = Settings()
    db_url = settings.database_url
    bootstrap = settings.kafka_bootstrap_servers
    paths = KafkaPaths.default()

    version = run_async(postgres_answers(db_url))
    cluster = pg_cluster()
    where = (
        "external"
        if external(settings, "database_url")
        else (
            f"cluster {cluster.version}/{cluster.name} {cluster.status}, log {cluster.log_file}"
            if cluster
            else "local cluster not created"
        )
    )
    state = f"answers (server {version})" if version else "NOT answering"
    typer.echo(f"postgres: {redact(db_url)} {state}; {where}")

    answers = run_async(kafka_answers(bootstrap))
    pid = kafka_pid(paths)
    where = (
        "external"
        if external(settings, "kafka_bootstrap_servers")
        else (
            f"broker pid {pid}, log {paths.server_log}"
            if pid
            else "no broker started by this checkout"
        )
    )
    typer.echo(f"kafka:    {bootstrap} {'answers' if answers else 'NOT answering'}; {where}")
    if not (version and answers):
        raise typer.Exit(3)
