"""The checkpoint-store contract, held by the in-memory store used in unit tests."""

from __future__ import annotations

import pytest

from services.runtime.checkpoints import InMemoryCheckpoints
from tests.contract.checkpoints import CheckpointStoreContract


class TestInMemoryCheckpoints(CheckpointStoreContract):
    @pytest.fixture
    def checkpoints(self) -> InMemoryCheckpoints:
        return InMemoryCheckpoints()
