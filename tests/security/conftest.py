"""Fixtures of the security tests: API clients of every scope, an empty throttle cache, and
Hypothesis profiles.

Hypothesis profiles (`HYPOTHESIS_PROFILE`, default `ci`): `ci` runs a bounded, derandomised
number of examples without a deadline, so a slow CI machine never turns timing into a
failure; `deep` runs many more examples for a local hunt.
"""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, settings

# Fixtures of the API tests, reused here (pytest finds fixtures imported into a conftest).
from tests.api.conftest import (  # noqa: F401
    admin,
    anon,
    closed_database,
    issuer,
    make_key,
    readonly,
)

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written into the working tree
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle and failed-key counters live in the cache: no test inherits another's."""
    cache.clear()
    yield
    cache.clear()
