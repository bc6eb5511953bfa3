"""Everything under tests/integration is marked `integration` (real PostgreSQL and Kafka);
the restart of the local PostgreSQL the outage tests share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.runtime import infra as local_infra
from tests.conftest import Infra

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def restart_postgres(infra: Infra) -> Callable[[], None]:
    """Restarts the cluster: only the local one (a container's or a given server's restart is
    not ours to make), so anywhere else the test fails and says why rather than passing
    without an outage. Tests using it restart the machine's shared cluster: run them under
    `flock -x /tmp/qinqing-infra.lock` when other runs share it."""
    if infra.database_source != "local":
        pytest.fail(
            f"this test restarts PostgreSQL, but PostgreSQL comes from {infra.database_source};"
            " run it against the local cluster (unset DATABASE_URL, no Docker engine)",
            pytrace=False,
        )
    return lambda: local_infra.pg_restart(say=lambda _: None)
