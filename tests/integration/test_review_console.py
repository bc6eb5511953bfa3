"""The reviewer console in a real headless Chromium (Debian's, driven by Playwright) against the
running platform: sign in with a reviewer token, find the case a material-based binding request
opened, read its materials, reject it with a reason, watch it leave the queue and the binding
request end rejected. Screenshots land in test-artifacts/."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Error, Page, async_playwright

from contracts.vocabulary import Relation
from services.demo.client import REVIEWER_REGION
from services.demo.scenario import Scenario
from services.demo.stack import Stack, drop_stack, running_stack
from services.runtime.auth import issue_token
from services.runtime.principal import Principal, Role
from services.runtime.settings import Settings
from tests.integration.test_binding_e2e import _schemas as e2e_schemas

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SECRET = Settings().jwt_secret.get_secret_value()
WAIT_S = 20.0  # how long the queue may take to follow a decision before the test gives up


@pytest.fixture(scope="module")
async def stack(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    tag = uuid4().hex[:10]
    schemas = e2e_schemas(f"console_{tag}")
    try:
        async with running_stack(
            database_url, kafka_bootstrap, namespace=f"console{tag}", schemas=schemas,
            face_latency_s=0.2,
        ) as running:  # fmt: skip
            yield running
    finally:
        await drop_stack(database_url, schemas)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium; a browser that cannot start fails the test with the reason."""
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        except Error as exc:
            pytest.fail(
                f"Chromium at {CHROMIUM} could not be started ({exc.message.splitlines()[0]});"
                " ./deploy/local/setup installs it",
                pytrace=False,
            )
        try:
            yield launched
        finally:
            await launched.close()


def token(subject: str, *regions: str) -> str:
    reviewer = Principal(subject, Role.REVIEWER, regions)
    return issue_token(reviewer, timedelta(hours=1), secret=SECRET)


async def sign_in(browser: Browser, console: str, bearer: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    await page.goto(f"{console}/queue")
    assert page.url.startswith(f"{console}/login")  # no session yet: the sign-in form
    await page.fill("#token", bearer)
    await page.click("form[action='/console/login'] button")
    await page.wait_for_url(f"{console}/queue")
    return context, page


async def material_binding(story: Scenario) -> str:
    """A holder in Nanchang asks to bind her father by ID number and submits the letter and
    both household pages: a real review case. Returns the request id."""
    await story.register(story.holder)
    await story.register(story.cast["father"])
    answer = await story.bind(story.form("father", Relation.PARENT))
    assert answer["status_code"] == 202, answer
    await story.provide_materials(answer["request_id"], "father")
    assert not story.failures, story.failures
    return str(answer["request_id"])


async def test_a_reviewer_rejects_a_binding_case_in_the_console_and_it_leaves_the_queue(
    stack: Stack, browser: Browser
) -> None:
    lines: list[str] = []
    story = Scenario(stack, SECRET, lines.append)
    console = f"{stack.urls['review']}/console"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        request_id = await material_binding(story)
        case_id = await story.case_in_queue(request_id)
        assert case_id is not None, "the request's case never reached the reviewer's queue"

        context, page = await sign_in(browser, console, token("rev-nc", REVIEWER_REGION))
        # The token lives in an HttpOnly, SameSite=Strict cookie: no script and no URL sees it.
        (session,) = [c for c in await context.cookies() if c["name"] == "qq_review_session"]
        assert session["httpOnly"] is True
        assert session["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""
        answer = await page.reload()
        assert answer is not None
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp  # no script may run at all

        row = page.locator(f"tr[data-case='{case_id}']")
        assert await row.count() == 1
        assert "亲情账户绑定" in await row.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "review-console-queue.png"), full_page=True)

        # Searching by ID number posts it: the URL never holds it, the page shows it masked.
        await page.fill("#id_number", story.id_numbers["holder"])
        await page.click("form[action='/console/search'] button")
        await page.wait_for_url(f"{console}/search")
        assert await page.locator(f"tr[data-case='{case_id}']").count() == 1
        assert story.id_numbers["holder"] not in await page.content()

        await page.locator(f"tr[data-case='{case_id}'] a.open").click()
        await page.wait_for_url(f"{console}/cases/{case_id}")
        assert await page.get_attribute("#status", "data-status") == "open"
        # The signature image is read through the console with the session cookie.
        signature = page.locator("figure img[alt='signature']")
        await signature.wait_for()
        assert await signature.evaluate("img => img.complete && img.naturalWidth > 0")
        assert await page.locator("figure a.pdf").count() == 3  # the letter, both household pages

        # A forged form (no session's CSRF token) changes nothing.
        forged = await page.request.post(
            f"{console}/cases/{case_id}/approve", form={"csrf": "forged", "key": "k"}
        )
        assert forged.status == 403
        assert "表单已失效" in await forged.text()

        await page.select_option("#reason", "relation_not_proven")
        await page.fill("#note", "户口本未显示父子关系")
        await page.click("form.reject button[type=submit]")
        await page.wait_for_url(f"{console}/cases/{case_id}?done=rejected")
        assert await page.get_attribute("#status", "data-status") == "rejected"
        assert "无法证明亲属关系" in await page.inner_text("#reason")
        assert "审核结果已提交" in await page.inner_text("#result")
        await page.screenshot(path=str(ARTIFACTS / "review-console-rejected.png"), full_page=True)

        assert await left_the_queue(page, console, case_id)
        view = await story.follow(request_id, "rejected")
        assert view["status"] == "rejected", view
        assert view["rejection_reason"] == "materials_rejected", view

        # A decided case offers no decision any more.
        await page.goto(f"{console}/cases/{case_id}")
        assert await page.locator("form.reject").count() == 0

        await page.click("header form button")
        await page.wait_for_url(f"{console}/login")
        assert not [c for c in await context.cookies() if c["name"] == "qq_review_session"]
        await page.goto(f"{console}/cases/{case_id}")
        assert page.url.startswith(f"{console}/login")
        await context.close()
    finally:
        await story.close()


