"""The identity-tables contract held by the in-memory fake the handlers' specs run on."""

from __future__ import annotations

import pytest

from services.identity.tables import InMemoryIdentityTables
from services.runtime.memory import InMemoryEventStore
from tests.contract.identity_tables import IdentityTablesContract


class TestInMemoryIdentityTables(IdentityTablesContract):
    @pytest.fixture
    def tables(self) -> InMemoryIdentityTables:
        return InMemoryIdentityTables(InMemoryEventStore())
