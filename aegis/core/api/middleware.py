"""The boundary of `/api`: bodies over the size limit are refused before anything reads
them, and whatever goes wrong below (an unexpected exception, a Django HTML error page)
leaves as the contract's JSON error body — never HTML, never a traceback (CONTRACT §6).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from aegis.core.api.exceptions import (
    CACHE_UNAVAILABLE,
    DATABASE_REFUSED,
    DATABASE_UNAVAILABLE,
    error_response,
    is_api_path,
    is_cache_outage,
)

logger = logging.getLogger("aegis.api")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Headers worth keeping when an HTML error page is replaced by the JSON body.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")


def _is_json(response) -> bool:
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type.endswith("/json") or content_type.endswith("+json")


class APIBoundaryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path_info):
            return self.get_response(request)
        refused = self._refuse_body(request)
        if refused is not None:
            return refused
        return self._as_json(self.get_response(request))

    def _refuse_body(self, request):
        limit = settings.API_MAX_BODY_BYTES
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            return error_response(400, "Invalid Content-Length header.", "bad_request")
        if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # A WSGI application never sees a chunked body: say so rather than read nothing.
            return error_response(411, "Send the body with a Content-Length header.", None)
        if length > limit:
            return error_response(
                413, f"The request body is larger than {limit} bytes.", "request_too_large"
            )
        if length and request.method in _BODY_METHODS:
            if not request.META.get("CONTENT_TYPE"):
                return error_response(
                    415, "Send the body as JSON (Content-Type: application/json).", None
                )
            # The server hands Django at most Content-Length bytes; the check on what was
            # actually read guards servers that would pass more.
            if len(request.body) > limit:
                return error_response(
                    413, f"The request body is larger than {limit} bytes.", "request_too_large"
                )
        return None

    def process_exception(self, request, exception):
        if not is_api_path(request.path_info):
            return None
        if isinstance(exception, OperationalError | InterfaceError):
            logger.error("database unavailable: %s", exception.__class__.__name__)
            return error_response(503, *DATABASE_UNAVAILABLE)
        if is_cache_outage(exception):
            logger.error("cache unavailable: %s", exception.__class__.__name__)
            return error_response(503, *CACHE_UNAVAILABLE)
        if isinstance(exception, DatabaseError):
            logger.error(
                "database error on %s %s", request.method, request.path, exc_info=exception
            )
            return error_response(503, *DATABASE_REFUSED)
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=exception)
        return error_response(500, "Internal server error.")

    def _as_json(self, response):
        """Replace an HTML (or other non-JSON) error page with the JSON error body."""
        if response.status_code < 400 or _is_json(response):
            return response
        try:
            phrase = HTTPStatus(response.status_code).phrase.capitalize()
        except ValueError:
            phrase = "Error"
        replacement = error_response(response.status_code, f"{phrase}.")
        for header in _KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement
