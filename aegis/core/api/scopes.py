"""The scopes an API key (or a staff session) acts with (CONTRACT §5).

Views declare the scope they need (`read_scope`, `write_scope`; `permissions.HasScope`
enforces it); the `aegis` app's `APIKey` model stores one per key.
"""

from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    ADMIN = "admin", "Admin (everything)"
    ISSUER = "issuer", "Issuer (licenses and customers, read and write)"
    READONLY = "readonly", "Read-only (GET on licenses and customers)"
