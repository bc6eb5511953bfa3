"""The binding-tables contract held by the in-memory fake the handlers' specs run on."""

from __future__ import annotations

import pytest

from services.binding.tables import BindingTables, InMemoryBindingTables
from tests.contract.binding_tables import BindingTablesContract


class TestInMemoryBindingTables(BindingTablesContract):
    @pytest.fixture
    def tables(self) -> InMemoryBindingTables:
        return InMemoryBindingTables()

    @pytest.fixture
    def conn(self) -> None:
        """The fake ignores the inbox's connection."""


def test_the_fake_overrides_every_method_of_the_postgres_tables() -> None:
    # A method it inherited would run SQL on a pool the fake does not have.
    methods = {name for name in vars(BindingTables) if not name.startswith("_")}
    assert methods <= set(vars(InMemoryBindingTables))
