"""Customer services: rows and audit rows together, nothing written on failure."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from aegis.core.exceptions import ValidationFailed
from audit.models import AuditLog
from customers import services
from customers.models import Customer
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db


def test_create_generates_sequential_ids_and_audits():
    first = services.customer_create(actor=ACTOR, name="Acme", email="IT@Acme.example")
    second = services.customer_create(actor=ACTOR, name="Beta", email="b@beta.example")
    assert (first.id, second.id) == ("CUST-000001", "CUST-000002")
    assert first.email == "it@acme.example"
    rows = AuditLog.objects.filter(event_type="customer.created").order_by("id")
    assert [r.customer_id for r in rows] == ["CUST-000001", "CUST-000002"]
    assert rows[0].actor == ACTOR and rows[0].event_data["name"] == "Acme"


def test_generated_id_skips_ids_taken_by_hand():
    services.customer_create(actor=ACTOR, id="CUST-000001", name="Hand", email="h@x.example")
    assert (
        services.customer_create(actor=ACTOR, name="Auto", email="a@x.example").id == "CUST-000002"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "bad id!"}, "id"),
        ({"id": "x" * 51}, "id"),
        ({"email": "not-an-email"}, "email"),
        ({"name": "   "}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": 42}, "name"),
    ],
)
def test_create_refuses_bad_fields_and_writes_nothing(fields, field):
    params = {"name": "Acme", "email": "it@acme.example"} | fields
    with pytest.raises(ValidationFailed) as exc:
        services.customer_create(actor=ACTOR, **params)
    assert field in exc.value.errors
    assert not Customer.objects.exists() and not AuditLog.objects.exists()


def test_duplicate_id_is_a_conflict(customer):
    with pytest.raises(services.CustomerAlreadyExists):
        services.customer_create(actor=ACTOR, id=customer.id, name="Again", email="a@b.example")
    assert AuditLog.objects.filter(event_type="customer.created").count() == 1


def test_update_records_what_changed(customer):
    services.customer_update(
        actor=ACTOR, customer_id=customer.id, company="Acme SA", is_active=False
    )
    customer.refresh_from_db()
    assert customer.company == "Acme SA" and customer.is_active is False
    audit = AuditLog.objects.get(event_type="customer.updated")
    assert audit.event_data["changes"] == {
        "company": {"from": "", "to": "Acme SA"},
        "is_active": {"from": True, "to": False},
    }


def test_update_without_change_writes_nothing(customer):
    services.customer_update(actor=ACTOR, customer_id=customer.id, name=customer.name)
    assert not AuditLog.objects.filter(event_type="customer.updated").exists()


def test_update_unknown_customer_or_field(customer):
    with pytest.raises(services.CustomerNotFound):
        services.customer_update(actor=ACTOR, customer_id="NOPE", name="x")
    with pytest.raises(ValidationFailed):
        services.customer_update(actor=ACTOR, customer_id=customer.id, id="NEW")


def test_delete_audits_a_snapshot(customer):
    services.customer_delete(actor=ACTOR, customer_id=customer.id)
    assert not Customer.objects.exists()
    audit = AuditLog.objects.get(event_type="customer.deleted")
    assert audit.customer_id == "CUST-001" and audit.event_data["name"] == "Acme Corporation"


def test_delete_refused_while_licenses_exist(make_license, customer):
    make_license()
    with pytest.raises(services.CustomerHasLicenses):
        services.customer_delete(actor=ACTOR, customer_id=customer.id)
    assert Customer.objects.filter(pk=customer.id).exists()
    assert not AuditLog.objects.filter(event_type="customer.deleted").exists()


def test_failing_audit_insert_leaves_no_customer(audit_insert_fails):
    with pytest.raises(DatabaseError):
        services.customer_create(actor=ACTOR, name="Acme", email="it@acme.example")
    assert not Customer.objects.exists()
