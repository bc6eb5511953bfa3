"""The event-store contract, held by the in-memory store used in unit tests."""

from __future__ import annotations

import pytest

from services.runtime.memory import InMemoryEventStore
from tests.contract.event_store import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()
