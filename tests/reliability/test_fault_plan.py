"""The fault plan: replayable from its seed, every kind at least once, within its bounds."""

from __future__ import annotations

from services.chaos.plan import Bounds, FaultKind, fault_plan

BOUNDS = Bounds(gap_s=(1.0, 2.0), down_s=(0.5, 1.5), faults=10)


def test_the_same_seed_plays_the_same_faults_and_another_seed_others() -> None:
    assert fault_plan(3, list(FaultKind), BOUNDS) == fault_plan(3, list(FaultKind), BOUNDS)
    assert fault_plan(3, list(FaultKind), BOUNDS) != fault_plan(4, list(FaultKind), BOUNDS)


def test_every_kind_comes_once_before_any_comes_again() -> None:
    for seed in range(20):
        plan = fault_plan(seed, list(FaultKind), BOUNDS)
        assert {fault.kind for fault in plan[: len(FaultKind)]} == set(FaultKind)


def test_the_count_and_every_pause_stay_within_the_bounds() -> None:
    for seed in range(20):
        plan = fault_plan(seed, list(FaultKind), BOUNDS)
        assert len(plan) == BOUNDS.faults
        assert all(1.0 <= f.gap_s <= 2.0 for f in plan)
        for fault in plan:
            if fault.kind is FaultKind.RESTART_POSTGRES:
                assert fault.down_s == 0  # a restart has no downtime of its own
            else:
                assert 0.5 <= fault.down_s <= 1.5


def test_a_plan_shorter_than_its_kinds_draws_only_from_them() -> None:
    kinds = [FaultKind.KILL_BINDING, FaultKind.KILL_KAFKA]
    plan = fault_plan(1, kinds, Bounds(faults=1))
    assert len(plan) == 1
    assert plan[0].kind in kinds
