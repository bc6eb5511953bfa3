"""Process bookkeeping: the children this process launched, liveness from /proc, busy ports."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

# Children launched by this process (the broker): polling them tells exit codes and reaps them.
launched: dict[int, subprocess.Popen[bytes]] = {}


def pid_running(pid: int) -> bool:
    """Some thread of the process is still alive (SIGKILL turns the main thread into a
    zombie before the others, which still hold the broker's sockets, are gone)."""
    proc = launched.get(pid)
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


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
