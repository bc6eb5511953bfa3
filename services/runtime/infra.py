"""Real infrastructure on a machine without Docker: PostgreSQL and Kafka, started natively.

`qinqing infra up|down|status` is the command; the functions below are what test fixtures
and resilience tests call directly.

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

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import glob
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer
from aiokafka import AIOKafkaClient

from services.runtime.settings import Settings

T = TypeVar("T")
Say = Callable[[str], None]

PG_CLUSTER = "qinqing"
_KAFKA_PORTS = (19092, 19093)  # PLAINTEXT and CONTROLLER, as in server.properties.in
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class InfraError(RuntimeError):
    """A piece of infrastructure could not be started or did not answer in time."""


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    kafka_bootstrap: str


def _say_stderr(line: str) -> None:
    sys.stderr.write(f"[infra] {line}\n")
    sys.stderr.flush()


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code without touching the caller's loop.

    A private loop is used (asyncio.run would reset the thread's current loop, which
    pytest-asyncio's session loop relies on); from inside a running loop the coroutine is
    run on a helper thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _run(args: list[str], *, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
    """Run a command, output captured through a temp file (daemons may inherit it; a pipe
    would then never reach EOF)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
            args,
            input=stdin.encode() if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    if check and proc.returncode != 0:
        raise InfraError(f"command failed ({proc.returncode}): {' '.join(args)}\n{text}")
    return proc.returncode, text


