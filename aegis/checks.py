"""System checks: `manage.py check` and `runserver` refuse a production process whose
signing key is unusable (missing, unreadable, wrong passphrase, mode wider than 0600)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=False)
def signing_key_check(app_configs, **kwargs):
    if not settings.IS_PRODUCTION:
        return []
    from licensing import signing

    problem = signing.signing_key_status()
    if problem is None:
        return []
    return [Error(f"Signing key unusable: {problem}", id="aegis.E001")]
