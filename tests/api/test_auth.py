"""API keys and staff sessions (CONTRACT §5)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from aegis.models import APIKey
from audit.models import AuditLog
from tests.api.conftest import assert_error, client_with

pytestmark = pytest.mark.django_db
LICENSES = "/api/v1/licenses"
ISSUE = {
    "customer_id": "CUST-001",
    "module_name": "biz4a_payroll_drc",
    "allowed_major_versions": ["17"],
    "license_type": "perpetual",
}


def test_last_used_at_is_recorded_at_most_once_a_minute(
    make_key, make_license, django_assert_num_queries
):
    make_license()
    raw = make_key("readonly")
    key = APIKey.objects.get(prefix=raw.partition(".")[0])
    assert key.last_used_at is None
    client = client_with(raw)
    # key, UPDATE last_used_at, SELECT (a page that is not full is its own count)
    with django_assert_num_queries(3):
        client.get(LICENSES)
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None and timezone.now() - first < dt.timedelta(seconds=5)
    with django_assert_num_queries(2):  # no write within the minute
        client.get(LICENSES)
    APIKey.objects.filter(pk=key.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    client.get(LICENSES)
    key.refresh_from_db()
    assert key.last_used_at > first


def test_expired_key_is_401(make_key):
    raw = make_key("admin")
    APIKey.objects.filter(prefix=raw.partition(".")[0]).update(
        expiry_date=timezone.now() - dt.timedelta(seconds=1)
    )
    assert_error(client_with(raw).get(LICENSES), 401, "invalid_api_key")


def test_key_expiring_later_still_works_and_revoked_key_is_401(make_key):
    raw = make_key("admin")
    keys = APIKey.objects.filter(prefix=raw.partition(".")[0])
    keys.update(expiry_date=timezone.now() + dt.timedelta(minutes=5))
    assert client_with(raw).get(LICENSES).status_code == 200
    keys.update(revoked=True)
    assert_error(client_with(raw).get(LICENSES), 401, "invalid_api_key")


def test_right_prefix_wrong_secret_is_401(make_key):
    prefix = make_key("admin").partition(".")[0]
    assert_error(client_with(f"{prefix}.{'x' * 32}").get(LICENSES), 401, "invalid_api_key")


def test_authorization_header_is_not_an_api_key(make_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_key('admin')}")
    assert_error(client.get(LICENSES), 401, "not_authenticated")


def test_actor_of_an_api_key(issuer, customer):
    issuer.post(LICENSES, ISSUE, format="json")
    assert AuditLog.objects.get(event_type="license.issued").actor == "api_key:issuer-key"


# --- Staff sessions (the browsable API) ---------------------------------------------------


def session(**user_fields) -> APIClient:
    user = get_user_model().objects.create_user(username="alice", password="pw", **user_fields)
    client = APIClient()
    client.force_login(user)
    return client


def test_superuser_session_acts_as_admin(customer):
    client = session(is_staff=True, is_superuser=True)
    assert client.get("/api/v1/admin/stats").status_code == 200
    assert client.post(LICENSES, ISSUE, format="json").status_code == 201
    assert AuditLog.objects.get(event_type="license.issued").actor == "user:alice"


def test_staff_session_reads_only(customer):
    client = session(is_staff=True)
    assert client.get(LICENSES).status_code == 200
    assert_error(client.post(LICENSES, ISSUE, format="json"), 403, "permission_denied")
    assert_error(client.get("/api/v1/admin/stats"), 403, "permission_denied")


def test_non_staff_session_is_not_authenticated(db):
    assert_error(session().get(LICENSES), 401, "not_authenticated")


def test_session_writes_need_the_csrf_token(customer):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(LICENSES, ISSUE, format="json")
    assert_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["detail"]


def test_browsable_api_for_staff(customer):
    client = session(is_staff=True, is_superuser=True)
    response = client.get(LICENSES, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    not_found = client.get(
        f"{LICENSES}/00000000-0000-0000-0000-000000000000", HTTP_ACCEPT="text/html"
    )
    assert_error(not_found, 404, "license_not_found")
