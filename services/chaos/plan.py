"""The fault plan: which faults, in what order, and the random pauses around them, all drawn
from one seed so that a failing run can be played again."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    KILL_IDENTITY = "SIGKILL identity"
    KILL_BINDING = "SIGKILL binding"
    KILL_REVIEW = "SIGKILL review"
    KILL_KAFKA = "SIGKILL Kafka"
    RESTART_POSTGRES = "restart PostgreSQL"
    STOP_POSTGRES = "fast shutdown PostgreSQL"


# The service each process kill takes down, and started again afterwards.
KILLED_SERVICE = {
    FaultKind.KILL_IDENTITY: "identity",
    FaultKind.KILL_BINDING: "binding",
    FaultKind.KILL_REVIEW: "review",
}
INFRA_FAULTS = frozenset(
    {FaultKind.KILL_KAFKA, FaultKind.RESTART_POSTGRES, FaultKind.STOP_POSTGRES}
)


@dataclass(frozen=True)
class Bounds:
    """The limits every random draw stays within."""

    gap_s: tuple[float, float] = (2.0, 6.0)  # calm after a recovery, before the next fault
    down_s: tuple[float, float] = (0.5, 3.0)  # a killed piece stays down this long
    faults: int = 6  # at most this many faults in a run


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    gap_s: float  # after the previous fault recovered (or the load started)
    down_s: float  # before the killed piece is started again (a restart has none)


def fault_plan(seed: int, kinds: Sequence[FaultKind], bounds: Bounds) -> list[Fault]:
    """Every kind once, in an order drawn from `seed`, then kinds drawn at random, up to
    `bounds.faults` faults; each with its own pause before it and downtime."""
    rng = random.Random(seed)  # noqa: S311 - a schedule to replay, not a secret
    order = list(kinds)
    rng.shuffle(order)
    order += [rng.choice(order) for _ in range(bounds.faults - len(order))]
    return [
        Fault(
            kind,
            round(rng.uniform(*bounds.gap_s), 2),
            0.0 if kind is FaultKind.RESTART_POSTGRES else round(rng.uniform(*bounds.down_s), 2),
        )
        for kind in order[: bounds.faults]
    ]
