"""Swagger UI and ReDoc render in a real browser under the Content-Security-Policy, with
every asset served by the server itself: no CSP violation, no failed request, no request
to another origin."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import browser_context  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch(page, origin: str) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # A CSP violation is reported on the console as an error ("Refused to ...").
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    page.on(
        "request",
        lambda r: (
            not r.url.startswith((origin, "data:", "blob:"))
            and problems.append(f"third-party request {r.url}")
        ),
    )
    return problems


def test_swagger_ui_renders_under_the_policy(live_server, browser_context):  # noqa: F811
    page = browser_context.new_page()
    problems = watch(page, live_server.url)
    response = page.goto(f"{live_server.url}/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AEGIS License Server API")
    # The operations are listed from the schema, i.e. the start-up script ran.
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/v1/licenses/validate").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    assert problems == [], "\n".join(problems)


# ReDoc's bundle always shows the Redocly logo from its CDN; the policy blocks it (ReDoc
# then hides the image), so nothing leaves the browser. Nothing else may be blocked.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_redoc_renders_under_the_policy(live_server, browser_context):  # noqa: F811
    page = browser_context.new_page()
    problems = watch(page, live_server.url)
    page.goto(f"{live_server.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("AEGIS License Server API")
    expect(page.get_by_text("/api/v1/licenses/validate").first).to_be_attached()
    blocked_logo = [p for p in problems if REDOC_LOGO in p]
    assert blocked_logo and all("third-party" in p or "blocked" in p for p in blocked_logo)
    others = [p for p in problems if REDOC_LOGO not in p]
    assert others == [], "\n".join(others)
    assert "fonts.googleapis.com" not in page.content()
