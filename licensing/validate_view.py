"""`POST /api/v1/licenses/validate`, the hot path, without DRF's per-request machinery.

The documented endpoint is `LicenseViewSet.validate` (licensing/api.py): its serializer,
parser, throttle and error handler define what the route accepts and answers. This view
answers the common request — a JSON object whose fields that action would accept as they
are — with the same service, the same throttle and byte-for-byte the same body and headers,
for a fraction of the CPU (no content negotiation, no serializer field copies). Anything
else (another method, another media type or Accept, a query string, a body that is not a
JSON object of well-typed fields, a throttled client) is handed to the action itself, so
every 4xx keeps its one implementation.
"""

from __future__ import annotations

import functools
import io
from types import SimpleNamespace
from typing import Any

from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ParseError
from rest_framework.renderers import JSONRenderer

from aegis.api import ratelimit
from aegis.api.exceptions import exception_handler
from aegis.api.parsers import StrictJSONParser
from aegis.api.throttles import ClientRateThrottle
from licensing.api import LicenseViewSet, outcome_body
from licensing.validation import license_validate


@functools.cache
def action_view():
    """The action as the router mounts it: the one implementation of every refusal."""
    from aegis.api.urls import router

    return next(p.callback for p in router.urls if p.name == "license-validate")


# Fields of ValidateRequestSerializer: name → (required, trimmed, max length, null allowed).
# Only these shapes are served here; whatever the serializer would reject or reshape
# differently goes to the action.
_REQUIRED = (("token", False, None), ("module_name", True, 128), ("odoo_version", True, 32))
_OPTIONAL = (("fingerprint", 128), ("instance_db_uuid", 255), ("instance_domain", 2048))
# Accept headers answered with JSON as is (anything else goes to content negotiation).
ACCEPTS = frozenset({"", "*/*", "application/json"})
# Set by licensing.validate_wsgi on a request whose validation raised there.
FAILED = "aegis.validate.failed"

_parser = StrictJSONParser()
_renderer = JSONRenderer()


def clean(data: Any) -> dict[str, Any] | None:
    """The serializer's `validated_data` for a body it accepts as is, or None (let the
    action decide). Strings went through the strict parser: no NUL, no lone surrogate."""
    if not isinstance(data, dict):
        return None
    out: dict[str, Any] = {}
    for name, trimmed, max_length in _REQUIRED:
        value = data.get(name)
        # The length limit counts what was sent, before any trimming (StrictCharField).
        if not isinstance(value, str) or (max_length is not None and len(value) > max_length):
            return None
        if trimmed:
            value = value.strip()
        if not value:
            return None
        out[name] = value
    for name, max_length in _OPTIONAL:
        if name in data:
            value = data[name]
            if value is not None and (not isinstance(value, str) or len(value) > max_length):
                return None
            out[name] = value
    return out


def parse(body: bytes) -> Any:
    """The body as the action's parser reads it (ParseError when it would refuse it)."""
    return _parser.parse(io.BytesIO(body))


def fields_of(body: bytes) -> dict[str, Any] | None:
    """`clean(parse(body))`, or None when the parser would refuse the body."""
    try:
        return clean(parse(body))
    except ParseError:
        return None


def render(data: Any) -> bytes:
    """The bytes the action's renderer writes."""
    return _renderer.render(data)


def _render(data: Any, status: int = 200) -> HttpResponse:
    response = HttpResponse(render(data), status=status, content_type="application/json")
    # What DRF adds to every response of the action.
    response["Allow"] = "POST, OPTIONS"
    patch_vary_headers(response, ("Accept",))
    return response


def allowed(meta) -> bool:
    """The action's throttles, asked as the action asks them: no authentication on this
    route, so the client is its address."""
    caller = SimpleNamespace(user=None, META=meta)
    return all(
        throttle().allow_request(caller, None) for throttle in LicenseViewSet.throttle_classes
    )


def throttle_plan(meta) -> list[tuple[str, int, int]] | None:
    """What `allowed` would count, without counting it: (Redis key, period, limit) per
    throttle of the action, for counting many validations in one round trip from the event
    loop (licensing/validate_asgi.py). None when that cannot be done: a throttle that does
    not count through `ratelimit.hit`."""
    caller = SimpleNamespace(user=None, META=meta)
    plan = []
    for throttle_class in LicenseViewSet.throttle_classes:
        throttle = throttle_class()
        if not isinstance(throttle, ClientRateThrottle):
            return None
        kind, ident, rate = throttle.identify(caller)
        limit, period = ratelimit.parse_rate(rate)
        plan.append((ratelimit.stored_key(f"{kind}:{ident}", period), period, limit))
    return plan


@csrf_exempt
def validate(request):
    meta = request.META
    if (
        request.method != "POST"
        or request.content_type != "application/json"
        or meta.get("HTTP_ACCEPT", "") not in ACCEPTS
        or meta.get("QUERY_STRING")
    ):
        return action_view()(request)
    # Set by a fast path whose validation raised (WSGI: in the environ; ASGI, through
    # a2wsgi: in the scope): that request was already counted against the throttle.
    failed = meta.get(FAILED) or meta.get("asgi.scope", {}).get(FAILED)
    fields = fields_of(request.body)
    # Throttled clients are refused by the action (429 with Retry-After, no database work).
    if fields is None or (failed is None and not allowed(meta)):
        return action_view()(request)
    try:
        if failed is not None:
            raise failed  # the service already ran, and raised, in front of Django
        outcome = license_validate(**fields)
    except Exception as exc:
        # The action's error handler decides (503 for the database); None: a bug, re-raised
        # for the API boundary to answer 500 and log.
        handled = exception_handler(exc, {"request": request})
        if handled is None:
            raise
        return _render(handled.data, handled.status_code)
    return _render(outcome_body(outcome))
