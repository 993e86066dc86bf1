"""Request plumbing shared by every door that arrives over HTTP."""

from __future__ import annotations

import re
import uuid

from aegis.core import context

# An incoming X-Request-ID is kept only when it is short and plain, so it cannot inject into logs.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


def client_ip(request) -> str | None:
    """The peer address. Proxies are trusted only through the server's own configuration
    (gunicorn's forwarded_allow_ips / a reverse proxy rewriting REMOTE_ADDR), never from a
    client-supplied X-Forwarded-For header."""
    return request.META.get("REMOTE_ADDR") or None


def request_id(incoming: str) -> str:
    """The request id of a request: its own `X-Request-ID` when short and plain, else new."""
    return incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id(request.META.get("HTTP_X_REQUEST_ID", ""))
        token = context.bind(
            context.RequestContext(ip=client_ip(request), request_id=request.request_id)
        )
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response["X-Request-ID"] = request.request_id
        return response
