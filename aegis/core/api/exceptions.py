"""One error body for the whole API (CONTRACT §6): `{"detail", "code"}` plus `"errors":
{field: [messages]}` for field errors.

`exception_handler` is DRF's EXCEPTION_HANDLER: it maps DRF's exceptions, the services'
`DomainError`s, an unreachable database and a database that refuses a write (503). `handler404`/`handler500` (and the middleware)
give the same body to what never reaches a DRF view under `/api`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from aegis.core.exceptions import DomainError

logger = logging.getLogger("aegis.api")

DATABASE_UNAVAILABLE = ("The database is unavailable; try again shortly.", "database_unavailable")
# Any other database error: the database refused the statement (the audit row could not be
# written, a disk is full, a trigger raised). The transaction was rolled back, so nothing
# changed: fail closed, and let the client retry.
DATABASE_REFUSED = (
    "The request could not be completed and nothing was changed; try again shortly.",
    "service_unavailable",
)
# The shared cache behind the rate limits (Redis) is unreachable: refuse rather than serve
# unthrottled, as for the database.
CACHE_UNAVAILABLE = (
    "The rate-limit store is unavailable; try again shortly.",
    "service_unavailable",
)


def is_cache_outage(exc: BaseException) -> bool:
    """A connection to the cache (Redis through django-redis or Django's own backend) failed."""
    try:
        from django_redis.exceptions import ConnectionInterrupted
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - both are runtime dependencies
        return False
    return isinstance(exc, ConnectionInterrupted | RedisConnectionError | RedisTimeoutError)


# The code of an error body built from a bare status (middleware, handler404/500).
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "service_unavailable",
}


def error_body(detail: str, code: str, errors: Mapping[str, list[str]] | None = None) -> dict:
    body = {"detail": str(detail), "code": str(code)}
    if errors:
        body["errors"] = {str(k): [str(m) for m in v] for k, v in errors.items()}
    return body


def error_response(status_code: int, detail: str, code: str | None = None) -> JsonResponse:
    """A plain Django JSON error response, for code that runs outside DRF views."""
    return JsonResponse(
        error_body(detail, code or STATUS_CODES.get(status_code, "error")), status=status_code
    )


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → `{"field": [...], "nested.field": [...], "list.0": [...]}`."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in flatten_errors(value, name).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, list | tuple):
        for index, item in enumerate(detail):
            if isinstance(item, Mapping | list | tuple):
                for field, messages in flatten_errors(item, f"{prefix}.{index}").items():
                    out.setdefault(field, []).extend(messages)
            else:
                out.setdefault(prefix or "non_field_errors", []).append(str(item))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def _validation_response(exc: exceptions.ValidationError) -> Response:
    errors = flatten_errors(exc.detail)
    if set(errors) == {"non_field_errors"} and len(errors["non_field_errors"]) == 1:
        detail = errors["non_field_errors"][0]
    else:
        detail = "Invalid input."
    return Response(error_body(detail, "validation_error", errors), status=400)


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER. Returns None for anything unexpected: DRF re-raises it and
    `APIBoundaryMiddleware` answers a JSON 500 (and the error is logged)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.detail, exc.code, exc.errors), status=exc.status_code)

    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or the connection broke: the client may retry; no traceback.
        logger.error("database unavailable: %s", exc.__class__.__name__)
        set_rollback()
        return Response(error_body(*DATABASE_UNAVAILABLE), status=503)

    if is_cache_outage(exc):
        logger.error("cache unavailable: %s", exc.__class__.__name__)
        set_rollback()
        return Response(error_body(*CACHE_UNAVAILABLE), status=503)

    if isinstance(exc, DatabaseError):
        # Logged with its traceback (it may be a bug); the client sees no detail of it.
        logger.error("database error: %s", exc.__class__.__name__, exc_info=exc)
        set_rollback()
        return Response(error_body(*DATABASE_REFUSED), status=503)

    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        return _validation_response(exc)

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(math.ceil(exc.wait))
        detail = exc.detail
        if isinstance(detail, list | dict):  # only ValidationError carries structures
            detail = "; ".join(m for msgs in flatten_errors(detail).values() for m in msgs)
        code = exc.get_codes() if not isinstance(exc.detail, list | dict) else exc.default_code
        set_rollback()
        return Response(error_body(detail, code), status=exc.status_code, headers=headers)

    return None


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def handler404(request, exception=None):
    """Django's handler404: JSON under /api, Django's page elsewhere."""
    if is_api_path(request.path):
        return error_response(status.HTTP_404_NOT_FOUND, "Not found.")
    return defaults.page_not_found(request, exception)


def handler500(request):
    """Django's handler500: JSON under /api, Django's page elsewhere. Never a traceback."""
    if is_api_path(request.path):
        return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")
    return defaults.server_error(request)
