"""OpenAPI (drf-spectacular): the staff session's security scheme and the documented error
responses. The API key's scheme is declared beside its authentication class
(`aegis.authentication`)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from aegis.core.api.serializers import ErrorSerializer


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "aegis.core.api.authentication.StaffSessionAuthentication"
    name = "StaffSession"
    priority = 1

    def get_security_definition(self, auto_schema):
        from django.conf import settings

        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "A staff member's back-office session (the browsable API).",
        }


_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, wrong types or a broken rule (`errors` names the fields).",
    401: "No API key (`not_authenticated`), or an unknown, revoked or expired one (`invalid_api_key`).",
    403: "The key's scope does not allow this request (`permission_denied`).",
    404: "No such resource (`not_found`, `license_not_found`, `customer_not_found`).",
    405: "Method not allowed on this path.",
    409: "Conflicts with the current state (see `code`).",
    411: "A chunked body without Content-Length (`length_required`).",
    413: "The request body is larger than 64 KiB.",
    415: "The body is not `application/json`.",
    429: "Too many requests; retry after the `Retry-After` header's seconds.",
    503: "The database (or, to issue, the signing key) is unavailable.",
}


def errors(*statuses: int, **overrides: str) -> dict[int, OpenApiResponse]:
    """Documented error responses, all with the one error body. `overrides` maps
    `e409="…"` to a more specific description."""
    return {
        status: OpenApiResponse(
            ErrorSerializer, description=overrides.get(f"e{status}", _DESCRIPTIONS[status])
        )
        for status in statuses
    }


# Every request with a body, and every request at all, can meet these.
BODY_ERRORS = (400, 411, 413, 415)
PROTECTED = (401, 403, 429, 503)
PUBLIC = (429, 503)


def strip_optional_slash(endpoints):
    """Routes accept an optional trailing slash (`…/?$`); document the contract's form,
    without it."""
    return [
        (
            path.rstrip("/") if path_regex.endswith("/?$") else path,
            path_regex,
            method,
            callback,
        )
        for path, path_regex, method, callback in endpoints
    ]
