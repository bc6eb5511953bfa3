"""The review HTTP API: reviewers' queue, cases, decisions and materials; operators' statistics
and policies. Routes turn requests into handler and query calls; no rules live here."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request, Response

from services.review.console import mount_console
from services.review.errors import STATUS
from services.review.events import CaseType
from services.review.handlers import ReviewHandlers
from services.review.queries import MAX_PAGE, CaseQueries
from services.review.schemas import (
    CaseView,
    PolicyBody,
    PolicyView,
    QueueView,
    RejectBody,
    SearchBody,
    StatsView,
    case_view,
    policy_view,
    queue_view,
    stats_view,
)
from services.runtime.auth import require
from services.runtime.http import Command, service_app
from services.runtime.openapi import refusals
from services.runtime.params import PathId
from services.runtime.principal import Principal, Role


@dataclass(frozen=True)
class ReviewApi:
    """What the routes (and the console page) need, built once by services.review.app."""

    handlers: ReviewHandlers
    views: CaseQueries
    clock: Callable[[], datetime]
    ready: Callable[[], Awaitable[bool]]


# async: FastAPI would run a plain `def` dependency in a worker thread on every request
async def _api(request: Request) -> ReviewApi:
    api: ReviewApi = request.app.state.review
    return api


Api = Annotated[ReviewApi, Depends(_api)]
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]


def _routes(app: FastAPI) -> None:
    @app.get(
        "/cases",
        tags=["queue"],
        responses=refusals(401, 403, 422, 503),
    )
    async def queue(
        api: Api,
        caller: Reviewer,
        case_type: CaseType | None = None,
        after: Annotated[str | None, Query(max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    ) -> QueueView:
        """Open cases in the caller's regions, oldest first (searching by ID number is POST
        /cases/search, so the number stays out of URLs and access logs)."""
        page = await api.views.queue(
            caller, api.clock(), case_type=case_type, after=after, limit=limit
        )
        return queue_view(page)

    @app.post(
        "/cases/search",
        tags=["queue"],
        responses=refusals(400, 401, 403, 413, 422, 503),
    )
    async def search(body: SearchBody, api: Api, caller: Reviewer) -> QueueView:
        """Open cases in the caller's regions of the person (holder or member) with the number."""
        page = await api.views.search(
            caller, body.id_number, api.clock(), case_type=body.case_type, limit=body.limit
        )
        return queue_view(page)

    @app.get(
        "/cases/{case_id}",
        tags=["cases"],
        responses=refusals(401, 403, 404, 422, 503),
    )
    async def case(case_id: PathId, api: Api, caller: Reviewer) -> CaseView:
        return case_view(await api.handlers.case_detail(case_id, caller))

    @app.post(
        "/cases/{case_id}/claim",
        tags=["cases"],
        responses=refusals(401, 403, 404, 409, 422, 503),
    )
    async def claim(case_id: PathId, api: Api, caller: Reviewer, ctx: Command) -> CaseView:
        await api.handlers.claim(case_id, caller, ctx)
        return await case(case_id, api, caller)

    @app.post(
        "/cases/{case_id}/approve",
        tags=["cases"],
        responses=refusals(401, 403, 404, 409, 422, 503),
    )
    async def approve(case_id: PathId, api: Api, caller: Reviewer, ctx: Command) -> CaseView:
        await api.handlers.approve(case_id, caller, ctx)
        return await case(case_id, api, caller)

    @app.post(
        "/cases/{case_id}/reject",
        tags=["cases"],
        responses=refusals(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def reject(
        case_id: PathId, body: RejectBody, api: Api, caller: Reviewer, ctx: Command
    ) -> CaseView:
        await api.handlers.reject(case_id, caller, body.reason, body.note, ctx)
        return await case(case_id, api, caller)

    @app.get(
        "/cases/{case_id}/materials/{sha256}",
        tags=["cases"],
        response_class=Response,
        responses={
            200: {"content": {"image/jpeg": {}, "image/png": {}, "application/pdf": {}}},
            **refusals(401, 403, 404, 422, 503),
        },
    )
    async def material(
        case_id: PathId,
        sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
        api: Api,
        caller: Reviewer,
    ) -> Response:
        blob = await api.handlers.material(case_id, sha256, caller)
        headers = {
            "Content-Disposition": "inline",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",  # household pages stay off shared caches
        }
        return Response(blob.data, media_type=blob.content_type, headers=headers)

    @app.get(
        "/stats",
        tags=["operators"],
        responses=refusals(401, 403, 503),
    )
    async def stats(api: Api, _: Operator) -> StatsView:
        return stats_view(await api.views.stats(api.clock()))

    @app.get(
        "/policies",
        tags=["operators"],
        responses=refusals(401, 403, 503),
    )
    async def policies(api: Api, _: Operator) -> list[PolicyView]:
        book = await api.handlers.policy_book()
        return [policy_view(p) for _, p in sorted(book.policies.items())]

    @app.put(
        "/policies/{region}/{case_type}",
        tags=["operators"],
        responses=refusals(400, 401, 403, 409, 413, 422, 503),
    )
    async def set_policy(
        region: Annotated[str, Path(max_length=6, description="36, 3601, 360102, 360000 or *")],
        case_type: CaseType,
        body: PolicyBody,
        api: Api,
        caller: Operator,
        *,
        ctx: Command,
    ) -> PolicyView:
        """Applies to cases opened from now on; open cases keep the policy they opened under."""
        policy = await api.handlers.change_policy(
            region, case_type, body.mode, ctx, checks=tuple(body.checks), on_failure=body.on_failure
        )
        return policy_view(policy)


# Statuses other than 422 for the domain's refusals; a case outside the reviewer's regions
# reads as not found, so its existence does not leak.
def create_app(
    jwt_secret: str, open_api: Callable[[], AbstractAsyncContextManager[ReviewApi]]
) -> FastAPI:
    """The app; `open_api` builds the dependencies when it starts and closes them at the end."""

    app = service_app("review", jwt_secret, open_api, STATUS)
    _routes(app)
    mount_console(app)
    return app
