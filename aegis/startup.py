import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("aegis.startup")


def refuse_unusable_signing_key() -> None:
    """In production a server process does not start without a usable signing key.
    In development it starts and logs why (the path, the mode, the passphrase problem);
    /health answers 503 naming `signing_key` (never the path: that is for the logs)."""
    from licensing import signing

    problem = signing.signing_key_status()
    if not problem:
        return
    if settings.IS_PRODUCTION:
        raise ImproperlyConfigured(f"Refusing to start with ENVIRONMENT=production: {problem}")
    logger.warning("signing key unusable, no license can be issued: %s", problem)
