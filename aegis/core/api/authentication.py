"""Who is calling, as the API's plumbing sees it: an API key sent as `X-API-Key`, or a staff
member's Django session; the scope a request acts with, and the actor of its audit rows.

The key itself is looked up by `aegis.authentication.APIKeyAuthentication`, with the `aegis`
app's `APIKey` model (this base imports no app): settings name that class first in
DEFAULT_AUTHENTICATION_CLASSES. It sets `request.user` to an `APIKeyUser`, which is all the
rest of the API (permissions, throttles, logs, the apps' viewsets) looks at.

Guessing keys does not pay: wrong keys are counted per client address
(`THROTTLE_RATE_FAILED_API_KEY`, default 30/min, `FailedKeyGuard`), and an address over that
count gets 429 for any key until the window ends — before the database is asked.
Authentication runs before DRF's throttles, which therefore never see a wrong key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication

from aegis.core import actors
from aegis.core.api import ratelimit
from aegis.core.api.scopes import Scope
from aegis.core.middleware import client_ip

HEADER = "X-API-Key"


class InvalidAPIKey(exceptions.AuthenticationFailed):
    default_detail = "Invalid API key."
    default_code = "invalid_api_key"


class TooManyInvalidKeys(exceptions.Throttled):
    default_detail = "Too many invalid API keys from this address."


class FailedKeyGuard:
    """Counts wrong API keys per client address (REMOTE_ADDR only, like the throttles)."""

    def __init__(self, request) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.limit, self.period = ratelimit.parse_rate(settings.THROTTLE_RATE_FAILED_API_KEY)
        self.name = f"badkey:{client_ip(request) or 'unknown'}"

    def refuse_if_over(self) -> None:
        """429 when this address already sent too many wrong keys in this window."""
        if not self.enabled:
            return
        failures, remaining = ratelimit.count(self.name, self.period)
        if failures >= self.limit:
            raise TooManyInvalidKeys(wait=ratelimit.retry_after(remaining))

    def failed(self) -> InvalidAPIKey:
        if self.enabled:
            ratelimit.hit(self.name, self.period)
        return InvalidAPIKey()


class StoredAPIKey(Protocol):
    """What the API reads of a stored key (the `aegis` app's `APIKey` model)."""

    name: str
    prefix: str
    scope: str


@dataclass(frozen=True)
class APIKeyUser:
    """`request.user` for a request authenticated by an API key (there is no Django user)."""

    api_key: StoredAPIKey
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    @property
    def scope(self) -> str:
        return self.api_key.scope

    @property
    def username(self) -> str:
        return actors.for_api_key(self.api_key.name)

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class StaffSessionAuthentication(SessionAuthentication):
    """A logged-in, active staff member (the browsable API). CSRF is enforced as usual.

    A session of a non-staff user counts as no credentials at all.
    """

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result


def scope_of(request) -> str | None:
    """The scope a request acts with, or None when it is not authenticated.

    An API key has its own scope. A staff session acts as `admin` when the user is a
    superuser and as `readonly` otherwise: finer rights belong to the back-office, where
    Django's per-model permissions apply.
    """
    user = request.user
    if isinstance(user, APIKeyUser):
        return user.scope
    if getattr(user, "is_authenticated", False) and user.is_staff:
        return Scope.ADMIN if user.is_superuser else Scope.READONLY
    return None


def actor_of(request) -> str:
    """The `actor` of the audit rows a request writes: `api_key:<name>` or `user:<username>`."""
    user = request.user
    if isinstance(user, APIKeyUser):
        return user.username
    if getattr(user, "is_authenticated", False):
        return actors.for_user(user.get_username())
    return "public"
