"""`POST /api/v1/licenses/validate` on the event loop: the production transport of the hot path.

aegis.asgi serves Django through a2wsgi (a thread per request); this ASGI middleware in
front of it answers the common validation on the worker's event loop, where a small pool of
asynchronous psycopg connections (`VALIDATE_DB_POOL_SIZE`, opened at the first validation)
lets one thread serve many validations at once. It adapts the transport only:

- it takes a request only when the DRF action would answer it 200: POST to the exact path,
  a JSON body the action's parser and serializer accept as is, JSON answered, no query
  string, no `Origin` (CORS is Django's), a Host Django allows and HTTPS where Django would
  redirect (Django's own `get_host` / `is_secure`), within the action's throttles, once
  Django has answered such a request itself. Every other request goes to Django unchanged;
- the answer is the service's (licensing/validation.py, the rules of licensing/rules.py),
  rendered by the action's renderer, with the headers of Django's last such answer (so every
  middleware's header is there, none written here) and its own X-Request-ID;
- batches: at most `VALIDATE_DB_POOL_SIZE` statements per worker are in flight; validations
  arriving meanwhile wait for the next one, which records them all in one statement; the
  throttle counts of validations waiting together go to Redis in one round trip;
- a database or cache error sends the request to Django, which answers it as on any route.

Access lines come from aegis.asgi; `aegis_validations_total` counts every validation.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.signals import setting_changed
from django.db import connections, router
from psycopg import OperationalError
from psycopg.pq import ConnStatus
from rest_framework.renderers import JSONRenderer

from aegis.core import context, metrics
from aegis.core.api import ratelimit
from aegis.core.api.parsers import StrictJSONParser
from aegis.core.middleware import client_ip, request_id
from audit import services as audit_services
from audit.models import AuditLog
from licensing import rules, validation
from licensing.api import LicenseViewSet
from licensing.api_answers import ValidateRequestSerializer, outcome_body

PATH = "/api/v1/licenses/validate"
ACCEPTS = frozenset({b"", b"*/*", b"application/json"})
# Redis round trips in flight per worker: a second keeps the loop from waiting on one reply.
THROTTLE_BATCHES = 2
# The action's request serializer, parser and renderer, built once.
REQUEST, PARSER, RENDERER = ValidateRequestSerializer(), StrictJSONParser(), JSONRenderer()


def on_postgresql() -> bool:
    """The pool speaks to PostgreSQL only: elsewhere (SQLite) every validation is Django's."""
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


async def closed_by_peer(connection) -> None:
    """The pool's check before lending a connection: raise if the server (a restart, a
    failover, a proxy's idle timeout) closed it while idle, from what already arrived on the
    socket — no round trip."""
    connection.pgconn.consume_input()  # the server's last words (FATAL), if any
    connection.pgconn.consume_input()  # then the end of the stream raises
    if connection.pgconn.status != ConnStatus.OK:
        raise OperationalError("the connection is closed")


class Batches:
    """`submit(item)` resolves with the result of `run(items)` for the batch the item went
    in. At most `limit()` batches run at once; an item submitted while they all run waits
    for the next one, which takes everything waiting by then. An exception fails the batch."""

    def __init__(self, run: Callable[[list], Awaitable[list]], limit: Callable[[], int]):
        self._run, self._limit = run, limit
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._running = 0
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._running < self._limit():
            self._running += 1
            task = asyncio.ensure_future(self._drain())
            self._tasks.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._run([item for item, _ in batch])
                    outcomes = [
                        (future, result, None)
                        for (_, future), result in zip(batch, results, strict=True)
                    ]
                except asyncio.CancelledError:  # the worker is stopping: nobody waits forever
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    outcomes = [(future, None, exc) for _, future in batch]
                for future, result, exc in outcomes:
                    if not future.done():
                        future.set_exception(exc) if exc else future.set_result(result)
        finally:
            self._running -= 1


class Database:
    """The pool of asynchronous connections to the primary, opened on first use."""

    def __init__(self) -> None:
        self.pool = None
        self.alias = router.db_for_write(AuditLog)
        self.wrapper = connections.create_connection(self.alias)  # prepares values, never used
        self._opening = asyncio.Lock()
        self.batches = Batches(self._record, lambda: settings.VALIDATE_DB_POOL_SIZE)

    async def open(self) -> None:
        async with self._opening:
            if self.pool is None:
                from psycopg_pool import AsyncConnectionPool

                params = self.wrapper.get_connection_params()
                params.pop("cursor_factory", None)  # Django's synchronous cursor class
                # These connections run the validation statement alone, whose one plan
                # (primary-key lookups of the batch's ids) is right for every batch: a
                # generic plan, not PostgreSQL re-planning it per batch (docs/performance.md).
                options = f"{params.get('options', '')} -c plan_cache_mode=force_generic_plan"
                params["options"] = options.strip()
                pool = AsyncConnectionPool(
                    kwargs={**params, "autocommit": True},
                    check=closed_by_peer,
                    min_size=1,
                    max_size=settings.VALIDATE_DB_POOL_SIZE,
                    timeout=settings.VALIDATE_DB_POOL_TIMEOUT,
                    name="aegis-validate",
                    open=False,
                )
                await pool.open()
                self.pool = pool

    async def _record(self, rows: list[list[Any]]) -> list[str]:
        async with self.pool.connection() as connection:
            return await audit_services.arecord_validations(
                connection, self.alias, rules.decision(self.alias), rows
            )

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()


