"""A real browser for the back-office tests: Debian's chromium driven by Playwright.

Playwright's own browser download is not used; the tests launch the system chromium
(`CHROMIUM_PATH`, default /usr/bin/chromium). Without it they fail — never skip — and say
how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@pytest.fixture
def browser_context(live_server, monkeypatch):
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"chromium not found at {CHROMIUM}. The browser tests drive Debian's chromium: "
            "install it with `apt-get install chromium` (as root), or point CHROMIUM_PATH "
            "at a chromium binary.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # (setup and checks) are synchronous and safe, so let Django allow them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            viewport={"width": 1366, "height": 900}, accept_downloads=True, locale="en-US"
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            browser.close()
            # Inside Playwright's sync API the test runs in another context, where Django
            # opened its own database connections: close them, or the test database
            # cannot be dropped at the end of the run.
            connections.close_all()
