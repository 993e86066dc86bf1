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
