"""A short chaos run on the real stack: every kind of fault at least once under real binding
flows, then every invariant holds (`qinqing chaos --minutes N` is the longer run)."""

from __future__ import annotations

from collections import Counter

import pytest

from services.chaos import ChaosConfig, run_chaos, table
from services.chaos.load import EXPECTED, FlowKind
from services.chaos.plan import Bounds, FaultKind
from services.runtime.settings import Settings
from tests.conftest import Infra

SEED = 20261202
# One fault of each kind, a few seconds apart: about two minutes on 2 cores, set-up included.
SHORT = ChaosConfig(
    minutes=3.0,
    seed=SEED,
    bounds=Bounds(gap_s=(2.0, 5.0), down_s=(0.5, 3.0), faults=len(FaultKind)),
    families_in_flight=4,
)


@pytest.mark.integration
async def test_no_flow_is_lost_or_doubled_whatever_is_killed_or_restarted(infra: Infra) -> None:
    if (infra.database_source, infra.kafka_source) != ("local", "local"):
        pytest.fail(
            "the chaos run kills the broker and restarts PostgreSQL, so both must be the local "
            f"ones (PostgreSQL from {infra.database_source}, Kafka from {infra.kafka_source})",
            pytrace=False,
        )
    settings = Settings(
        DATABASE_URL=infra.database_url, KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap
    )
    lines: list[str] = []

    report = await run_chaos(SHORT, settings, lines.append)

    shown = table(report)
    print(shown)  # noqa: T201 - the run's table, in the test's report
    assert Counter(r.kind for r in report.recoveries) == dict.fromkeys(FaultKind, 1), shown
    assert all(r.recovered for r in report.recoveries), shown
    # Every kind of flow ran, the faults notwithstanding, and ended as it must.
    assert {flow.kind for flow in report.flows} == set(FlowKind), shown
    assert all(flow.outcome == EXPECTED[flow.kind] for flow in report.flows), shown
    assert (report.verdict.lost, report.verdict.doubled) == (0, 0), shown
    assert [c.name for c in report.verdict.checks if not c.ok] == [], shown
    assert len(report.verdict.checks) == 10, shown
