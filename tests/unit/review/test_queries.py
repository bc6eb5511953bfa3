"""The review-queries contract held by the in-memory views."""

from __future__ import annotations

import pytest

from services.review.queries import InMemoryReviewViews
from services.runtime.events import RecordedEvent
from tests.contract.review_queries import KEY, Project, ReviewQueriesContract


class TestInMemoryReviewViews(ReviewQueriesContract):
    @pytest.fixture
    def views(self) -> InMemoryReviewViews:
        return InMemoryReviewViews(KEY)

    @pytest.fixture
    def project(self, views: InMemoryReviewViews) -> Project:
        async def apply(event: RecordedEvent) -> None:
            await views.apply(None, event)  # the fake has no connection to be given

        return apply
