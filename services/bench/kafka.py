"""Kafka tooling: the preflight check, bench topics, and `ProducerPerformance` as the ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from pathlib import Path

from services.bench.common import BenchError
from services.runtime.infra import KafkaPaths
from services.runtime.infra.kafka import java_executable

_PERF_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\),"
    r" (?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency,"
    r" (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


def kafka_libs() -> Path:
    env = os.environ.get("QINQING_KAFKA_LIBS")
    return Path(env) if env else KafkaPaths.default().libs


def kafka_version(libs: Path) -> str | None:
    for jar in sorted(libs.glob("kafka-clients-*.jar")):
        return jar.name.removeprefix("kafka-clients-").removesuffix(".jar")
    return None


async def kafka_preflight(bootstrap: str) -> None:
    """Fail before the first phase, not minutes in, when Kafka or the perf tool is missing."""
    libs = kafka_libs()
    if not any(libs.glob("kafka-tools-*.jar")):
        raise BenchError(f"no kafka-tools jar in {libs}: run ./deploy/local/setup")
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
    except (OSError, TimeoutError, KafkaError) as exc:
        raise BenchError(
            f"Kafka at {bootstrap} does not answer ({exc!r}): run `qinqing infra up`"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def producer_perf(bootstrap: str, topic: str, records: int) -> dict[str, float]:
    """Kafka's own ProducerPerformance: 1 KB records, acks=all, unthrottled; its summary line.

    `kafka_preflight` has already checked that the tools jar is there.
    """
    cmd = [
        java_executable(), "-Xmx512m", "-cp", f"{kafka_libs()}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--record-size", "1024",
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    summary = None
    for line in proc.stdout.splitlines():
        if match := _PERF_SUMMARY.search(line):
            summary = match
    if proc.returncode != 0 or summary is None:
        tail = (proc.stdout + proc.stderr).strip()[-800:]
        raise BenchError(f"ProducerPerformance failed (exit {proc.returncode}): {tail}")
    return {
        "records": int(summary["records"]),
        "records_per_s": float(summary["rps"]),
        "mb_per_s": float(summary["mbps"]),
        "latency_ms_avg": float(summary["avg"]),
        "latency_ms_p50": float(summary["p50"]),
        "latency_ms_p99": float(summary["p99"]),
    }