def repo_root() -> Path:
    """The checkout whose `.local/` holds the broker: QINQING_HOME, else this source tree."""
    env = os.environ.get("QINQING_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "deploy" / "local" / "kafka" / "pom.xml").exists():
        return here
    return Path.cwd().resolve()


# --------------------------------------------------------------------------- PostgreSQL


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
    _, out = _run(["pg_lsclusters", "--no-header"], check=False)
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


def _write_if_changed(path: Path, text: str, *, owner: str | None = None) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if owner is not None:
        with contextlib.suppress(KeyError, PermissionError):
            pw = pwd.getpwnam(owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return True


def pg_up(target: PgTarget, say: Say = _say_stderr) -> PgCluster:
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
        _run(
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
    changed = _write_if_changed(
        cluster.conf_dir / "conf.d" / "qinqing.conf", _pg_conf(target), owner="postgres"
    )
    changed |= _write_if_changed(
        cluster.conf_dir / "pg_hba.conf", _pg_hba(target), owner="postgres"
    )
    ctl = ["pg_ctlcluster", cluster.version, cluster.name]
    if cluster.online and changed:
        say(f"postgres: configuration changed, restarting {cluster.version}/{cluster.name}")
        _run(_privileged([*ctl, "restart", "-m", "fast"]))
    elif not cluster.online:
        say(f"postgres: starting cluster {cluster.version}/{cluster.name}")
        rc, out = _run(_privileged([*ctl, "start"]), check=False)
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
    _run(_as_postgres([*psql, "-f", "-"]), stdin="\n".join(sql) + "\n")


def pg_down(say: Say = _say_stderr) -> bool:
    cluster = pg_cluster()
    if cluster is None or not cluster.online:
        say("postgres: cluster not running")
        return False
    say(f"postgres: stopping cluster {cluster.version}/{cluster.name}")
    _run(_privileged(["pg_ctlcluster", cluster.version, cluster.name, "stop", "-m", "fast"]))
    return True


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
                f"PostgreSQL at {_redact(url)} did not answer in {timeout_s:.0f}s{hint}"
            )
        await asyncio.sleep(0.3)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# --------------------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class KafkaPaths:
    home: Path

    @classmethod
    def default(cls) -> KafkaPaths:
        return cls(repo_root() / ".local" / "kafka")

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pidfile(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.home / "cluster.id"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.logs / "kafka.out"

    @property
    def templates(self) -> Path:
        return self.home.parent.parent / "deploy" / "local" / "kafka"


def _kafka_uuid() -> str:
    """A Kafka cluster id (base64url of 16 random bytes, never starting with '-')."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


# Brokers launched by this process: polling them tells exit codes and reaps them.
_launched: dict[int, subprocess.Popen[bytes]] = {}


def _pid_running(pid: int) -> bool:
    """Some thread of the process is still alive (SIGKILL turns the main thread into a
    zombie before the others, which still hold the broker's sockets, are gone)."""
    proc = _launched.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in {"Z", "X", "x"}:
            return True
    return False


def _pid_is_broker(pid: int) -> bool:
    if pid in _launched:
        return _pid_running(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and _pid_running(pid)


def kafka_pid(paths: KafkaPaths | None = None) -> int | None:
    """PID of the broker this checkout started, if it is still running."""
    paths = paths or KafkaPaths.default()
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_is_broker(pid) else None


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise InfraError("java not found (Kafka needs Java 17+); run deploy/local/setup")
    return found


def _kafka_prepare(paths: KafkaPaths, say: Say) -> None:
    if not list(paths.libs.glob("kafka_2.13-*.jar")):
        raise InfraError(f"Kafka jars missing in {paths.libs}; run deploy/local/setup")
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    template = (paths.templates / "server.properties.in").read_text()
    _write_if_changed(paths.config, template.replace("@DATA_DIR@", str(paths.data)))
    if (paths.data / "meta.properties").exists():
        return
    if paths.cluster_id_file.exists():
        cluster_id = paths.cluster_id_file.read_text().strip()
    else:
        cluster_id = _kafka_uuid()
        paths.cluster_id_file.write_text(cluster_id + "\n")
    say(f"kafka: formatting storage in {paths.data} (cluster id {cluster_id})")
    _run(
        [
            _java(),
            "-Xmx256m",
            "-cp",
            f"{paths.libs}/*",
            f"-Dlog4j2.configurationFile={paths.templates / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={paths.logs}",
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            cluster_id,
            "-c",
            str(paths.config),
        ]
    )


def _kafka_spawn(paths: KafkaPaths) -> int:
    heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m").split()
    args = [
        _java(),
        *heap,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths.templates / 'log4j2.xml'}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        f"{paths.libs}/*",
        "kafka.Kafka",
        str(paths.config),
    ]
    with paths.stdout_log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - fixed argument list
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=paths.home,
            start_new_session=True,  # survives the shell/CLI that started it
        )
    _launched[proc.pid] = proc
    paths.pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


async def kafka_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when a metadata request succeeds and lists at least one live broker."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        connections_max_idle_ms=int(timeout_s * 1000) + 1000,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return bool(client.cluster.brokers())
    except Exception:  # noqa: BLE001 - any failure means "not (yet) answering"
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def wait_for_kafka(
    bootstrap: str,
    timeout_s: float = 60.0,
    log_hint: str | Callable[[], str] = "",
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll until `bootstrap` answers; fail early if `alive()` says the broker died."""
    deadline = time.monotonic() + timeout_s

    def hint() -> str:
        text = log_hint() if callable(log_hint) else log_hint
        return f"; see {text}" if text else ""

    while True:
        if await kafka_answers(bootstrap):
            return
        if alive is not None and not alive():
            raise InfraError(f"Kafka broker process exited before answering{hint()}")
        if time.monotonic() > deadline:
            raise InfraError(f"Kafka at {bootstrap} did not answer in {timeout_s:.0f}s{hint()}")
        await asyncio.sleep(0.5)


def _kafka_log_hint(paths: KafkaPaths) -> str:
    hint = f"{paths.server_log} and {paths.stdout_log}"
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return hint
    proc = _launched.get(pid)
    if proc is not None and proc.poll() is not None:
        hint = f"{hint} (pid {pid} exited with {proc.returncode})"
    with contextlib.suppress(OSError):
        tail = paths.stdout_log.read_text(errors="replace").strip().splitlines()[-5:]
        if tail:
            hint += "\n" + "\n".join(tail)
    return hint


def _port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _kafka_launch(paths: KafkaPaths, say: Say) -> int:
    _kafka_prepare(paths, say)
    busy = [port for port in _KAFKA_PORTS if _port_in_use(port)]
    if busy:
        raise InfraError(
            f"cannot start Kafka: port(s) {busy} on 127.0.0.1 are taken by another process "
            "(a broker started from another checkout? stop it with its `qinqing infra down`)"
        )
    pid = _kafka_spawn(paths)
    say(f"kafka: started broker pid {pid} (log {paths.server_log})")
    return pid


def kafka_start(
    bootstrap: str = "127.0.0.1:19092",
    timeout: float = 90.0,
    say: Say = _say_stderr,
    paths: KafkaPaths | None = None,
) -> None:
    """Start our broker unless it runs already; wait until it answers."""
    paths = paths or KafkaPaths.default()
    if kafka_pid(paths) is None:
        _kafka_launch(paths, say)
    _run_async(
        wait_for_kafka(
            bootstrap, timeout, lambda: _kafka_log_hint(paths), lambda: kafka_pid(paths) is not None
        )
    )


def kafka_stop(
    timeout: float = 30.0, say: Say = _say_stderr, paths: KafkaPaths | None = None
) -> bool:
    """Stop the broker this checkout started (SIGTERM, then SIGKILL after `timeout`)."""
    paths = paths or KafkaPaths.default()
    pid = kafka_pid(paths)
    if pid is None:
        say("kafka: broker not running (no live pid in .local/kafka/kafka.pid)")
        paths.pidfile.unlink(missing_ok=True)
        return False
    say(f"kafka: stopping broker pid {pid}")
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        say(f"kafka: broker pid {pid} ignored SIGTERM for {timeout:.0f}s, killing it")
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10)
    paths.pidfile.unlink(missing_ok=True)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_kafka(paths: KafkaPaths | None = None) -> int:
    """SIGKILL the broker we started (a crash, not a shutdown); returns its pid.

    The data directory is left as the crash left it; `start_kafka()` recovers from it.
    """
    paths = paths or KafkaPaths.default()
    pid = kafka_pid(paths)
    if pid is None:
        raise InfraError(
            "no broker started by this checkout is running (no live pid in "
            f"{paths.pidfile}); kill_kafka() only kills the local broker"
        )
    os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10):
        raise InfraError(f"Kafka pid {pid} still alive 10s after SIGKILL")
    return pid


async def start_kafka_async(
    bootstrap: str = "127.0.0.1:19092", timeout_s: float = 90.0, paths: KafkaPaths | None = None
) -> int:
    """Start the local broker again on the same data dir and wait until it answers."""
    paths = paths or KafkaPaths.default()
    pid = kafka_pid(paths)
    if pid is None:
        pid = _kafka_launch(paths, lambda _line: None)
    await wait_for_kafka(
        bootstrap, timeout_s, lambda: _kafka_log_hint(paths), lambda: kafka_pid(paths) is not None
    )
    return pid


def start_kafka(
    bootstrap: str = "127.0.0.1:19092", timeout: float = 90.0, paths: KafkaPaths | None = None
) -> int:
    """Blocking form of `start_kafka_async` (from async code prefer the async one)."""
    return _run_async(start_kafka_async(bootstrap, timeout, paths))


# --------------------------------------------------------------------------- both


def _external(settings: Settings, field: str) -> bool:
    return field in settings.model_fields_set


def ensure_up(
    settings: Settings | None = None, *, timeout: float = 120.0, say: Say = _say_stderr
) -> Endpoints:
    """Make PostgreSQL and Kafka answer (starting the local ones when not configured
    externally) and return where they are. Raises InfraError naming the log on failure."""
    settings = settings or Settings()
    db_url = settings.database_url
    bootstrap = settings.kafka_bootstrap_servers
    paths = KafkaPaths.default()

    kafka_local = not _external(settings, "kafka_bootstrap_servers")
    kafka_launched = False
    if kafka_local:
        if kafka_pid(paths) is not None:
            say(f"kafka: broker pid {kafka_pid(paths)} already running")
        elif _run_async(kafka_answers(bootstrap)):
            say(f"kafka: {bootstrap} already answers (a broker not started by this checkout)")
        else:
            _kafka_launch(paths, say)  # JVM boots while PostgreSQL starts
            kafka_launched = True
    else:
        say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={bootstrap} (not started here)")

    pg_hint = ""
    if not _external(settings, "database_url"):
        if pg_cluster() is None and _run_async(postgres_answers(db_url)) is not None:
            say(f"postgres: {_redact(db_url)} already answers (a server not started here)")
        else:  # ours (or none yet): pg_up also brings its configuration up to date
            cluster = pg_up(PgTarget.from_url(db_url), say)
            pg_hint = cluster.log_file
    else:
        say(f"postgres: using DATABASE_URL={_redact(db_url)} (not started here)")

    started = time.monotonic()
    _run_async(wait_for_postgres(db_url, timeout, pg_hint))
    say(f"postgres: answers at {_redact(db_url)}")
    remaining = max(5.0, timeout - (time.monotonic() - started))
    alive = (lambda: kafka_pid(paths) is not None) if kafka_launched else None
    hint: Callable[[], str] = (lambda: _kafka_log_hint(paths)) if kafka_local else str
    _run_async(wait_for_kafka(bootstrap, remaining, hint, alive))
    say(f"kafka: answers at {bootstrap}")
    return Endpoints(database_url=db_url, kafka_bootstrap=bootstrap)


def ensure_down(settings: Settings | None = None, say: Say = _say_stderr) -> None:
    """Stop what `ensure_up` starts (our broker by pid file, our cluster by name), nothing else."""
    settings = settings or Settings()
    if _external(settings, "kafka_bootstrap_servers"):
        say("kafka: external (KAFKA_BOOTSTRAP_SERVERS set), left alone")
    else:
        kafka_stop(say=say)
    if _external(settings, "database_url"):
        say("postgres: external (DATABASE_URL set), left alone")
    else:
        pg_down(say)


# --------------------------------------------------------------------------- CLI

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

    version = _run_async(postgres_answers(db_url))
    cluster = pg_cluster()
    where = (
        "external"
        if _external(settings, "database_url")
        else (
            f"cluster {cluster.version}/{cluster.name} {cluster.status}, log {cluster.log_file}"
            if cluster
            else "local cluster not created"
        )
    )
    state = f"answers (server {version})" if version else "NOT answering"
    typer.echo(f"postgres: {_redact(db_url)} {state}; {where}")

    answers = _run_async(kafka_answers(bootstrap))
    pid = kafka_pid(paths)
    where = (
        "external"
        if _external(settings, "kafka_bootstrap_servers")
        else (
            f"broker pid {pid}, log {paths.server_log}"
            if pid
            else "no broker started by this checkout"
        )
    )
    typer.echo(f"kafka:    {bootstrap} {'answers' if answers else 'NOT answering'}; {where}")
    if not (version and answers):
        raise typer.Exit(3)
