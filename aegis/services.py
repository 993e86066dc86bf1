"""API key writes, each with its audit row in the same transaction."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from aegis.core.api.scopes import Scope
from aegis.core.exceptions import Conflict, NotFound, ValidationFailed
from aegis.models import APIKey
from audit.services import audit_record


class APIKeyNotFound(NotFound):
    code = "api_key_not_found"
    default_detail = "API key not found."


class APIKeyAlreadyRevoked(Conflict):
    code = "already_revoked"
    default_detail = "The API key is already revoked."


@transaction.atomic
def api_key_create(*, actor: str, name: str, scope: str) -> tuple[APIKey, str]:
    """Create a key and audit `api_key.created`. Returns (key row, raw key).

    The raw key exists only in the return value: it is shown once and stored as a hash.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 50:
        raise ValidationFailed.field("name", "Give a name of 1 to 50 characters.")
    if scope not in Scope.values:
        raise ValidationFailed.field("scope", f"Must be one of {', '.join(Scope.values)}.")
    api_key, raw = APIKey.objects.create_key(name=name, scope=scope)
    audit_record(
        event_type="api_key.created",
        actor=actor,
        event_data={"name": name, "scope": scope, "prefix": api_key.prefix},
    )
    return api_key, raw


@transaction.atomic
def api_key_revoke(*, actor: str, prefix: str) -> APIKey:
    """Revoke the key with this prefix and audit `api_key.revoked`."""
    api_key = APIKey.objects.select_for_update().filter(prefix=prefix).first()
    if api_key is None:
        raise APIKeyNotFound(f"No API key with prefix {prefix}.")
    if api_key.revoked:
        raise APIKeyAlreadyRevoked()
    api_key.revoked = True
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked", "revoked_at"])
    audit_record(
        event_type="api_key.revoked",
        actor=actor,
        event_data={"name": api_key.name, "scope": api_key.scope, "prefix": api_key.prefix},
    )
    return api_key


# `last_used_at` is refreshed at most this often: a busy key costs one UPDATE a minute,
# not one per request.
LAST_USED_RESOLUTION_SECONDS = 60


def api_key_mark_used(*, api_key: APIKey, now=None) -> None:
    """Record that `api_key` authenticated a request (usage bookkeeping, not a state change,
    so no audit row). Skips the write when the stored time is recent enough."""
    now = now or timezone.now()
    last = api_key.last_used_at
    if last is not None and (now - last).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
        return
    APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
