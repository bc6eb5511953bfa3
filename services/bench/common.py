"""What every phase shares: run sizes, targets, the figure's shape, payloads and the clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

Say = Callable[[str], None]

TARGETS = {
    "append_vs_raw_insert": 0.7,
    "append_vs_raw_insert_batch10": 0.7,
    "relay_vs_producer_perf": 0.5,
    "rebuild_vs_raw_read": 0.3,
}
FIGURES = tuple(TARGETS)
# Absolute rates with no ceiling to divide by (`identity`): reported beside the ratios.
ABSOLUTES = ("id_validations_per_s", "password_verifications_per_s")
# End-to-end figures with absolute targets (`flows`): (comparison, limit), or None for none.
FLOW_TARGETS: dict[str, tuple[str, float] | None] = {
    "binding_flows_per_s": (">=", 200.0),
    "binding_flow_p50_ms": None,
    "binding_flow_p99_ms": ("<=", 1000.0),
}
FLOW_FIGURES = tuple(FLOW_TARGETS)

STREAM_TYPES = ("account", "binding", "voucher", "proxy")


class BenchError(RuntimeError):
    """The benchmark could not run (infrastructure missing, a tool failed): names the cause."""


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one run; `FULL` fits ~3 minutes and `QUICK` ~45 s on 2 cores."""

    mode: str
    writers: int = 8
    warmup_s: float = 2.0
    phase_s: float = 6.0
    rounds: int = 4
    small_payload_bytes: int = 200  # data JSON of the append phase's events
    stream_length: int = 50  # events per stream before a writer moves to a new stream
    relay_payload_bytes: int = 1000  # data JSON of the relay/rebuild events (~1 KB record)
    relay_warmup_events: int = 2_000
    relay_events: int = 98_000  # backlog measured; warm-up + backlog = the rebuild's events
    load_batch: int = 100
    producer_perf_records: int = 150_000
    producer_perf_runs: int = 2  # before and after the relay; the best run is the ceiling
    topic_partitions: int = 3
    read_batch: int = 1_000
    read_repeats: int = 2
    relay_timeout_s: float = 120.0
    id_validations: int = 120_000  # parse_id_number calls, cycling over the generated set
    id_numbers: int = 10_000  # distinct generated ID numbers (half valid, half invalid)
    password_verifications: int = 150  # argon2id verifications (~20 ms each)
    flows: int = 1_000  # complete binding flows measured (5 per holder)
    flow_warmup: int = 20  # untimed flows first (connections, the letter's font, caches)
    flow_alone: int = 10  # untimed flows one at a time after the warm-up (the latency floor)
    flow_concurrency: int = 50  # flows in flight (closed loop)
    flow_timeout_s: float = 60.0  # a flow not bound this long after its POST is incomplete
    flow_registrations_in_flight: int = 16  # concurrent POST /persons while setting up
    review_open_cases: int = 100_000  # open review cases seeded across 20 regions
    review_queries: int = 400  # timed queue queries, and as many searches by ID number


FULL = BenchConfig(mode="full")
QUICK = replace(
    FULL,
    mode="quick",
    warmup_s=1.0,
    phase_s=2.0,
    rounds=2,
    relay_warmup_events=1_000,
    relay_events=19_000,
    producer_perf_records=40_000,
    producer_perf_runs=1,
    read_repeats=1,
    relay_timeout_s=60.0,
    id_validations=10_000,
    id_numbers=2_000,
    password_verifications=10,
    flows=40,
    flow_warmup=5,
    flow_alone=3,
    flow_concurrency=8,
    flow_timeout_s=30.0,
    review_open_cases=20_000,
    review_queries=200,
)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def figure(
    ratio_of: tuple[float, float], *, key: str, definition: str, **extra: Any
) -> dict[str, Any]:
    """The JSON of figure `key`: `ratio` is ours / ceiling, both measured in this run."""
    if ratio_of[1] <= 0:
        raise BenchError(f"the ceiling measured nothing ({definition})")
    ratio = ratio_of[0] / ratio_of[1]
    target = TARGETS[key]
    return {
        "ratio": round(ratio, 3),
        "target": target,
        "meets_target": ratio >= target,
        "definition": definition,
        **extra,
    }


def pad(size: int, n: int) -> dict[str, Any]:
    """A data payload whose canonical JSON is about `size` bytes."""
    base = {"n": n, "amount_cents": (n * 7919) % 1_000_000, "currency": "CNY", "memo": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    base["memo"] = "m" * max(0, size - overhead)
    return base


def now() -> datetime:
    return datetime.now(UTC)
