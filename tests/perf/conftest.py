import pytest
from django.core.cache import cache

from tests.api.conftest import make_key  # noqa: F401  (API keys of each scope)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters live in the cache: no test is throttled by another's requests."""
    cache.clear()
    yield
    cache.clear()
