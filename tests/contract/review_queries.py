"""The review-queries contract: the same events projected, the same answers from the in-memory
views and from the PostgreSQL case table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from services.review.events import (
    CaseType,
    MaterialsApproved,
    MaterialsRejected,
    RejectionReason,
    ReviewCaseClaimed,
    ReviewCaseEscalated,
    ReviewCaseWithdrawn,
    WithdrawalCause,
)
from services.review.handlers import OverdueCases
from services.review.queries import CaseQueries, QueuePage
from services.runtime.codec import DomainEvent
from services.runtime.pii import lookup_hash
from tests.builders import recorded_event
from tests.unit.review.builders import BEIJING, JIANGXI, NANCHANG, NOW, opened

KEY = b"L" * 32  # the lookup key the views under test are built with
ID_NUMBER = "360426199101010047"
Project = Callable[..., Awaitable[None]]


class ReviewViewsPort(CaseQueries, OverdueCases, Protocol):
    """What the API, the console and the escalation timer ask of the views."""


def case(n: int, region: str = "360102", minutes: int = 0, **over: Any) -> DomainEvent:
    fields = {
        "case_id": f"case-{n}",
        "request_id": f"req-{n}",
        "region": region,
        "holder": f"p_holder_{n:04}",
        "member": f"p_member_{n:04}",
        "opened_at": NOW + timedelta(minutes=minutes),
    }
    return opened(**(fields | over))


async def given(project: Project, *events: DomainEvent, stream: str = "case") -> None:
    for event in events:
        data = event.model_dump(mode="json")
        await project(recorded_event(stream, type(event).__name__, data, at=NOW))


def ids(page: QueuePage) -> list[str]:
    return [item.case_id for item in page.items]


class ReviewQueriesContract:
    """Subclasses provide `views` over an empty case table, built with KEY, and `project`:
    applies one recorded event as the case and person-lookup projections do."""

    async def test_an_opened_case_is_queued_for_the_reviewers_of_its_region_only(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        await given(project, case(1, "360102"))
        (item,) = (await views.queue(NANCHANG, NOW + timedelta(hours=1))).items
        assert (item.case_id, item.case_type, item.region) == ("case-1", "member_binding", "360102")
        assert (item.holder, item.member) == ("p_hold…0001", "p_memb…0001")  # masked
        assert (item.age, item.claimed_by, item.escalated) == (timedelta(hours=1), None, False)
        assert ids(await views.queue(JIANGXI, NOW)) == ["case-1"]
        assert ids(await views.queue(BEIJING, NOW)) == []

    async def test_pages_run_oldest_first_across_regions_without_repeats(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        regions = ("360102", "360702", "110101")
        await given(project, *(case(n, regions[n % 3], minutes=-n) for n in range(9)))
        seen, page = [], await views.queue(JIANGXI, NOW, limit=2)
        while page.next_after is not None:
            seen += ids(page)
            page = await views.queue(JIANGXI, NOW, after=page.next_after, limit=2)
        seen += ids(page)
        assert seen == ["case-7", "case-6", "case-4", "case-3", "case-1", "case-0"]

    async def test_the_queue_shows_one_case_type_when_asked(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        await given(project, case(1), case(2, case_type=CaseType.FILING, minutes=1))
        assert ids(await views.queue(NANCHANG, NOW, case_type=CaseType.FILING)) == ["case-2"]
        assert ids(await views.queue(NANCHANG, NOW)) == ["case-1", "case-2"]

    async def test_decided_and_withdrawn_cases_leave_the_queue_claimed_ones_stay(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        later = NOW + timedelta(minutes=5)
        await given(
            project,
            *(case(n, minutes=n) for n in range(4)),
            ReviewCaseClaimed(case_id="case-0", claimed_by="rev-nc", claimed_at=later),
            MaterialsApproved(
                case_id="case-1", case_type=CaseType.MEMBER_BINDING, request_id="req-1",
                decided_by="rev-nc", decided_at=later,
            ),
            MaterialsRejected(
                case_id="case-2", case_type=CaseType.MEMBER_BINDING, request_id="req-2",
                reason=RejectionReason.OTHER, decided_by="rev-nc", decided_at=later,
            ),
            ReviewCaseWithdrawn(
                case_id="case-3", request_id="req-3", cause=WithdrawalCause.REQUEST_EXPIRED,
                withdrawn_at=later,
            ),
        )  # fmt: skip
        (item,) = (await views.queue(NANCHANG, later)).items
        assert (item.case_id, item.claimed_by) == ("case-0", "rev-nc")

    async def test_a_redelivered_opening_keeps_the_case_as_first_opened(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        await given(project, case(1), case(1, region="110101", minutes=9))
        assert ids(await views.queue(NANCHANG, NOW)) == ["case-1"]
        assert ids(await views.queue(BEIJING, NOW)) == []

    async def test_the_search_finds_a_persons_open_cases_by_id_number_in_the_reviewers_regions(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        digest = lookup_hash(KEY, ID_NUMBER)
        registered = {"pseudonym": "p_member_0001", "id_lookup": digest}
        await project(
            recorded_event("person-p_member_0001", "PersonRegistered", registered, at=NOW)
        )
        await given(project, case(1), case(2, minutes=1), case(3, "110101", holder="p_member_0001"))
        assert ids(await views.search(NANCHANG, ID_NUMBER, NOW)) == ["case-1"]  # as member
        assert ids(await views.search(BEIJING, ID_NUMBER, NOW)) == ["case-3"]  # as holder
        assert ids(await views.search(NANCHANG, "11010519491231002X", NOW)) == []

    async def test_an_erased_person_is_found_by_id_number_no_more(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        registered = {"pseudonym": "p_member_0001", "id_lookup": lookup_hash(KEY, ID_NUMBER)}
        await project(
            recorded_event("person-p_member_0001", "PersonRegistered", registered, at=NOW)
        )
        await project(recorded_event("person-p_member_0001", "PersonErased", {}, at=NOW))
        await given(project, case(1))
        assert ids(await views.search(NANCHANG, ID_NUMBER, NOW)) == []

    async def test_statistics_count_open_cases_per_region_and_the_last_hours_decisions(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        decided = NOW + timedelta(minutes=20)
        await given(
            project,
            case(1, "360102"), case(2, "360102", minutes=10), case(3, "110101"), case(4, "110101"),
            ReviewCaseEscalated(
                case_id="case-1", region="360102", opened_at=NOW, escalated_at=decided
            ),
            MaterialsApproved(
                case_id="case-3", case_type=CaseType.MEMBER_BINDING, request_id="req-3",
                decided_by="policy:11/member_binding", decided_at=decided,
            ),
            MaterialsApproved(
                case_id="case-4", case_type=CaseType.MEMBER_BINDING, request_id="req-4",
                decided_by="rev-bj", decided_at=decided,
            ),
        )  # fmt: skip
        stats = await views.stats(NOW + timedelta(minutes=30))
        (nanchang,) = stats.regions
        assert (nanchang.region, nanchang.open_cases, nanchang.escalated) == ("360102", 2, 1)
        assert (nanchang.oldest_opened_at, nanchang.oldest_age) == (NOW, timedelta(minutes=30))
        assert (stats.open_cases, stats.decisions_last_hour, stats.automatic_last_hour) == (2, 2, 1)
        assert (await views.stats(NOW + timedelta(hours=2))).decisions_last_hour == 0

    async def test_overdue_cases_are_open_unescalated_and_opened_by_the_cutoff_oldest_first(
        self, views: ReviewViewsPort, project: Project
    ) -> None:
        await given(
            project,
            *(case(n, minutes=-n) for n in range(4)),
            case(9, minutes=30),
            ReviewCaseEscalated(
                case_id="case-2", region="360102", opened_at=NOW, escalated_at=NOW
            ),
            ReviewCaseWithdrawn(
                case_id="case-3", request_id="req-3", cause=WithdrawalCause.BINDING_REVOKED,
                withdrawn_at=NOW,
            ),
        )  # fmt: skip
        assert await views.overdue(NOW, 10) == ["case-1", "case-0"]
        assert await views.overdue(NOW, 1) == ["case-1"]
