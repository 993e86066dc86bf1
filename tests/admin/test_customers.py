"""Customers in the back-office: every write is a customers.services call, audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from customers.models import Customer
from customers.services import customer_create, customer_update
from tests.admin.conftest import form_errors, messages_of
from tests.conftest import ACTOR

ADD = reverse("admin:customers_customer_add")
LIST = reverse("admin:customers_customer_changelist")


def change_url(pk: str) -> str:
    return reverse("admin:customers_customer_change", args=[pk])


def delete_url(pk: str) -> str:
    return reverse("admin:customers_customer_delete", args=[pk])


def form(**overrides) -> dict:
    return {
        "id": "",
        "name": "Globex",
        "email": "IT@Globex.example",
        "company": "Globex Corporation",
        "phone": "",
        "address": "",
        "notes": "",
        "is_active": "on",
    } | overrides


def test_creating_a_customer_calls_the_service(boss):
    response = boss.post(ADD, form(id="GLOBEX"))
    assert response.status_code == 302, form_errors(response)
    customer = Customer.objects.get(pk="GLOBEX")
    assert customer.email == "it@globex.example"  # the service's normalisation
    audit = AuditLog.objects.get(event_type="customer.created")
    assert (audit.actor, audit.customer_id) == ("user:boss", "GLOBEX")
    assert audit.event_data["company"] == "Globex Corporation"


def test_a_blank_id_is_generated(boss):
    assert boss.post(ADD, form()).status_code == 302
    assert Customer.objects.get().pk == "CUST-000001"


def test_a_taken_id_is_an_error_on_the_id_field(boss, customer):
    before = AuditLog.objects.count()
    response = boss.post(ADD, form(id="CUST-001"))
    assert form_errors(response) == {"id": ["Customer CUST-001 already exists."]}
    assert AuditLog.objects.count() == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"email": "not-an-email"}, "email"), ({"name": "  "}, "name"), ({"id": "a b"}, "id")],
)
def test_invalid_customer_data_is_shown_on_the_field(boss, overrides, field):
    response = boss.post(ADD, form(**overrides))
    assert response.status_code == 200
    assert field in form_errors(response)
    assert not Customer.objects.exists()
    assert not AuditLog.objects.exists()


def test_editing_audits_exactly_what_changed(boss, customer):
    data = form(name="Acme Corporation", email="it@acme.example", company="Acme", phone="+243 81")
    del data["id"]
    assert boss.post(change_url("CUST-001"), data).status_code == 302
    audit = AuditLog.objects.get(event_type="customer.updated")
    assert audit.actor == "user:boss"
    assert audit.event_data == {
        "changes": {"company": {"from": "", "to": "Acme"}, "phone": {"from": "", "to": "+243 81"}}
    }


def test_the_change_page_lists_the_customers_licenses_read_only(boss, make_license):
    licenses = [make_license(), make_license(module_name="biz4a_hr")]
    page = boss.get(change_url("CUST-001")).content.decode()
    for license in licenses:
        assert reverse("admin:licensing_license_change", args=[license.pk]) in page
    assert "biz4a_hr" in page
    assert "2 in all" in page
    assert 'name="licenses-TOTAL_FORMS"' not in page  # nothing editable about them
    assert reverse("admin:licensing_license_add") + "?customer=CUST-001" in page
    assert reverse("admin:audit_auditlog_changelist") + "?customer_id=CUST-001" in page


def test_deleting_a_customer_with_licenses_is_refused_with_a_reason(boss, make_license):
    make_license()
    before = AuditLog.objects.count()
    for method in (boss.get, boss.post):
        response = method(delete_url("CUST-001"), follow=True)
        assert response.redirect_chain[-1][0] == change_url("CUST-001")
        assert messages_of(response) == [
            "CUST-001 — Acme Corporation holds 1 license and cannot be deleted: licenses are "
            "never deleted. Deactivate the customer instead."
        ]
    assert Customer.objects.filter(pk="CUST-001").exists()
    assert AuditLog.objects.count() == before


def test_deleting_a_customer_without_licenses_calls_the_service(boss, customer):
    assert boss.get(delete_url("CUST-001")).status_code == 200
    response = boss.post(delete_url("CUST-001"), {"post": "yes"})
    assert response.status_code == 302
    assert not Customer.objects.exists()
    audit = AuditLog.objects.get(event_type="customer.deleted")
    assert (audit.actor, audit.customer_id) == ("user:boss", "CUST-001")


def test_there_is_no_bulk_delete_of_customers(boss, customer):
    choices = boss.get(LIST).context["action_form"].fields["action"].choices
    assert [name for name, _ in choices if name] == ["activate", "deactivate"]


def test_activate_and_deactivate_actions_go_through_the_service(boss, customer):
    customer_create(actor=ACTOR, id="OFF", name="Dormant", email="d@x.io", is_active=False)
    selected = {"_selected_action": ["CUST-001", "OFF"], "index": "0"}

    response = boss.post(LIST, selected | {"action": "deactivate"}, follow=True)
    assert messages_of(response) == ["Deactivated 1 customer. 1 already inactive, left unchanged."]
    assert not Customer.objects.filter(is_active=True).exists()
    [audit] = AuditLog.objects.filter(event_type="customer.updated")
    assert (audit.actor, audit.customer_id) == ("user:boss", "CUST-001")
    assert audit.event_data == {"changes": {"is_active": {"from": True, "to": False}}}

    response = boss.post(LIST, selected | {"action": "activate"}, follow=True)
    assert messages_of(response) == ["Activated 2 customers."]
    assert Customer.objects.filter(is_active=True).count() == 2
    assert AuditLog.objects.filter(event_type="customer.updated").count() == 3


def test_search_and_status_filter(boss, customer):
    customer_create(actor=ACTOR, id="OFF", name="Dormant", email="d@dormant.io", is_active=False)

    def listed(query):
        return {c.pk for c in boss.get(LIST + query).context["cl"].result_list}

    assert listed("?q=dormant.io") == {"OFF"}
    assert listed("?q=acme") == {"CUST-001"}
    assert listed("?active=no") == {"OFF"}
    assert listed("?active=yes") == {"CUST-001"}


def test_the_license_form_customer_picker_offers_active_customers_only(boss, customer):
    customer_create(actor=ACTOR, id="ACME-OLD", name="Acme Old", email="o@acme.io")
    customer_update(actor=ACTOR, customer_id="ACME-OLD", is_active=False)
    response = boss.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "licensing",
            "model_name": "license",
            "field_name": "customer",
            "term": "acme",
        },
    )
    assert [r["id"] for r in response.json()["results"]] == ["CUST-001"]


def test_a_customer_added_from_the_issue_forms_popup_is_handed_back(boss):
    response = boss.post(ADD + "?_to_field=id&_popup=1", form(id="NEWCO") | {"_popup": "1"})
    assert response.status_code == 200
    assert response.templates[0].name == "admin/popup_response.html"
    assert "&quot;value&quot;: &quot;NEWCO&quot;" in response.content.decode()
    assert AuditLog.objects.get(event_type="customer.created").customer_id == "NEWCO"
