"""API keys (CONTRACT §5): stored hashed by djangorestframework-api-key, scoped."""

from __future__ import annotations

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from aegis.core.api.scopes import Scope


class APIKey(AbstractAPIKey):
    """Only the prefix and a SHA-512 hash of the key are stored; the key itself is shown once."""

    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READONLY)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
