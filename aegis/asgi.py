"""The ASGI application gunicorn serves (gunicorn.conf.py: uvicorn workers).

- `POST /api/v1/licenses/validate`, the hot path: the common request answered on the event
  loop with asynchronous database connections (licensing/validate_asgi.py);
- every other request: Django's WSGI application (aegis.wsgi), run by a2wsgi in a pool of
  `GUNICORN_THREADS` threads per worker (default 4) — the same request objects,
  middleware, thread-local database connections and behaviour as under a threaded WSGI
  server. (Django's own ASGI handler was measured too and served the threaded views far
  slower: it hands every middleware hook between threads; docs/performance.md.)
- one access line per request (`AccessLog`).
"""

import logging
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")

from a2wsgi import WSGIMiddleware
from django.core.cache import caches

# Loads Django; in production, refuses to start without a usable signing key.
from aegis.wsgi import application as django_application
from licensing.validate_asgi import ValidateOnLoop

# Django keeps its caches in an asgiref Local that follows context variables: first looked
# up inside a request's task, the default cache (and its Redis client) was built anew for
# every request that counted a rate limit (measured: docs/performance.md).
# Looked up here, in the process's own context, it is the one every request task inherits.
caches["default"]

_access = logging.getLogger("gunicorn.access")


class AccessLog:
    """One `access` line per HTTP request, with the fields gunicorn's own workers log
    (aegis/gunicorn_logging.py): written to gunicorn's access log when it has one."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _access.handlers:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        answer = {"status": 500, "bytes": 0, "request_id": None}

        async def sending(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        answer["request_id"] = value.decode("latin1")
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            return await self.app(scope, receive, sending)
        finally:
            headers = dict(scope.get("headers", ()))
            client = scope.get("client")
            _access.info(
                "access",
                extra={
                    "remote_ip": client[0] if client else None,
                    "method": scope["method"],
                    "path": scope["path"],  # never the query string
                    "status": answer["status"],
                    "bytes": answer["bytes"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": answer["request_id"],
                    "user_agent": headers.get(b"user-agent", b"").decode("latin1") or None,
                },
            )


def _threads() -> int:
    value = os.environ.get("GUNICORN_THREADS", "").strip()
    return int(value) if value else 4


application = AccessLog(ValidateOnLoop(WSGIMiddleware(django_application, workers=_threads())))
