"""Fixtures for the REST API tests: clients holding a key of each scope.

The throttle counters live in Django's cache; it is emptied around every test so that no
test is throttled by another's requests.
"""

from __future__ import annotations

import contextlib
import socket

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from aegis.core.api.scopes import Scope
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


@pytest.fixture
def closed_database():
    """A context manager under which the default connection really fails to connect:
    PostgreSQL is looked for on a closed port, SQLite in a folder that does not exist.
    Use with `django_db(transaction=True)` (no transaction is open around the test)."""

    @contextlib.contextmanager
    def closed():
        saved_connection = connection.connection
        saved_settings = dict(connection.settings_dict)
        if connection.vendor == "postgresql":
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
        else:
            connection.settings_dict["NAME"] = "/nonexistent-aegis-dir/db.sqlite3"
        connection.connection = None
        try:
            yield
        finally:
            if connection.connection is not None:
                connection.connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved_settings)
            connection.connection = saved_connection

    return closed


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
