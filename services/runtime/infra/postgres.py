"""The local PostgreSQL: our Debian cluster, its configuration, role and databases, readiness."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.runtime.infra.common import InfraError, Say, run, say_stderr, write_if_changed

PG_CLUSTER = "qinqing"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    user: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PgTarget:
        parts = urlsplit(url)
        target = cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "qinqing",
            dbname=parts.path.lstrip("/") or "qinqing",
        )
        for ident in (target.user, target.dbname):
            if not _IDENT.match(ident):
                raise InfraError(f"unsupported role/database name {ident!r} in {url}")
        if target.host not in {"127.0.0.1", "localhost", "::1"}:
            raise InfraError(f"the local cluster listens on 127.0.0.1 only, not {target.host}")
        return target


def test_database_url(url: str) -> str:
    """`.../qinqing` -> `.../qinqing_test` (the database integration tests use)."""
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "qinqing"
    if db.endswith("_test"):
        return url
    return urlunsplit(parts._replace(path=f"/{db}_test"))


def _pg_versions() -> list[str]:
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    return sorted((Path(p).parts[-3] for p in found), key=float)


def _privileged(cmd: list[str]) -> list[str]:
    return cmd if os.geteuid() == 0 else ["sudo", "-n", *cmd]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    if pwd.getpwuid(os.geteuid()).pw_name == "postgres":
        return cmd
    return ["sudo", "-n", "-u", "postgres", *cmd]


@dataclass(frozen=True)
class PgCluster:
    version: str
    name: str
    port: int
    status: str
    log_file: str

    @property
    def online(self) -> bool:
        return self.status.startswith("online")

    @property
    def conf_dir(self) -> Path:
        return Path("/etc/postgresql") / self.version / self.name


def pg_cluster() -> PgCluster | None:
    """Our Debian cluster (any installed version), or None."""
    if shutil.which("pg_lsclusters") is None:
        return None
    _, out = run(["pg_lsclusters", "--no-header"], check=False)
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == PG_CLUSTER:
            default_log = f"/var/log/postgresql/postgresql-{cols[0]}-{PG_CLUSTER}.log"
            log = cols[6] if len(cols) > 6 else default_log
            return PgCluster(cols[0], cols[1], int(cols[2]), cols[3], log)
    return None


def _pg_conf(target: PgTarget) -> str:
    return (
        "# Written by `qinqing infra up`; edits are overwritten.\n"
        "listen_addresses = '127.0.0.1'\n"
        f"port = {target.port}\n"
        "max_connections = 200\n"
        "shared_buffers = 256MB\n"
        "# Loopback only: TLS would cost CPU (shared with clients on 2 cores), protect nothing.\n"
        "ssl = off\n"
        "# Durability stays on: benchmarks measure against a real commit.\n"
        "fsync = on\n"
        "synchronous_commit = on\n"
        "full_page_writes = on\n"
    )


def _pg_hba(target: PgTarget) -> str:
    return (
        "# Written by `qinqing infra up`; edits are overwritten.\n"
        "local   all   postgres                 peer\n"
        "local   all   all                      peer\n"
        f"host    all   {target.user}   127.0.0.1/32   trust\n"
        f"host    all   {target.user}   ::1/128        trust\n"
        "host    all   all         127.0.0.1/32   scram-sha-256\n"
        "host    all   all         ::1/128        scram-sha-256\n"
    )


def pg_up(target: PgTarget, say: Say = say_stderr) -> PgCluster:
    """Create (once), configure and start our cluster, then create role and databases."""
    versions = _pg_versions()
    if not versions or shutil.which("pg_createcluster") is None:
        raise InfraError(
            "PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/postgres or "
            "pg_createcluster); run deploy/local/setup"
        )
    cluster = pg_cluster()
    if cluster is None:
        version = versions[-1]
        say(f"postgres: creating cluster {version}/{PG_CLUSTER} on port {target.port}")
        run(
            _privileged(
                [
                    "pg_createcluster",
                    version,
                    PG_CLUSTER,
                    "-p",
                    str(target.port),
                    "--",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                ]
            )
        )
        cluster = pg_cluster()
        if cluster is None:
            raise InfraError(f"pg_createcluster did not create cluster {PG_CLUSTER}")
    changed = write_if_changed(
        cluster.conf_dir / "conf.d" / "qinqing.conf", _pg_conf(target), owner="postgres"
    )
    changed |= write_if_changed(cluster.conf_dir / "pg_hba.conf", _pg_hba(target), owner="postgres")
    ctl = ["pg_ctlcluster", cluster.version, cluster.name]
    if cluster.online and changed:
        say(f"postgres: configuration changed, restarting {cluster.version}/{cluster.name}")
        run(_privileged([*ctl, "restart", "-m", "fast"]))
    elif not cluster.online:
        say(f"postgres: starting cluster {cluster.version}/{cluster.name}")
        rc, out = run(_privileged([*ctl, "start"]), check=False)
        if rc != 0:
            raise InfraError(
                f"PostgreSQL cluster {cluster.version}/{cluster.name} did not start; "
                f"see {cluster.log_file}\n{out}"
            )
    else:
        say(f"postgres: cluster {cluster.version}/{cluster.name} already running")
    _pg_bootstrap(target)
    return pg_cluster() or cluster


def _pg_bootstrap(target: PgTarget) -> None:
    user = target.user
    dbs = [target.dbname, f"{target.dbname}_test"]
    sql = [
        "DO $$ BEGIN",
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN",
        f"    CREATE ROLE {user} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;",
        "  END IF;",
        "END $$;",
    ]
    for db in dbs:
        sql.append(
            f"SELECT 'CREATE DATABASE {db} OWNER {user}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}')\\gexec"
        )
        sql.append(f"ALTER DATABASE {db} OWNER TO {user};")
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-p", str(target.port), "-d", "postgres"]
    run(_as_postgres([*psql, "-f", "-"]), stdin="\n".join(sql) + "\n")


def pg_down(say: Say = say_stderr) -> bool:
    cluster = pg_cluster()
    if cluster is None or not cluster.online:
        say("postgres: cluster not running")
        return False
    say(f"postgres: stopping cluster {cluster.version}/{cluster.name}")
    run(_privileged(["pg_ctlcluster", cluster.version, cluster.name, "stop", "-m", "fast"]))
    return True


def pg_restart(say: Say = say_stderr) -> None:
    """Restart our cluster as an operator would (`pg_ctlcluster restart`, fast mode: open
    sessions are ended); returns once it accepts connections again."""
    cluster = pg_cluster()
    if cluster is None or not cluster.online:
        raise InfraError(f"PostgreSQL cluster {PG_CLUSTER} is not running; run `qinqing infra up`")
    say(f"postgres: restarting cluster {cluster.version}/{cluster.name}")
    run(_privileged(["pg_ctlcluster", cluster.version, cluster.name, "restart", "-m", "fast"]))


async def postgres_answers(url: str, timeout_s: float = 3.0) -> str | None:
    """The server version if `SELECT 1` works at `url`, else None."""
    try:
        conn = await asyncpg.connect(url, timeout=timeout_s)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        await conn.fetchval("SELECT 1")
        return str(conn.get_server_version().major)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    finally:
        await conn.close(timeout=timeout_s)


async def wait_for_postgres(url: str, timeout_s: float = 60.0, log_hint: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if await postgres_answers(url) is not None:
            return
        if time.monotonic() > deadline:
            hint = f"; see {log_hint}" if log_hint else ""
            raise InfraError(
                f"PostgreSQL at {redact(url)} did not answer in {timeout_s:.0f}s{hint}"
            )
        await asyncio.sleep(0.3)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