async def test_a_reviewer_of_another_region_reads_the_case_as_not_found(
    stack: Stack, browser: Browser
) -> None:
    story = Scenario(stack, SECRET, [].append)
    console = f"{stack.urls['review']}/console"
    try:
        request_id = await material_binding(story)
        case_id = await story.case_in_queue(request_id)
        assert case_id is not None
        context, page = await sign_in(browser, console, token("rev-bj", "110000"))
        assert await page.locator(f"tr[data-case='{case_id}']").count() == 0
        answer = await page.goto(f"{console}/cases/{case_id}")
        assert answer is not None
        assert answer.status == 404
        text = await page.inner_text("main")
        assert "没有这个审核业务" in text
        assert "No such review case" in text
        assert "Traceback" not in await page.content()
        await context.close()
    finally:
        await story.close()


async def left_the_queue(page: Page, console: str, case_id: str) -> bool:
    """Reload the queue until the case is gone (its table follows the log within moments)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        await page.goto(f"{console}/queue")
        if await page.locator(f"tr[data-case='{case_id}']").count() == 0:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_sign_in_refuses_other_roles_expired_tokens_and_forged_forms(stack: Stack) -> None:
    console = f"{stack.urls['review']}/console"
    insured = issue_token(Principal("p_x", Role.INSURED), timedelta(hours=1), secret=SECRET)
    expired = issue_token(
        Principal("rev-old", Role.REVIEWER, (REVIEWER_REGION,)), timedelta(seconds=-60),
        secret=SECRET,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=console) as http:
        assert (await http.post("/login", data={"token": "t", "csrf": "x"})).status_code == 403
        form = await http.get("/login")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
        assert csrf is not None
        for bearer, status, message in (
            (insured, 403, "只有审核人员可以登录审核台"),
            (expired, 401, "登录凭证已过期"),
            ("not-a-token", 401, "登录凭证无效"),
        ):
            answer = await http.post("/login", data={"token": bearer, "csrf": csrf.group(1)})
            assert answer.status_code == status
            assert message in answer.text
            assert "qq_review_session" not in http.cookies
        # A session cookie made elsewhere still needs its form's token to act.
        http.cookies.set("qq_review_session", token("rev-nc", REVIEWER_REGION), path="/console")
        assert (await http.get("/queue")).status_code == 200
        refused = await http.post("/search", data={"csrf": "forged", "id_number": ""})
        assert refused.status_code == 403
        assert "The form has expired" in refused.text
