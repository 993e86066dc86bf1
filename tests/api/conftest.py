"""Fixtures for the REST API tests: clients holding a key of each scope.

The throttle counters live in Django's cache; it is emptied around every test so that no
test is throttled by another's requests.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from aegis.models import Scope
from aegis.services import api_key_create, api_key_revoke

ACTOR = "user:tester"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_key(db):
    """`make_key(scope, name=...) -> raw key`."""

    def make(scope: str, name: str | None = None) -> str:
        _, raw = api_key_create(actor=ACTOR, name=name or f"{scope}-key", scope=scope)
        return raw

    return make


def client_with(raw_key: str | None = None) -> APIClient:
    client = APIClient()
    if raw_key is not None:
        client.credentials(HTTP_X_API_KEY=raw_key)
    return client


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def admin(make_key):
    return client_with(make_key(Scope.ADMIN, "admin-key"))


@pytest.fixture
def issuer(make_key):
    return client_with(make_key(Scope.ISSUER, "issuer-key"))


@pytest.fixture
def readonly(make_key):
    return client_with(make_key(Scope.READONLY, "readonly-key"))


@pytest.fixture
def revoked_key(make_key):
    raw = make_key(Scope.ADMIN, "revoked-key")
    api_key_revoke(actor=ACTOR, prefix=raw.partition(".")[0])
    return raw


def assert_error(response, status: int, code: str) -> dict:
    """The contract's error body (CONTRACT §6), with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) <= {"detail", "code", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["code"] == code, body
    if "errors" in body:
        assert all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
            for k, v in body["errors"].items()
        ), body
    return body
