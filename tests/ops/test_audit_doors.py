"""Every state change through every door — REST API, back-office, management commands —
leaves exactly one audit row with the door's actor, and all of them, whatever the door,
extend one unbroken hash chain."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from aegis.core import actors
from aegis.core.api.scopes import Scope
from aegis.models import APIKey
from aegis.services import api_key_create
from audit import chain
from audit.models import AuditLog
from customers.services import customer_create
from licensing.models import License
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db


class OneRow:
    """`with one_row("license.issued", "user:boss"):` — the block writes exactly that row."""

    def __call__(self, event_type: str, actor: str):
        self.expected = (event_type, actor)
        return self

    def __enter__(self):
        self.before = AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
        return self

    def __exit__(self, exc_type, *args):
        if exc_type is not None:
            return False
        rows = list(AuditLog.objects.filter(id__gt=self.before).values_list("event_type", "actor"))
        assert rows == [self.expected], rows
        return False


@pytest.fixture
def one_row():
    return OneRow()


@pytest.fixture
def api():
    _, raw = api_key_create(actor=ACTOR, name="doors", scope=Scope.ADMIN)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def boss():
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", None)
    client = Client()
    client.force_login(user)
    return client


def ok(response, status=(200, 201, 204, 302)):
    assert response.status_code in status, (response.status_code, response.content[:400])
    return response


LICENSE = {
    "module_name": "biz4a_payroll_drc",
    "allowed_major_versions": ["17"],
    "license_type": "perpetual",
}


def test_api_door(api, one_row):
    actor = actors.for_api_key("doors")
    with one_row("customer.created", actor):
        ok(api.post("/api/v1/customers", {"id": "API-1", "name": "A", "email": "a@x.example"}))
    with one_row("customer.updated", actor):
        ok(api.patch("/api/v1/customers/API-1", {"phone": "+243 1"}, format="json"))
    with one_row("license.issued", actor):
        license_id = ok(api.post("/api/v1/licenses", {"customer_id": "API-1", **LICENSE})).json()[
            "id"
        ]
    with one_row("license.revoked", actor):
        ok(api.delete(f"/api/v1/licenses/{license_id}/revoke", {"reason": "fraud"}, format="json"))
    with one_row("customer.created", actor):
        ok(api.post("/api/v1/customers", {"id": "API-2", "name": "B", "email": "b@x.example"}))
    with one_row("customer.deleted", actor):
        ok(api.delete("/api/v1/customers/API-2"))
    # A refused change writes nothing: revoking twice.
    before = AuditLog.objects.count()
    assert api.delete(f"/api/v1/licenses/{license_id}/revoke", {"reason": "x"}).status_code == 409
    assert AuditLog.objects.count() == before
    assert chain.verify().ok


def test_back_office_door(boss, one_row):
    actor = actors.for_user("boss")
    customer = {"id": "ADM-1", "name": "Globex", "email": "it@globex.example", "is_active": "on"}
    with one_row("customer.created", actor):
        ok(boss.post(reverse("admin:customers_customer_add"), customer))
    with one_row("customer.updated", actor):
        change = reverse("admin:customers_customer_change", args=["ADM-1"])
        ok(boss.post(change, customer | {"phone": "+1 555"}))
    with one_row("license.issued", actor):
        ok(
            boss.post(
                reverse("admin:licensing_license_add"),
                {
                    "customer": "ADM-1",
                    "module_name": "biz4a_payroll_drc",
                    "allowed_major_versions": ["17"],
                    "license_type": "perpetual",
                    "notes": "",
                },
            )
        )
    license = License.objects.get(customer_id="ADM-1")
    with one_row("license.revoked", actor):
        revoke = reverse("admin:licensing_license_revoke", args=[license.pk])
        ok(boss.post(revoke, {"confirm": "yes", "reason": "chargeback"}))
    with one_row("api_key.created", actor):
        ok(boss.post(reverse("admin:aegis_apikey_add"), {"name": "erp", "scope": "issuer"}))
    with one_row("api_key.revoked", actor):
        prefix = APIKey.objects.get(name="erp").prefix
        ok(boss.post(reverse("admin:aegis_apikey_revoke", args=[prefix]), {"confirm": "yes"}))
    customer_create(actor=ACTOR, id="ADM-2", name="Temp", email="t@x.example")  # no licenses
    with one_row("customer.deleted", actor):
        delete = reverse("admin:customers_customer_delete", args=["ADM-2"])
        ok(boss.post(delete, {"post": "yes"}))
    assert chain.verify().ok


def test_command_door(one_row, keys_dir, customer):
    actor = actors.for_cli()

    def run(*args) -> str:
        out = StringIO()
        call_command(*args, stdout=out)
        return out.getvalue()

    with one_row("license.issued", actor):
        run("issue_license", "--customer", customer.id, "--module", "biz4a_payroll_drc",
            "--versions", "17", "--type", "perpetual")  # fmt: skip
    license = License.objects.get()
    with one_row("license.revoked", actor):
        run("revoke_license", str(license.pk), "--reason", "refund")
    with one_row("api_key.created", actor):
        run("create_api_key", "--name", "cli-key", "--scope", "readonly")
    with one_row("signing_key.generated", actor):
        run("generate_keys", "--key-id", "aegis-next-01")
    with one_row("signing_key.retired", actor):
        run("retire_key", "aegis-next-01")
    assert chain.verify().ok
