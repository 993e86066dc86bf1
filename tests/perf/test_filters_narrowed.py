"""The list filters build and apply only the filters a query names (aegis/core/api/filters.py):
the same rows and the same 400s as django-filter's whole FilterSet gives."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django_filters.filterset import BaseFilterSet
from rest_framework.test import APIClient

from customers.services import customer_create
from licensing import services
from licensing.api import LicenseFilter
from licensing.selectors import license_list
from tests.api.conftest import ACTOR, client_with

pytestmark = pytest.mark.django_db
URL = "/api/v1/licenses"

QUERIES = [
    {},
    {"module_name": "biz4a_hr"},
    {"status": "revoked"},
    {"status": "active", "license_type": "subscription"},
    {"customer_id": "CUST-002", "ordering": "-expires_at"},
    {"search": "Globex", "ordering": "module_name,-issued_at"},
    {"expires_after": "2030-01-01T00:00:00Z", "license_type": "subscription"},
    {"expires_before": "2100-01-01T00:00:00+02:00", "status": "expired"},
    {"ordering": "customer_id"},
    # Invalid values: the same 400 bodies.
    {"status": "bogus"},
    {"license_type": "lifetime", "module_name": "x"},
    {"expires_before": "yesterday"},
    {"ordering": "token"},
    {"status": "active", "expires_after": "not-a-date", "license_type": "demo2"},
]


@pytest.fixture
def rows(customer, make_license):
    other = customer_create(actor=ACTOR, id="CUST-002", name="Globex", email="it@globex.example")
    made = [
        make_license(module_name="biz4a_hr"),
        make_license(license_type="subscription", duration_days=30),
        make_license(license_type="subscription", duration_days=3000, customer_id=other.id),
        make_license(license_type="demo", duration_days=10, customer_id=other.id),
        make_license(module_name="biz4a_hr", customer_id=other.id, notes="Globex pilot"),
    ]
    services.license_revoke(actor=ACTOR, license_id=made[0].id, reason="test")
    expired = make_license(license_type="subscription", duration_days=1)
    type(expired).objects.filter(pk=expired.pk).update(
        expires_at=expired.issued_at - dt.timedelta(days=1)
    )
    return made


def whole_filterset(params: dict):
    """django-filter's own FilterSet with every filter: (ids, None) or (None, errors)."""
    filterset = LicenseFilter(data=params, queryset=license_list())
    if not filterset.is_valid():
        return None, {name: list(errors) for name, errors in filterset.errors.items()}
    return [str(row.pk) for row in filterset.qs], None


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: "&".join(p) or "none")
def test_same_rows_and_errors_as_the_whole_filterset(rows, make_key, params):
    response = client_with(make_key("readonly")).get(URL, {**params, "page_size": 500})
    ids, errors = whole_filterset(params)
    if errors is None:
        assert response.status_code == 200, response.json()
        assert [row["id"] for row in response.json()["results"]] == ids
    else:
        assert response.status_code == 400
        assert response.json()["errors"] == errors


def test_a_query_naming_no_filter_builds_no_filterset(rows, make_key, monkeypatch):
    built = []
    original = BaseFilterSet.__init__

    def counting(self, *args, **kwargs):
        built.append(sorted(self.base_filters))
        original(self, *args, **kwargs)

    monkeypatch.setattr(BaseFilterSet, "__init__", counting)
    client = client_with(make_key("readonly"))
    assert client.get(URL, {"page_size": 2}).status_code == 200
    assert built == []
    assert client.get(URL, {"status": "active", "page_size": 2}).status_code == 200
    assert built == [["status"]]


def test_the_browsable_api_form_shows_every_filter(rows):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = APIClient()
    client.force_login(user)
    html = client.get(URL, {"status": "active"}, HTTP_ACCEPT="text/html").content.decode()
    for name in LicenseFilter.base_filters:
        assert f'name="{name}"' in html, name
