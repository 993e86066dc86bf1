"""Deployment checks: `manage.py check --deploy` reports a production signing key that is
unusable (missing, unreadable, wrong passphrase, mode wider than 0600, retired).

It is a deploy check rather than an every-command check so that `migrate` and
`generate_keys` can run before the first key exists; the server process itself refuses to
start without a usable key (`aegis.startup`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def signing_key_check(app_configs, **kwargs):
    if not settings.IS_PRODUCTION:
        return []
    from licensing import signing

    problem = signing.signing_key_status()
    if problem is None:
        return []
    return [Error(f"Signing key unusable: {problem}", id="aegis.E001")]
