"""/api/v1/customers: create, read, list, update, delete (CONTRACT §3)."""

from __future__ import annotations

import pytest

from audit.models import AuditLog
from customers.models import Customer
from customers.services import customer_create
from tests.api.conftest import ACTOR, assert_error

pytestmark = pytest.mark.django_db
URL = "/api/v1/customers"
NEW = {"name": "Initech", "email": "IT@Initech.example", "company": "Initech LLC"}


def test_create_with_a_generated_id(issuer):
    response = issuer.post(URL, NEW, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"] == "CUST-000001"
    assert response["Location"] == "/api/v1/customers/CUST-000001"
    assert body["email"] == "it@initech.example"
    assert body["is_active"] is True
    assert set(body) == {
        "id",
        "name",
        "email",
        "company",
        "phone",
        "address",
        "notes",
        "is_active",
        "created_at",
        "updated_at",
    }
    row = AuditLog.objects.get(event_type="customer.created")
    assert (row.customer_id, row.actor) == ("CUST-000001", "api_key:issuer-key")


def test_create_with_an_id(issuer):
    response = issuer.post(URL, NEW | {"id": "ACME_42"}, format="json")
    assert response.status_code == 201
    assert Customer.objects.get().id == "ACME_42"


def test_create_with_a_taken_id_is_409(issuer, customer):
    assert_error(issuer.post(URL, NEW | {"id": "CUST-001"}, format="json"), 409, "customer_exists")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": 42}, "email"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"id": "has space"}, "id"),
        ({"id": "x" * 51}, "id"),
        ({"is_active": "yes"}, "is_active"),
        ({"is_active": 1}, "is_active"),
        ({"phone": 5551234}, "phone"),
        ({"vip": True}, "vip"),
    ],
)
def test_create_with_bad_fields_is_400(issuer, changes, field):
    body = assert_error(issuer.post(URL, NEW | changes, format="json"), 400, "validation_error")
    assert field in body["errors"], body
    assert not Customer.objects.exists()


def test_get_and_unknown(readonly, customer):
    assert readonly.get(f"{URL}/CUST-001").json()["name"] == "Acme Corporation"
    assert_error(readonly.get(f"{URL}/CUST-404"), 404, "customer_not_found")
    assert_error(readonly.get(f"{URL}/bad%20id"), 404, "not_found")


def test_patch(issuer, customer):
    response = issuer.patch(
        f"{URL}/CUST-001", {"is_active": False, "phone": "+243 81 000"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["is_active"] is False
    assert response.json()["phone"] == "+243 81 000"
    row = AuditLog.objects.get(event_type="customer.updated")
    assert row.event_data["changes"]["is_active"] == {"from": True, "to": False}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"id": "NEW"}, "id"), ({"email": "nope"}, "email"), ({"is_active": "false"}, "is_active")],
)
def test_patch_with_bad_fields_is_400(issuer, customer, body, field):
    response = issuer.patch(f"{URL}/CUST-001", body, format="json")
    assert field in assert_error(response, 400, "validation_error")["errors"]


def test_patch_unknown_is_404(issuer, db):
    assert_error(
        issuer.patch(f"{URL}/CUST-404", {"name": "x"}, format="json"), 404, "customer_not_found"
    )


def test_put_is_not_allowed(issuer, customer):
    assert_error(issuer.put(f"{URL}/CUST-001", NEW, format="json"), 405, "method_not_allowed")


def test_delete(issuer, customer):
    response = issuer.delete(f"{URL}/CUST-001")
    assert response.status_code == 204
    assert not response.content
    assert not Customer.objects.exists()
    assert AuditLog.objects.filter(event_type="customer.deleted", customer_id="CUST-001").exists()


def test_delete_a_customer_with_licenses_is_409(issuer, make_license):
    make_license()
    assert_error(issuer.delete(f"{URL}/CUST-001"), 409, "customer_has_licenses")
    assert Customer.objects.filter(pk="CUST-001").exists()


@pytest.fixture
def customers(db):
    customer_create(actor=ACTOR, id="A-1", name="Acme", email="a@acme.example")
    customer_create(actor=ACTOR, id="B-2", name="Bolt", email="b@bolt.example", company="Zeta")
    customer_create(actor=ACTOR, id="C-3", name="Crane", email="c@crane.example", is_active=False)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["A-1", "B-2", "C-3"]),
        ("is_active=true", ["A-1", "B-2"]),
        ("is_active=false", ["C-3"]),
        ("search=zeta", ["B-2"]),
        ("search=CRANE.example", ["C-3"]),
        ("ordering=-name", ["C-3", "B-2", "A-1"]),
        ("page_size=1", ["A-1"]),
    ],
)
def test_list_filters(readonly, customers, query, expected):
    assert ids(readonly.get(f"{URL}?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("is_active=maybe", "is_active"),
        ("is_active=1", "is_active"),
        ("ordering=email", "ordering"),
        ("page_size=x", "page_size"),
    ],
)
def test_bad_list_parameters_are_400(readonly, customers, query, field):
    assert field in assert_error(readonly.get(f"{URL}?{query}"), 400, "validation_error")["errors"]


def test_list_costs_the_same_for_1_and_40_customers(readonly, db, django_assert_num_queries):
    customer_create(actor=ACTOR, name="First", email="f@example.com")
    readonly.get(URL)  # the first use of a key records last_used_at
    with django_assert_num_queries(2):  # API key, SELECT (a page not full is its own count)
        assert readonly.get(URL).json()["count"] == 1
    for n in range(39):
        customer_create(actor=ACTOR, name=f"C{n}", email=f"c{n}@example.com")
    with django_assert_num_queries(2):
        assert readonly.get(URL).json()["count"] == 40
