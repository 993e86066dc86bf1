"""Rate limits: per client IP for anonymous requests, per API key (or staff user) otherwise.

This class is DRF's DEFAULT_THROTTLE_CLASSES, so any API view — including views other apps
add — is limited without extra code. Public views (validate, fingerprint, health) have no
authentication classes, so the client IP is the identity and the check runs before any
database work.

A fixed window counter in Django's default cache (`aegis.core.api.ratelimit`; `CACHE_URL`: Redis
in production, shared by every worker and instance): two O(1) cache operations per request,
where DRF's sliding-window throttles load and store the whole request history on every call.
Wrong API keys are limited before this throttle runs, by the authentication class.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from aegis.core.api import ratelimit
from aegis.core.api.authentication import APIKeyUser
from aegis.core.api.ratelimit import parse_rate
from aegis.core.middleware import client_ip

__all__ = ["ClientRateThrottle", "parse_rate"]


class ClientRateThrottle(BaseThrottle):
    def identify(self, request) -> tuple[str, str, str]:
        """(kind, identity, rate) of the caller."""
        user = getattr(request, "user", None)
        if isinstance(user, APIKeyUser):
            return "key", user.api_key.prefix, settings.THROTTLE_RATE_API_KEY
        if user is not None and user.is_authenticated:
            return "user", str(user.pk), settings.THROTTLE_RATE_API_KEY
        # REMOTE_ADDR only: X-Forwarded-For is written by the client and proves nothing.
        return "ip", client_ip(request) or "unknown", settings.THROTTLE_RATE_PUBLIC

    def allow_request(self, request, view) -> bool:
        if not settings.RATE_LIMIT_ENABLED:
            return True
        kind, ident, rate = self.identify(request)
        limit, period = parse_rate(rate)
        count, self._wait = ratelimit.hit(f"{kind}:{ident}", period)
        return count <= limit

    def wait(self) -> float:
        # Seconds until the window resets; at least one, so Retry-After is never 0.
        return ratelimit.retry_after(self._wait)
