"""Driving the dashboard in Debian's chromium (never a downloaded browser) with Playwright.

`chromium()` installs the distribution's package with apt-get when it is missing, as the
project's own test set-up; `Watched` keeps what a page did: console errors, failed requests,
every request it made, and a screenshot under tests/out/.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Page, Request, Response

CHROMIUM = "/usr/bin/chromium"
OUT = Path(__file__).parent / "out"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
LAUNCH_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


def chromium() -> str:
    """The path of Debian's chromium, installed with apt-get on first need."""
    if not Path(CHROMIUM).exists():
        apt = shutil.which("apt-get")
        assert apt, "no /usr/bin/chromium and no apt-get to install it"
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run([apt, "update", "-qq"], check=True, env=env)
        subprocess.run([apt, "install", "-y", "-qq", "chromium"], check=True, env=env)
    assert Path(CHROMIUM).exists(), "apt-get did not install /usr/bin/chromium"
    return CHROMIUM


def is_api(url: str) -> bool:
    """A call the page made to the server's API (not its own files)."""
    path = urlsplit(url).path
    return path != "/" and not path.startswith("/static/")


@dataclass
class Watched:
    """Everything a page did, for the assertions every page test makes."""

    page: Page
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed_status: set[int] = field(default_factory=set)

    def attach(self) -> Watched:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        return self

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and not self._allowed_console(msg.text):
            self.errors.append(msg.text)

    def _allowed_console(self, text: str) -> bool:
        # Chromium logs every non-2xx answer to the console too; a status the test expects
        # (a refused key) is not an error of the page.
        if 401 in self.allowed_status and "HTTP Authentication failed" in text:
            return True  # a WebSocket upgrade refused with 401, as chromium words it
        return any(f"status of {status}" in text for status in self.allowed_status)

    def _request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure and request.resource_type in {"fetch", "xhr", "document"}:
            return  # a navigation or a page change cancelled it; nothing went wrong
        self.failed.append(f"{request.method} {request.url}: {failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.status not in self.allowed_status:
            self.failed.append(f"{response.request.method} {response.url}: {response.status}")

    def api_calls(self, since: int = 0) -> list[str]:
        return [r for r in self.requests[since:] if is_api(r.split(" ", 1)[1])]

    def clean(self) -> None:
        assert not self.errors, f"console errors: {self.errors}"
        assert not self.failed, f"failed requests: {self.failed}"

    async def shot(self, name: str) -> Path:
        OUT.mkdir(exist_ok=True)
        path = OUT / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


async def ready(page: Page, page_id: str, within_ms: float = 10_000) -> None:
    """Until the shell says the page has rendered its first data."""
    await page.wait_for_function(
        "id => document.documentElement.dataset.ready === id", arg=page_id, timeout=within_ms
    )


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is."""
    # Evaluated over the DevTools protocol: the page's CSP rightly refuses inline scripts.
    await page.evaluate(AXE.read_text() + "\n;undefined")
    result = await page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => ({id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return list(result)
