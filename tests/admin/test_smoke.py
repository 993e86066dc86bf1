"""Every back-office page answers, and each role reaches exactly the pages it should."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.urls import reverse

from aegis.services import api_key_create
from audit.models import AuditLog
from customers.services import customer_create
from licensing.seats import license_activate
from tests.conftest import ACTOR

MODELS = [
    "customers.customer",
    "licensing.license",
    "licensing.activation",
    "audit.auditlog",
    "aegis.apikey",
    "auth.user",
    "auth.group",
]
# The audit log is written by services only, activations by instances (and released by
# staff): nobody adds a row from the admin.
NO_ADD = {"audit.auditlog", "licensing.activation"}


@pytest.fixture
def objects(customer, make_license, boss):
    license = make_license()
    api_key, _ = api_key_create(actor=ACTOR, name="ci", scope="readonly")
    activation = license_activate(
        token=license.token,
        module_name=license.module_name,
        odoo_version="17.0",
        instance_db_uuid="db-1",
        instance_domain="erp.example.com",
    ).activation
    return {
        "customers.customer": customer,
        "licensing.license": license,
        "licensing.activation": activation,
        "audit.auditlog": AuditLog.objects.filter(
            license_id=license.pk, event_type="license.issued"
        ).get(),
        "aegis.apikey": api_key,
        "auth.user": User.objects.get(username="boss"),
        "auth.group": Group.objects.get(name="Auditors"),
    }


def url(model: str, view: str, *args) -> str:
    app, name = model.split(".")
    return reverse(f"admin:{app}_{name}_{view}", args=args)


def key(obj) -> str:
    """How the admin addresses an object: API keys by prefix, everything else by pk."""
    return getattr(obj, "prefix", None) or obj.pk


def test_the_smoke_list_covers_every_registered_model():
    assert {m._meta.label_lower for m in admin.site._registry} == set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_superuser_opens_every_changelist_add_and_change_page(boss, objects, model):
    assert boss.get(url(model, "changelist")).status_code == 200
    assert boss.get(url(model, "add")).status_code == (403 if model in NO_ADD else 200)
    assert boss.get(url(model, "change", key(objects[model]))).status_code == 200
    assert boss.get(url(model, "history", key(objects[model]))).status_code == 200


def test_superuser_opens_the_extra_pages(boss, objects):
    license = objects["licensing.license"]
    unlicensed = customer_create(actor=ACTOR, name="Newco", email="it@newco.example")
    pages = [
        reverse("admin:customers_customer_delete", args=[unlicensed.pk]),
        reverse("admin:index"),
        reverse("admin:licensing_license_revoke", args=[license.pk]),
        reverse("admin:licensing_license_token", args=[license.pk]),
        reverse("admin:licensing_activation_release", args=[objects["licensing.activation"].pk]),
        reverse("admin:licensing_activation_changelist") + "?status=active&q=erp",
        reverse("admin:licensing_license_export"),
        reverse("admin:aegis_apikey_revoke", args=[objects["aegis.apikey"].prefix]),
        reverse("admin:licensing_license_changelist") + "?status=expired&expiring=30",
        reverse("admin:audit_auditlog_changelist") + f"?license_id={license.pk}",
        reverse("admin:audit_auditlog_changelist") + "?customer_id=CUST-001&q=CUST-001",
    ]
    for page in pages:
        assert boss.get(page).status_code == 200, page


def test_the_login_page_is_branded_and_logs_in(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "s3cret-pass-word")
    page = client.get(reverse("admin:login"))
    assert page.status_code == 200
    assert b"AEGIS License Server" in page.content
    response = client.post(
        reverse("admin:login"),
        {"username": "root", "password": "s3cret-pass-word", "next": "/admin/"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/admin/"
    assert b"Back-office" in response.content


def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(client, login, objects):
    outsider = login("outsider", staff=False)
    for who in (client, outsider):
        for model in ("licensing.license", "audit.auditlog", "customers.customer"):
            response = who.get(url(model, "changelist"))
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("admin:login"))


# (role, page, expected status). "License managers" run customers and licenses and read the
# audit log; "Auditors" read everything and change nothing; plain staff see nothing.
ROLE_MATRIX = [
    ("manager", "customer_changelist", 200),
    ("manager", "customer_add", 200),
    ("manager", "customer_change", 200),
    ("manager", "license_changelist", 200),
    ("manager", "license_add", 200),
    ("manager", "license_change", 200),
    ("manager", "license_revoke", 200),
    ("manager", "license_export", 200),
    ("manager", "auditlog_changelist", 200),
    ("manager", "auditlog_change", 200),
    ("manager", "apikey_changelist", 403),
    ("manager", "apikey_add", 403),
    ("manager", "user_changelist", 403),
    ("auditor", "customer_changelist", 200),
    ("auditor", "customer_change", 200),
    ("auditor", "customer_add", 403),
    ("auditor", "customer_delete", 403),
    ("auditor", "license_changelist", 200),
    ("auditor", "license_change", 200),
    ("auditor", "license_token", 200),
    ("auditor", "license_add", 403),
    ("auditor", "license_revoke", 403),
    ("auditor", "auditlog_changelist", 200),
    ("auditor", "apikey_changelist", 200),
    ("auditor", "apikey_change", 200),
    ("auditor", "apikey_add", 403),
    ("auditor", "apikey_revoke", 403),
    ("auditor", "user_changelist", 403),
    ("plain_staff", "index", 200),
    ("plain_staff", "customer_changelist", 403),
    ("plain_staff", "license_changelist", 403),
    ("plain_staff", "license_token", 403),
    ("plain_staff", "auditlog_changelist", 403),
    ("plain_staff", "apikey_changelist", 403),
]


def _page(name: str, objects) -> str:
    if name == "index":
        return reverse("admin:index")
    model_name, _, view = name.partition("_")
    model = {
        "customer": "customers.customer",
        "license": "licensing.license",
        "auditlog": "audit.auditlog",
        "apikey": "aegis.apikey",
        "user": "auth.user",
    }[model_name]
    if view in {"changelist", "add", "export"}:
        return url(model, view)
    return url(model, view, key(objects[model]))


@pytest.mark.parametrize(("role", "page", "expected"), ROLE_MATRIX)
def test_each_role_reaches_only_its_pages(request, objects, role, page, expected):
    client = request.getfixturevalue(role)
    assert client.get(_page(page, objects)).status_code == expected


def test_auditors_see_the_license_read_only_without_revoke(auditor, manager, objects):
    page = _page("license_change", objects)
    as_auditor = auditor.get(page).content.decode()
    assert "Save notes" not in as_auditor
    assert "Revoke…" not in as_auditor
    assert 'id="license-token"' in as_auditor
    as_manager = manager.get(page).content.decode()
    assert "Save notes" in as_manager
    assert "Revoke…" in as_manager


def test_the_dashboard_shows_each_role_only_what_it_may_see(plain_staff, auditor, objects):
    assert b"Active licenses" not in plain_staff.get(reverse("admin:index")).content
    content = auditor.get(reverse("admin:index")).content
    assert b"Active licenses" in content
    assert b"Validations per day" in content
