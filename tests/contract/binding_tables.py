"""The binding-tables contract: run against the in-memory and the PostgreSQL tables alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.binding.tables import BindingTables, KnownPerson, RequestRow
from services.runtime.pgstore import Executor

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
LOOKUP, OTHER_LOOKUP = "a" * 64, "b" * 64  # the shape of pii.lookup_hash: 64 hex digits


def row(request_id: str, deadline: datetime = NOW, holder: str = "p-holder") -> RequestRow:
    return RequestRow(
        request_id, holder, "张**", "360***********0014", date(2026, 11, 25), deadline
    )


class BindingTablesContract:
    """Subclasses provide a `tables` fixture giving empty tables, and `conn`: what the
    consumers' methods are given (the inbox's connection; the fake ignores it)."""

    # ---------------------------------------------------------------------------- persons

    async def test_a_registered_person_is_found_by_pseudonym_and_by_id_lookup(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102")
        assert await tables.person("p-1") == KnownPerson("p-1", "360102")
        assert await tables.person_by_lookup(LOOKUP) == KnownPerson("p-1", "360102")
        assert await tables.person_by_lookup(OTHER_LOOKUP) is None
        assert await tables.person("p-2") is None

    async def test_a_personal_account_is_kept_with_the_person(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102", personal_account=True)
        held = KnownPerson("p-1", "360102", personal_account=True)
        assert await tables.person("p-1") == await tables.person_by_lookup(LOOKUP) == held

    async def test_registering_again_replaces_the_lookup_and_the_place(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102")
        await tables.person_registered(conn, "p-1", OTHER_LOOKUP, "360111")
        assert await tables.person_by_lookup(LOOKUP) is None
        assert await tables.person_by_lookup(OTHER_LOOKUP) == KnownPerson("p-1", "360111")

    async def test_a_person_registered_without_an_id_lookup_is_found_by_pseudonym_only(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", None, "360102")
        await tables.person_registered(conn, "p-2", None, "360111")
        assert await tables.person("p-1") == KnownPerson("p-1", "360102")
        assert await tables.person("p-2") == KnownPerson("p-2", "360111")

    async def test_an_id_lookup_another_person_holds_is_refused(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102")
        with pytest.raises(asyncpg.UniqueViolationError):
            await tables.person_registered(conn, "p-2", LOOKUP, "360111")
        assert await tables.person_by_lookup(LOOKUP) == KnownPerson("p-1", "360102")
        assert await tables.person("p-2") is None

    async def test_a_switched_insured_place_is_the_current_one(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102")
        await tables.insured_place_switched(conn, "p-1", "360111")
        assert await tables.person("p-1") == KnownPerson("p-1", "360111")
        assert await tables.person_by_lookup(LOOKUP) == KnownPerson("p-1", "360111")

    async def test_switching_the_place_of_an_unknown_person_registers_nobody(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.insured_place_switched(conn, "p-1", "360111")
        assert await tables.person("p-1") is None

    async def test_an_erased_person_is_found_no_more_and_the_others_stay(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102")
        await tables.person_registered(conn, "p-2", OTHER_LOOKUP, "360111")
        await tables.person_erased(conn, "p-1")
        await tables.person_erased(conn, "p-1")  # a redelivered erasure
        assert await tables.person("p-1") is None
        assert await tables.person_by_lookup(LOOKUP) is None
        assert await tables.person("p-2") == KnownPerson("p-2", "360111")

    async def test_the_id_lookup_of_an_erased_person_can_be_registered_again(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.person_registered(conn, "p-1", LOOKUP, "360102")
        await tables.person_erased(conn, "p-1")
        await tables.person_registered(conn, "p-2", LOOKUP, "360111")
        assert await tables.person_by_lookup(LOOKUP) == KnownPerson("p-2", "360111")

    # ---------------------------------------------------------------------------- requests

    async def test_a_request_row_comes_back_as_added(self, tables: BindingTables) -> None:
        await tables.add_request(row("r-1"))
        assert await tables.request("r-1") == row("r-1")
        assert await tables.request("r-2") is None

    async def test_adding_a_request_again_keeps_the_first_row(self, tables: BindingTables) -> None:
        await tables.add_request(row("r-1"))
        await tables.add_request(row("r-1", NOW + timedelta(days=1), holder="p-other"))
        assert await tables.request("r-1") == row("r-1")

    async def test_a_dropped_request_is_gone(self, tables: BindingTables) -> None:
        await tables.add_request(row("r-1"))
        await tables.add_request(row("r-2"))
        await tables.drop_request("r-1")
        await tables.drop_request("r-unknown")
        assert await tables.request("r-1") is None
        assert await tables.request("r-2") == row("r-2")

    async def test_a_settled_request_is_still_readable_and_no_longer_overdue(
        self, tables: BindingTables
    ) -> None:
        await tables.add_request(row("r-1"))
        await tables.add_request(row("r-2"))
        await tables.settle("r-1")
        await tables.settle("r-1")
        await tables.settle("r-unknown")
        assert await tables.request("r-1") == row("r-1")
        assert await tables.overdue(NOW, 10) == [("r-2", "p-holder")]

    async def test_overdue_lists_unsettled_requests_at_or_past_the_deadline_earliest_first(
        self, tables: BindingTables
    ) -> None:
        for request_id, minutes in [("r-late", 2), ("r-future", 61), ("r-early", -30), ("r-on", 0)]:
            await tables.add_request(
                row(request_id, NOW + timedelta(minutes=minutes), holder=f"h-{request_id}")
            )
        assert await tables.overdue(NOW + timedelta(minutes=2), 10) == [
            ("r-early", "h-r-early"),
            ("r-on", "h-r-on"),
            ("r-late", "h-r-late"),
        ]

    async def test_overdue_returns_at_most_the_limit_earliest_first(
        self, tables: BindingTables
    ) -> None:
        for minutes in range(5):
            await tables.add_request(row(f"r-{minutes}", NOW - timedelta(minutes=minutes)))
        due = await tables.overdue(NOW, 2)
        assert [request_id for request_id, _ in due] == ["r-4", "r-3"]

    async def test_overdue_compares_instants_not_wall_clocks(self, tables: BindingTables) -> None:
        in_china = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # NOW
        await tables.add_request(row("r-1", in_china))
        assert await tables.overdue(NOW - timedelta(seconds=1), 10) == []
        assert await tables.overdue(NOW, 10) == [("r-1", "p-holder")]

    # ---------------------------------------------------------------------------- face checks

    async def test_an_opened_face_check_names_its_request(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.face_check_opened(conn, "c-1", "r-1")
        assert await tables.request_of_check(conn, "c-1") == "r-1"
        assert await tables.request_of_check(conn, "c-2") is None

    async def test_opening_a_face_check_again_keeps_the_first_request(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        await tables.face_check_opened(conn, "c-1", "r-1")
        await tables.face_check_opened(conn, "c-1", "r-2")
        assert await tables.request_of_check(conn, "c-1") == "r-1"

    async def test_a_confirmation_serves_one_unbinding_and_its_retries(
        self, tables: BindingTables, conn: Executor
    ) -> None:
        assert await tables.use_confirmation("jti-1", "p-h", "p-1", "proxy")
        assert await tables.use_confirmation("jti-1", "p-h", "p-1", "proxy")  # a retry
        assert not await tables.use_confirmation("jti-1", "p-h", "p-2", "proxy")
        assert not await tables.use_confirmation("jti-1", "p-h", "p-1", "family_account")
        await tables.release_confirmation("jti-1")
        assert await tables.use_confirmation("jti-1", "p-h", "p-2", "proxy")
