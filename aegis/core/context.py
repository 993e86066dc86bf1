"""Per-request context (client IP, request id) that services copy into audit rows.

Set by `aegis.core.middleware.RequestContextMiddleware`; empty for management commands.
A contextvar keeps it correct under threads and async alike.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    ip: str | None = None
    request_id: str = ""


_EMPTY = RequestContext()
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("aegis_request_context")


def current() -> RequestContext:
    return _current.get(_EMPTY)


def bind(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)
