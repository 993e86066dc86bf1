"""Rate limits: per client IP for anonymous requests, per API key (or staff user) otherwise.

This class is DRF's DEFAULT_THROTTLE_CLASSES, so any API view — including views other apps
add — is limited without extra code. Public views (validate, fingerprint, health) have no
authentication classes, so the client IP is the identity and the check runs before any
database work.

A fixed window counter in Django's default cache (`CACHE_URL`: Redis in production, shared by
every worker and instance): two O(1) cache operations per request, where DRF's sliding-window
throttles load and store the whole request history on every call.
"""

from __future__ import annotations

import functools
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import BaseThrottle

from aegis.api.authentication import APIKeyUser
from aegis.middleware import client_ip

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.cache
def parse_rate(rate: str) -> tuple[int, int]:
    """`"600/min"` → (600, 60). Periods: s[econd], m[in[ute]], h[our], d[ay]."""
    try:
        count, _, period = rate.partition("/")
        return int(count), _PERIODS[period.strip()[:1].lower()]
    except (KeyError, ValueError):
        raise ImproperlyConfigured(
            f"Invalid throttle rate {rate!r}: use <count>/<second|minute|hour|day>, e.g. 600/min"
        ) from None


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
        now = time.time()
        window = int(now // period)
        key = f"throttle:{kind}:{ident}:{period}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # the counter expired between add() and incr()
            cache.add(key, 1, timeout=period + 1)
            count = 1
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self) -> float:
        # Seconds until the window resets; at least one, so Retry-After is never 0.
        return max(1, math.ceil(self._wait))
