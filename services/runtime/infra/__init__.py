"""Real infrastructure on a machine without Docker: PostgreSQL and Kafka, started natively.

`qinqing infra up|down|status` is the command (`cli`); the names re-exported here are what
test fixtures, resilience tests and the benchmark call directly.

* PostgreSQL: a dedicated Debian cluster (`pg_createcluster <ver> qinqing`), data under
  /var/lib/postgresql (never under the repo: CI clones into a mode-700 folder the `postgres`
  user cannot traverse), listening on 127.0.0.1 only. Port, role and database come from
  `Settings.database_url` (default postgresql://qinqing@127.0.0.1:54329/qinqing); the role
  is no superuser but owns `<db>` and `<db>_test`. Loopback TCP is `trust` for that role.
* Kafka: one KRaft broker+controller from the Maven jars in `.local/kafka/libs`, data,
  logs, pid file and cluster id under `.local/kafka/` (git-ignored).

When `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` (or their QINQING_ forms) are set, that
piece is treated as external: it is waited for, never started or stopped.
"""

from services.runtime.infra.cli import infra_app
from services.runtime.infra.common import InfraError, repo_root
from services.runtime.infra.kafka import (
    KafkaPaths,
    kafka_answers,
    kafka_pid,
    kill_kafka,
    start_kafka,
    start_kafka_async,
)
from services.runtime.infra.postgres import pg_restart, postgres_answers, test_database_url
from services.runtime.infra.stack import Endpoints, ensure_down, ensure_up

__all__ = [
    "Endpoints",
    "InfraError",
    "KafkaPaths",
    "ensure_down",
    "ensure_up",
    "infra_app",
    "kafka_answers",
    "kafka_pid",
    "kill_kafka",
    "pg_restart",
    "postgres_answers",
    "repo_root",
    "start_kafka",
    "start_kafka_async",
    "test_database_url",
]
