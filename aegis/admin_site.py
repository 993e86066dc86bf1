"""The back-office's AdminSite: AEGIS branding, the dashboard on the index page, and a
limit on failed staff logins per client address."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import admin
from django.template.response import TemplateResponse

from aegis.core.api import ratelimit
from aegis.core.api.exceptions import is_cache_outage
from aegis.core.middleware import client_ip

SITE_NAME = "AEGIS License Server"
logger = logging.getLogger("aegis.admin")


class FailedLoginGuard:
    """Failed staff logins counted per client address (`THROTTLE_RATE_FAILED_LOGIN`,
    default 10/min, in the shared cache like the API's limits). An address over the limit
    is refused with 429 before its credentials are checked — the right password included —
    until the window ends; other addresses are unaffected."""

    def __init__(self, request) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.limit, self.period = ratelimit.parse_rate(settings.THROTTLE_RATE_FAILED_LOGIN)
        self.name = f"badlogin:{client_ip(request) or 'unknown'}"

    def wait(self) -> int | None:
        """Seconds until this address may try again, or None when it may now."""
        if not self.enabled:
            return None
        failures, remaining = ratelimit.count(self.name, self.period)
        return ratelimit.retry_after(remaining) if failures >= self.limit else None

    def failed(self) -> None:
        if self.enabled:
            ratelimit.hit(self.name, self.period)


class AegisAdminSite(admin.AdminSite):
    site_header = SITE_NAME
    site_title = SITE_NAME
    index_title = "Back-office"
    # The lists are wide (licenses, audit log); breadcrumbs and the dashboard navigate.
    enable_nav_sidebar = False

    def login(self, request, extra_context=None):
        if request.method != "POST":
            return super().login(request, extra_context)
        guard = FailedLoginGuard(request)
        try:
            wait = guard.wait()
        except Exception as exc:
            if not is_cache_outage(exc):
                raise
            # The limit cannot be enforced: refuse, as the API does (fail closed).
            logger.error("staff login refused: cache unavailable")
            return self._refused(request, status=503, wait=30, reason="unavailable")
        if wait is not None:
            logger.warning("staff login refused: too many failures from %s", guard.name[9:])
            return self._refused(request, status=429, wait=wait, reason="throttled")
        response = super().login(request, extra_context)
        if not request.user.is_authenticated:  # the form was shown again: a failed attempt
            guard.failed()
        return response

    def _refused(self, request, *, status: int, wait: int, reason: str) -> TemplateResponse:
        context = self.each_context(request) | {"title": "Sign-in refused", "wait": wait}
        context["reason"] = reason
        response = TemplateResponse(request, "admin/login_throttled.html", context, status=status)
        response["Retry-After"] = str(wait)
        return response

    def index(self, request, extra_context=None):
        from aegis.dashboard import dashboard_context  # models are ready by the first request

        return super().index(
            request, extra_context=dashboard_context(request) | (extra_context or {})
        )
