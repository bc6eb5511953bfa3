"""What the PostgreSQL and Kafka modules share: the error, running commands, writing config."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Say = Callable[[str], None]


class InfraError(RuntimeError):
    """A piece of infrastructure could not be started or did not answer in time."""


def say_stderr(line: str) -> None:
    sys.stderr.write(f"[infra] {line}\n")
    sys.stderr.flush()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
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


def run(args: list[str], *, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
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


def write_if_changed(path: Path, text: str, *, owner: str | None = None) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if owner is not None:
        with contextlib.suppress(KeyError, PermissionError):
            pw = pwd.getpwnam(owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return True


def repo_root() -> Path:
    """The checkout whose `.local/` holds the broker: QINQING_HOME, else this source tree."""
    env = os.environ.get("QINQING_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[3]
    if (here / "deploy" / "local" / "kafka" / "pom.xml").exists():
        return here
    return Path.cwd().resolve()
