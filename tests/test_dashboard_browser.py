"""The dashboard in a real browser (Debian's chromium, headless) against the real server.

Every page: no console error, no failed request, its API calls counted against a budget,
a screenshot in tests/out/, no serious accessibility violation (axe-core), no horizontal
scroll at 360 px. Then the flows a user goes through.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from browser_support import LAUNCH_ARGS, Watched, axe_violations, chromium, ready
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from toombos_edge.app import create_app
from toombos_edge.settings import Settings

pytestmark = pytest.mark.timeout(180)
KEY_ITEM = "toombos_edge_key"

#: API calls each page may make to show itself (whoami, its reads, one WS token).
PAGE_BUDGETS = {
    "dashboard": 5, "jobs": 3, "history": 3, "documents": 4, "generate": 3,
    "content": 3, "cache": 4, "admin": 5,
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium()
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def edge(aiohttp_server: Callable[..., Awaitable[TestServer]],
               settings: Settings) -> TestServer:
    """The real app on a real port of 127.0.0.1, in this process (its bus and engine at hand)."""
    return await aiohttp_server(create_app(settings))


def base(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def admin_key(settings: Settings) -> str:
    return (settings.data_dir / "admin.key").read_text().strip()


async def signed_in(browser: Browser, key: str, **context: Any) -> tuple[BrowserContext, Page]:
    """A browser context whose storage already holds ``key`` (as after a sign-in)."""
    ctx = await browser.new_context(**context)
    await ctx.add_init_script(f"localStorage.setItem({KEY_ITEM!r}, {json.dumps(key)})")
    return ctx, await ctx.new_page()


async def test_key_prompt_then_dashboard(browser: Browser, edge: TestServer,
                                         settings: Settings) -> None:
    page = await (await browser.new_context()).new_page()
    watched = Watched(page, allowed_status={401}).attach()
    await page.goto(base(edge) + "/")
    await ready(page, "signin")
    await page.get_by_label("API key").fill("tbe_not_a_key")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_selector("#signin-error:not([hidden])")
    assert "refused" in await page.inner_text("#signin-error")
    watched.allowed_status.clear()  # from here on, nothing may fail
    await page.get_by_label("API key").fill(admin_key(settings))
    await page.get_by_role("button", name="Sign in").click()
    await ready(page, "dashboard")
    await page.wait_for_selector("#conn[data-state=live]")
    assert "admin" in await page.inner_text("#who")
    assert await page.locator("#nav-list a", has_text="Admin").count() == 1
    assert "healthy" in await page.inner_text("main")
    watched.clean()
    await watched.shot("signin-then-dashboard")


async def test_every_page_renders_calmly_and_accessibly(
    browser: Browser, edge: TestServer, settings: Settings
) -> None:
    _ctx, page = await signed_in(browser, admin_key(settings), viewport={"width": 1280,
                                                                        "height": 900})
    watched = Watched(page).attach()
    await page.goto(base(edge) + "/#/dashboard")
    await ready(page, "dashboard")
    for page_id, budget in PAGE_BUDGETS.items():
        before = len(watched.requests)
        await page.goto(f"{base(edge)}/#/{page_id}")
        await ready(page, page_id)
        await page.wait_for_selector("#conn[data-state=live]")
        calls = watched.api_calls(before)
        assert len(calls) <= budget, f"{page_id}: {len(calls)} API calls: {calls}"
        watched.clean()
        violations = await axe_violations(page)
        assert not violations, f"{page_id}: {violations}"
        await watched.shot(f"page-{page_id}")


async def test_360_px_has_no_horizontal_scroll_light_and_dark(
    browser: Browser, edge: TestServer, settings: Settings
) -> None:
    for scheme in ("light", "dark"):
        _ctx, page = await signed_in(browser, admin_key(settings), color_scheme=scheme,
                                     viewport={"width": 360, "height": 740})
        watched = Watched(page).attach()
        for page_id in PAGE_BUDGETS:
            await page.goto(f"{base(edge)}/#/{page_id}")
            await ready(page, page_id)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{page_id} ({scheme}) is {width} px wide"
            await watched.shot(f"narrow-{scheme}-{page_id}")
        watched.clean()
