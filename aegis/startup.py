from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def refuse_unusable_signing_key() -> None:
    """In production a server process does not start without a usable signing key.
    In development it starts, and /health names the problem."""
    if not settings.IS_PRODUCTION:
        return
    from licensing import signing

    problem = signing.signing_key_status()
    if problem:
        raise ImproperlyConfigured(f"Refusing to start with ENVIRONMENT=production: {problem}")
