"""What the flows phase measures beside latency: percentiles, CPU per process, the read horizon,
the cost of one commit alone, the load average."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = [s * 1000 for s in seconds]
    return {
        "p50": round(percentile(ms, 50), 2),
        "p99": round(percentile(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2),
        "max": round(max(ms), 2),
    }


def _proc_cpu(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of proc(5)


def _processes(match: Callable[[str, str], bool]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if match(comm, cmdline):
            pids.append(int(entry.name))
    return pids


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0, 0
    values = [int(v) for v in first[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuMeter:
    """CPU seconds used between start and stop by this process (`this_process` when it serves
    the services too, else `driver`), each service's own process (`pids`: service -> pid),
    and PostgreSQL's and Kafka's processes."""

    pids: dict[str, int] = field(default_factory=dict)
    started: dict[str, dict[int, float]] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)
    wall: float = 0.0

    def _groups(self) -> dict[str, list[int]]:
        ours = {"driver" if self.pids else "this_process": [os.getpid()]}
        return {
            **ours,
            **{service: [pid] for service, pid in self.pids.items()},
            "postgres": _processes(lambda comm, _: comm.startswith("postgres")),
            "kafka": _processes(lambda _, cmd: "kafka.Kafka" in cmd),
        }

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for group, pids in self._groups().items():
            sample[group] = {p: c for p in pids if (c := _proc_cpu(p)) is not None}
        return sample

    def start(self) -> None:
        self.started, self.machine, self.wall = (
            self._sample(),
            _machine_jiffies(),
            time.perf_counter(),
        )

    def stop(self, flows: int) -> dict[str, Any]:
        ended, machine = self._sample(), _machine_jiffies()
        wall = time.perf_counter() - self.wall
        used = {
            group: sum(cpu - self.started[group].get(pid, 0.0) for pid, cpu in pids.items())
            for group, pids in ended.items()
        }
        busy, total = (machine[0] - self.machine[0], machine[1] - self.machine[1])
        cores = os.cpu_count() or 1
        return {
            "seconds": round(wall, 2),
            "cpu_s": {group: round(s, 2) for group, s in used.items()},
            "cores_busy": {group: round(s / wall, 2) for group, s in used.items()} if wall else {},
            "cpu_ms_per_flow": {
                group: round(s / flows * 1000, 2) for group, s in used.items()
            } if flows else {},
            "machine_busy_fraction": round(busy / total, 3) if total else None,
            "machine_cores": cores,
        }  # fmt: skip


class HorizonSampler:
    """Every relay reads only events of transactions below the oldest transaction still
    running in the whole cluster (`pg_snapshot_xmin`), so any open transaction holding an xid
    delays every service's publishing. Sampled every `interval_s` while the flows run."""

    SQL = (
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0)::float8,"
        " count(*)::int,"
        " (pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        "  - pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"
        " FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    )

    def __init__(self, conn: asyncpg.Connection, interval_s: float = 0.1) -> None:
        self.conn, self.interval_s = conn, interval_s
        self.oldest_s: list[float] = []
        self.with_xid: list[int] = []
        self.window: list[int] = []
        self.loop_lag_s: list[float] = []  # how late a sleep of interval_s woke up
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            row = await self.conn.fetchrow(self.SQL)
            if row is not None:
                self.oldest_s.append(row[0])
                self.with_xid.append(row[1])
                self.window.append(row[2])
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.loop_lag_s.append(max(0.0, time.perf_counter() - before - self.interval_s))

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.oldest_s:
            return {}
        return {
            "definition": "sampled every 0.1 s over the whole cluster while the flows ran: the "
            "age of the oldest transaction holding an xid (no relay can publish an event "
            "committed after it began until it ends), how many transactions held one, and "
            "xmax - xmin of the current snapshot",
            "samples": len(self.oldest_s),
            "oldest_transaction_ms": summary_ms(self.oldest_s),
            "transactions_with_xid": {
                "p50": percentile([float(n) for n in self.with_xid], 50),
                "max": max(self.with_xid),
            },
            "snapshot_xid_window": {
                "p50": percentile([float(n) for n in self.window], 50),
                "max": max(self.window),
            },
            "event_loop_lag_ms": summary_ms(self.loop_lag_s),
        }


async def primitives(
    conn: asyncpg.Connection, schema: str, bootstrap: str, topic: str, samples: int
) -> dict[str, Any]:
    """What one consumed message costs at least, measured alone after the flows: a one-row
    transaction (as the inbox's; synchronous_commit as configured) and a Kafka offset commit
    (FastStream's manual ack commits after every message)."""
    table = f'"{schema}".bench_probe'
    await conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY)")
    commits: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES ($1)", uuid.uuid4())
        commits.append(time.perf_counter() - started)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"{topic}.bench-probe", enable_auto_commit=False
    )
    offsets: list[float] = []
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        position = await consumer.position(partition)
        for _ in range(samples):
            started = time.perf_counter()
            await consumer.commit({partition: position})
            offsets.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
    setting = await conn.fetchval("SELECT current_setting('synchronous_commit')")
    return {
        "definition": f"{samples} one-row INSERT transactions in a fresh table and {samples} "
        "Kafka consumer offset commits, one at a time with nothing else running",
        "postgres_commit_ms": summary_ms(commits),
        "synchronous_commit": setting,
        "kafka_offset_commit_ms": summary_ms(offsets),
    }


def load_average() -> list[float] | None:
    """1/5/15-minute load: other work on the machine skews every phase, so say how much."""
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None
