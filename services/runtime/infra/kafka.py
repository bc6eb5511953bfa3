"""The local Kafka: a KRaft broker from the Maven jars; its files, start, stop, crash, readiness."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaClient

from services.runtime.infra.common import (
    InfraError,
    Say,
    repo_root,
    run,
    run_async,
    say_stderr,
    write_if_changed,
)
from services.runtime.infra.processes import launched, pid_running, port_in_use, wait_gone

_KAFKA_PORTS = (19092, 19093)  # PLAINTEXT and CONTROLLER, as in server.properties.in


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


def _pid_is_broker(pid: int) -> bool:
    if pid in launched:
        return pid_running(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and pid_running(pid)


def kafka_pid(paths: KafkaPaths | None = None) -> int | None:
    """PID of the broker this checkout started, if it is still running."""
    paths = paths or KafkaPaths.default()
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_is_broker(pid) else None


def java_executable() -> str:
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
    write_if_changed(paths.config, template.replace("@DATA_DIR@", str(paths.data)))
    if (paths.data / "meta.properties").exists():
        return
    if paths.cluster_id_file.exists():
        cluster_id = paths.cluster_id_file.read_text().strip()
    else:
        cluster_id = _kafka_uuid()
        paths.cluster_id_file.write_text(cluster_id + "\n")
    say(f"kafka: formatting storage in {paths.data} (cluster id {cluster_id})")
    run(
        [
            java_executable(),
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
        java_executable(),
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
    launched[proc.pid] = proc
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
    log_hint: Callable[[], str] = str,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll until `bootstrap` answers; fail early if `alive()` says the broker died."""
    deadline = time.monotonic() + timeout_s

    def hint() -> str:
        text = log_hint()
        return f"; see {text}" if text else ""

    while True:
        if await kafka_answers(bootstrap):
            return
        if alive is not None and not alive():
            raise InfraError(f"Kafka broker process exited before answering{hint()}")
        if time.monotonic() > deadline:
            raise InfraError(f"Kafka at {bootstrap} did not answer in {timeout_s:.0f}s{hint()}")
        await asyncio.sleep(0.5)


def kafka_log_hint(paths: KafkaPaths) -> str:
    hint = f"{paths.server_log} and {paths.stdout_log}"
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return hint
    proc = launched.get(pid)
    if proc is not None and proc.poll() is not None:
        hint = f"{hint} (pid {pid} exited with {proc.returncode})"
    with contextlib.suppress(OSError):
        tail = paths.stdout_log.read_text(errors="replace").strip().splitlines()[-5:]
        if tail:
            hint += "\n" + "\n".join(tail)
    return hint


def kafka_launch(paths: KafkaPaths, say: Say) -> int:
    _kafka_prepare(paths, say)
    busy = [port for port in _KAFKA_PORTS if port_in_use(port)]
    if busy:
        raise InfraError(
            f"cannot start Kafka: port(s) {busy} on 127.0.0.1 are taken by another process "
            "(a broker started from another checkout? stop it with its `qinqing infra down`)"
        )
    pid = _kafka_spawn(paths)
    say(f"kafka: started broker pid {pid} (log {paths.server_log})")
    return pid


def kafka_stop(
    timeout: float = 30.0, say: Say = say_stderr, paths: KafkaPaths | None = None
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
    if not wait_gone(pid, timeout):
        say(f"kafka: broker pid {pid} ignored SIGTERM for {timeout:.0f}s, killing it")
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10)
    paths.pidfile.unlink(missing_ok=True)
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
    if not wait_gone(pid, 10):
        raise InfraError(f"Kafka pid {pid} still alive 10s after SIGKILL")
    return pid


async def start_kafka_async(
    bootstrap: str = "127.0.0.1:19092", timeout_s: float = 90.0, paths: KafkaPaths | None = None
) -> int:
    """Start the local broker again on the same data dir and wait until it answers."""
    paths = paths or KafkaPaths.default()
    pid = kafka_pid(paths)
    if pid is None:
        pid = kafka_launch(paths, lambda _line: None)
    await wait_for_kafka(
        bootstrap, timeout_s, lambda: kafka_log_hint(paths), lambda: kafka_pid(paths) is not None
    )
    return pid


def start_kafka(
    bootstrap: str = "127.0.0.1:19092", timeout: float = 90.0, paths: KafkaPaths | None = None
) -> int:
    """Blocking form of `start_kafka_async` (from async code prefer the async one)."""
    return run_async(start_kafka_async(bootstrap, timeout, paths))