class Throttle:
    """The action's throttles, counted for the validations waiting together in one Redis
    round trip: the keys, windows and limits of each throttle's own `identify`."""

    def __init__(self) -> None:
        self.batches = Batches(self._count, lambda: THROTTLE_BATCHES)

    async def allows(self, request) -> bool:
        if not settings.RATE_LIMIT_ENABLED:
            return True
        throttles = [throttle() for throttle in LicenseViewSet.throttle_classes]
        if ratelimit.async_client() is None:  # not Redis (local memory): no I/O to wait for
            return all(throttle.allow_request(request, None) for throttle in throttles)
        plan = []
        for throttle in throttles:
            kind, ident, rate = throttle.identify(request)
            limit, period = ratelimit.parse_rate(rate)
            plan.append((ratelimit.stored_key(f"{kind}:{ident}", period), period, limit))
        counts = await self.batches.submit([(key, period) for key, period, _ in plan])
        return all(n <= limit for n, (_, _, limit) in zip(counts, plan, strict=True))

    async def _count(self, items: list[list[tuple[str, int]]]) -> list[list[int]]:
        counts = await ratelimit.hit_many(
            ratelimit.async_client(), [k for keys in items for k in keys]
        )
        result = []
        for keys in items:
            result.append(counts[: len(keys)])
            counts = counts[len(keys) :]
        return result


class ValidateOnLoop:
    """ASGI middleware: the common validate request answered here, the rest by `app`."""

    def __init__(self, app) -> None:
        self.app = app
        self.database: Database | None = None
        self.throttle = Throttle()
        self.headers: dict[bool, list[tuple[bytes, bytes]]] = {}  # per scheme (secure?)
        setting_changed.connect(lambda **kwargs: self.headers.clear(), weak=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not _length_allowed(scope)
        ):
            return await self.app(scope, receive, send)
        body = await _body(receive)
        receive = _replaying(body, receive)
        request = ASGIRequest(scope, io.BytesIO(body))
        secure = request.is_secure()
        fields = self._fields(request, body) if secure in self.headers else None
        try:
            if fields is None or not await self.throttle.allows(request):
                return await self._django(scope, receive, send, secure)
            rid = request_id(request.META.get("HTTP_X_REQUEST_ID", ""))
            token = context.bind(context.RequestContext(ip=client_ip(request), request_id=rid))
            try:
                pending = validation.begin(**fields)
                database = await self._database()
                row = validation.audit_row(pending, database.alias, database.wrapper)
            finally:
                context.reset(token)
            code = await database.batches.submit(row)
        except Exception:  # the database or the cache: Django answers, as on any route
            return await self._django(scope, receive, send, secure)
        metrics.validation_counted(code)
        content = RENDERER.render(outcome_body(validation.finish(pending, code)))
        length = str(len(content)).encode()
        headers = [
            *self.headers[secure],
            (b"x-request-id", rid.encode()),
            (b"content-length", length),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        return None

    def _fields(self, request, body: bytes) -> dict[str, Any] | None:
        """The serializer's data when the action would answer this request 200, else None."""
        meta = request.META
        if (
            not on_postgresql()
            or request.content_type != "application/json"
            or meta.get("HTTP_ACCEPT", "").encode() not in ACCEPTS
            or meta.get("QUERY_STRING")
            or "HTTP_ORIGIN" in meta
            or (settings.SECURE_SSL_REDIRECT and not request.is_secure())
        ):
            return None
        try:
            request.get_host()  # DisallowedHost: Django answers 400
            # Built once: the serializer's checks without a copy of its fields per request.
            return REQUEST.run_validation(PARSER.parse(io.BytesIO(body)))
        except Exception:  # ParseError, ValidationError, DisallowedHost
            return None

    async def _database(self) -> Database:
        if self.database is None:
            self.database = Database()
        if self.database.pool is None:
            await self.database.open()
        return self.database

    async def _django(self, scope, receive, send, secure: bool):
        """Django answers; its 200 JSON answer gives the headers of the answers given here."""

        async def learn(message):
            if message["type"] == "http.response.start" and message["status"] == 200:
                kept = [(k, v) for k, v in message["headers"] if k.lower() not in _OWN]
                if (b"content-type", b"application/json") in kept:
                    self.headers[secure] = kept
            await send(message)

        return await self.app(scope, receive, learn)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.database is not None:
                    await self.database.close()
                await ratelimit.close_async_client()
                await send({"type": "lifespan.shutdown.complete"})
                return


# Headers of one answer alone.
_OWN = frozenset({b"x-request-id", b"content-length", b"date", b"set-cookie"})


def _length_allowed(scope) -> bool:
    """A body of a declared length within the API's limit (anything else is Django's)."""
    lengths = [
        v for k, v in scope["headers"] if k.lower() in (b"content-length", b"transfer-encoding")
    ]
    return (
        len(lengths) == 1
        and lengths[0].isdigit()
        and 0 < int(lengths[0]) <= settings.API_MAX_BODY_BYTES
    )


async def _body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replaying(body: bytes, receive):
    """A `receive` that gives the body read here once more, then the client's messages."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
