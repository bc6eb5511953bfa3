"""The binding-tables contract held by the in-memory fake the handlers' specs run on."""

from __future__ import annotations

import pytest

from services.binding.tables import InMemoryBindingTables, PostgresBindingTables
from tests.contract.binding_tables import BindingTablesContract


class TestInMemoryBindingTables(BindingTablesContract):
    @pytest.fixture
    def tables(self) -> InMemoryBindingTables:
        return InMemoryBindingTables()

    @pytest.fixture
    def conn(self) -> None:
        """The fake ignores the inbox's connection."""


def test_the_fake_has_every_method_of_the_postgres_tables() -> None:
    # Whatever production may call on the real tables, a spec can call on the fake.
    methods = {name for name in vars(PostgresBindingTables) if not name.startswith("_")}
    assert methods <= set(vars(InMemoryBindingTables))
