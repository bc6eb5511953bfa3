"""The inbox contract, held by the in-memory inbox used in unit tests."""

from __future__ import annotations

import pytest

from services.runtime.consumer import InMemoryInbox
from tests.contract.inbox import InboxContract


class TestInMemoryInbox(InboxContract):
    @pytest.fixture
    def inbox(self) -> InMemoryInbox:
        return InMemoryInbox()
