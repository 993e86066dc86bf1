"""A shorter middleware chain for the hot routes.

Every Django middleware runs on every request, whatever the route. The validate endpoint is
called thousands of times per second and uses neither sessions, users, CSRF, messages,
static files nor the replica, yet that middleware costs it a third of its CPU.

`HOT_PATH_SKIP_MIDDLEWARE` (settings) maps a path regex to the middleware its requests skip.
`HotPathMiddleware`, first in `MIDDLEWARE`, sends a request whose path matches through a
chain built from `MIDDLEWARE` minus those entries (same order, same classes, loaded once), and
every other request through the full chain. Middleware added to `MIDDLEWARE` later applies to
the hot routes too unless it is listed as skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponse

SELF = "aegis.hotpath.HotPathMiddleware"


class _ShortHandler(BaseHandler):
    """Django's request handling (middleware chain, view resolution, exception responses)
    with a given middleware list instead of settings.MIDDLEWARE."""

    def __init__(self, middleware: list[str]) -> None:
        super().__init__()
        full = settings.MIDDLEWARE
        # load_middleware() reads settings.MIDDLEWARE; it runs once, while the outer handler
        # loads its own middleware (start-up, one thread).
        settings.MIDDLEWARE = middleware
        try:
            self.load_middleware()
        finally:
            settings.MIDDLEWARE = full


def short_chain(skip: Iterable[str]) -> tuple[list[str], Callable[[HttpRequest], HttpResponse]]:
    """(middleware kept, the chain running them)."""
    skipped = set(skip) | {SELF}
    kept = [name for name in settings.MIDDLEWARE if name not in skipped]
    return kept, _ShortHandler(kept)._middleware_chain


class HotPathMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.routes = [
            (re.compile(pattern), short_chain(skip)[1])
            for pattern, skip in getattr(settings, "HOT_PATH_SKIP_MIDDLEWARE", {}).items()
        ]

    def __call__(self, request):
        path = request.path_info
        for pattern, chain in self.routes:
            if pattern.match(path):
                return chain(request)
        return self.get_response(request)


# --- Content-Security-Policy, built once ------------------------------------------------------

_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, with the policy of an ordinary response built once.

    django-csp builds the header on every response (a nonce or a view's own policy may change
    it): 14% of a validation's CPU, profiled. A response whose request never used its nonce
    and whose view set no policy of its own gets the same header every time, so it is built
    once per settings object; anything else is left to django-csp itself.
    """

    _built: tuple[tuple, tuple[str, str]] | None = None

    def _policies(self) -> tuple[str, str]:
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        built = self._built
        # The settings objects themselves, compared by identity (override_settings replaces
        # them); holding them keeps an old one's id from being reused by a new one.
        if built is None or built[0][0] is not policy or built[0][1] is not report_only:
            built = ((policy, report_only), (build_policy(), build_policy(report_only=True)))
            self._built = built
        return built[1]

    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(
            hasattr(response, name) for name in _PER_RESPONSE
        ):
            return super().process_response(request, response)
        if response.status_code in (500, 404) and settings.DEBUG:
            return response
        header, header_ro = self._policies()
        for value, name, exempt, setting in (
            (header, HEADER, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
            (
                header_ro,
                HEADER_REPORT_ONLY,
                "_csp_exempt_ro",
                "CONTENT_SECURITY_POLICY_REPORT_ONLY",
            ),
        ):
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
            if (
                value
                and name not in response
                and getattr(response, exempt, False) is False
                and not request.path_info.startswith(tuple(prefixes))
            ):
                response[name] = value
        # As django-csp: the nonce cannot be asked for once the header is written.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
