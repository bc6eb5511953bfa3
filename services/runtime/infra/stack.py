"""Both pieces together: `ensure_up` and `ensure_down`, local unless configured externally."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.runtime.infra.common import Say, run_async, say_stderr
from services.runtime.infra.kafka import (
    KafkaPaths,
    kafka_answers,
    kafka_launch,
    kafka_log_hint,
    kafka_pid,
    kafka_stop,
    wait_for_kafka,
)
from services.runtime.infra.postgres import (
    PgTarget,
    pg_cluster,
    pg_down,
    pg_up,
    postgres_answers,
    redact,
    wait_for_postgres,
)
from services.runtime.settings import Settings


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    kafka_bootstrap: str


def external(settings: Settings, field: str) -> bool:
    return field in settings.model_fields_set


def ensure_up(
    settings: Settings | None = None, *, timeout: float = 120.0, say: Say = say_stderr
) -> Endpoints:
    """Make PostgreSQL and Kafka answer (starting the local ones when not configured
    externally) and return where they are. Raises InfraError naming the log on failure."""
    settings = settings or Settings()
    db_url = settings.database_url
    bootstrap = settings.kafka_bootstrap_servers
    paths = KafkaPaths.default()

    kafka_local = not external(settings, "kafka_bootstrap_servers")
    kafka_launched = False
    if kafka_local:
        if kafka_pid(paths) is not None:
            say(f"kafka: broker pid {kafka_pid(paths)} already running")
        elif run_async(kafka_answers(bootstrap)):
            say(f"kafka: {bootstrap} already answers (a broker not started by this checkout)")
        else:
            kafka_launch(paths, say)  # JVM boots while PostgreSQL starts
            kafka_launched = True
    else:
        say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={bootstrap} (not started here)")

    pg_hint = ""
    if not external(settings, "database_url"):
        if pg_cluster() is None and run_async(postgres_answers(db_url)) is not None:
            say(f"postgres: {redact(db_url)} already answers (a server not started here)")
        else:  # ours (or none yet): pg_up also brings its configuration up to date
            cluster = pg_up(PgTarget.from_url(db_url), say)
            pg_hint = cluster.log_file
    else:
        say(f"postgres: using DATABASE_URL={redact(db_url)} (not started here)")

    started = time.monotonic()
    run_async(wait_for_postgres(db_url, timeout, pg_hint))
    say(f"postgres: answers at {redact(db_url)}")
    remaining = max(5.0, timeout - (time.monotonic() - started))
    alive = (lambda: kafka_pid(paths) is not None) if kafka_launched else None
    hint: Callable[[], str] = (lambda: kafka_log_hint(paths)) if kafka_local else str
    run_async(wait_for_kafka(bootstrap, remaining, hint, alive))
    say(f"kafka: answers at {bootstrap}")
    return Endpoints(database_url=db_url, kafka_bootstrap=bootstrap)


def ensure_down(settings: Settings | None = None, say: Say = say_stderr) -> None:
    """Stop what `ensure_up` starts (our broker by pid file, our cluster by name), nothing else."""
    settings = settings or Settings()
    if external(settings, "kafka_bootstrap_servers"):
        say("kafka: external (KAFKA_BOOTSTRAP_SERVERS set), left alone")
    else:
        kafka_stop(say=say)
    if external(settings, "database_url"):
        say("postgres: external (DATABASE_URL set), left alone")
    else:
        pg_down(say)
