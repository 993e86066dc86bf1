"""The audit log is read-only for everyone; API keys are shown once and revoked, audited."""

from __future__ import annotations

import re
import uuid

from django.urls import reverse

from aegis.models import APIKey
from aegis.services import api_key_create
from audit.models import AuditLog
from audit.services import audit_record
from licensing import services
from tests.admin.conftest import messages_of
from tests.conftest import ACTOR

AUDIT_LIST = reverse("admin:audit_auditlog_changelist")
KEYS = reverse("admin:aegis_apikey_changelist")


def audit_change(pk) -> str:
    return reverse("admin:audit_auditlog_change", args=[pk])


# --- audit log -----------------------------------------------------------------------------


def test_even_a_superuser_cannot_add_change_or_delete_audit_rows(boss, make_license):
    make_license()
    entry = AuditLog.objects.get(event_type="license.issued")
    assert boss.get(reverse("admin:audit_auditlog_add")).status_code == 403
    assert boss.post(reverse("admin:audit_auditlog_add"), {"actor": "x"}).status_code == 403
    assert boss.post(audit_change(entry.pk), {"actor": "forged"}).status_code == 403
    assert boss.get(reverse("admin:audit_auditlog_delete", args=[entry.pk])).status_code == 403
    assert boss.post(reverse("admin:audit_auditlog_delete", args=[entry.pk])).status_code == 403
    entry.refresh_from_db()
    assert entry.actor == ACTOR
    page = boss.get(AUDIT_LIST)
    assert page.context["action_form"] is None  # no actions at all, no delete_selected
    assert b"Add audit log entry" not in page.content


def test_an_entry_shows_its_event_data_as_pretty_json(boss, make_license):
    license = make_license()
    entry = AuditLog.objects.get(event_type="license.issued")
    page = boss.get(audit_change(entry.pk)).content.decode()
    assert '<pre class="aegis-pre">{\n  &quot;allowed_major_versions&quot;: [\n' in page
    assert f"?license_id={license.pk}" in page
    assert "?customer_id=CUST-001" in page


def test_the_trail_of_a_license_and_of_a_customer(boss, make_license):
    first, second = make_license(), make_license()
    services.license_revoke(actor=ACTOR, license_id=first.pk, reason="Fraud")

    def listed(query):
        response = boss.get(AUDIT_LIST + query)
        assert response.status_code == 200
        return [(r.event_type, r.license_id) for r in response.context["cl"].result_list]

    assert listed(f"?license_id={first.pk}") == [
        ("license.revoked", first.pk),
        ("license.issued", first.pk),
    ]
    assert listed(f"?q={second.pk}") == [("license.issued", second.pk)]
    page = boss.get(AUDIT_LIST + f"?license_id={first.pk}").content.decode()
    assert re.search(r'class="paginator">\s*2\s+entries\s', page)
    assert len(listed("?customer_id=CUST-001")) == 4  # created, 2 issued, revoked
    assert listed("?q=CUST-001") == listed("?customer_id=CUST-001")
    assert listed("?license_id=not-a-uuid") == []
    assert listed(f"?license_id={uuid.uuid4()}") == []


def test_filters_by_event_type_actor_and_date(boss, make_license):
    make_license()
    audit_record(event_type="license.validated", actor="public", event_data={"code": "VALID"})
    response = boss.get(AUDIT_LIST)
    specs = {spec.title: spec for spec in response.context["cl"].filter_specs}
    assert [v for v, _ in specs["event type"].lookup_choices] == [
        "customer.created",
        "license.issued",
        "license.validated",
    ]
    assert [v for v, _ in specs["actor"].lookup_choices] == ["public", ACTOR]

    def types(query):
        return {r.event_type for r in boss.get(AUDIT_LIST + query).context["cl"].result_list}

    assert types("?event_type=license.validated") == {"license.validated"}
    assert types("?actor=public") == {"license.validated"}
    year = AuditLog.objects.first().created_at.year
    assert types(f"?created_at__year={year}") == {
        "customer.created",
        "license.issued",
        "license.validated",
    }
    assert types(f"?created_at__year={year - 1}") == set()
    assert f"created_at__year={year}".encode() in boss.get(AUDIT_LIST + "?actor=public").content


# --- API keys ------------------------------------------------------------------------------


def test_a_created_key_is_shown_once_and_audited(boss):
    response = boss.post(reverse("admin:aegis_apikey_add"), {"name": "erp", "scope": "issuer"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = response.context["raw_key"]
    assert raw in response.content.decode()
    api_key = APIKey.objects.get()
    assert APIKey.objects.is_valid(raw)
    assert (api_key.name, api_key.scope) == ("erp", "issuer")
    audit = AuditLog.objects.get(event_type="api_key.created")
    assert audit.actor == "user:boss"
    assert audit.event_data == {"name": "erp", "scope": "issuer", "prefix": api_key.prefix}
    assert raw not in str(audit.event_data)

    secret = raw.partition(".")[2]
    change = reverse("admin:aegis_apikey_change", args=[api_key.prefix])
    history = reverse("admin:aegis_apikey_history", args=[api_key.prefix])
    for page in (KEYS, change, history):
        content = boss.get(page).content.decode()
        assert secret not in content
        assert api_key.hashed_key not in content
        assert api_key.prefix in content
    assert messages_of(boss.get(KEYS)) == []  # never carried in a message either


def test_an_invalid_key_request_is_shown_on_the_form(boss):
    response = boss.post(reverse("admin:aegis_apikey_add"), {"name": "", "scope": "root"})
    assert set(response.context["adminform"].form.errors) == {"name", "scope"}
    assert not APIKey.objects.exists()


def test_revoking_a_key_from_its_page_and_in_bulk(boss):
    one, _ = api_key_create(actor=ACTOR, name="one", scope="readonly")
    two, _ = api_key_create(actor=ACTOR, name="two", scope="admin")
    three, _ = api_key_create(actor=ACTOR, name="three", scope="admin")

    revoke = reverse("admin:aegis_apikey_revoke", args=[one.prefix])
    assert b"Yes, revoke" in boss.get(revoke).content
    response = boss.post(revoke, {"confirm": "yes"}, follow=True)
    assert messages_of(response) == [
        "Revoked 1 API key: requests using it are refused from now on."
    ]

    selection = {
        "action": "revoke_selected",
        "_selected_action": [one.prefix, two.prefix, three.prefix],
    }
    confirm = boss.post(KEYS, selection | {"index": "0"})
    assert confirm.templates[0].name == "admin/aegis/apikey/revoke_confirmation.html"
    assert one.hashed_key not in confirm.content.decode()
    response = boss.post(KEYS, selection | {"confirm": "yes"}, follow=True)
    assert messages_of(response) == [
        "Revoked 2 API keys: requests using it are refused from now on.",
        "1 already revoked: nothing changed.",
    ]
    assert APIKey.objects.filter(revoked=False).count() == 0
    rows = [
        (r.actor, r.event_data["name"])
        for r in AuditLog.objects.filter(event_type="api_key.revoked").order_by("id")
    ]
    assert rows[0] == ("user:boss", "one")
    assert set(rows[1:]) == {
        ("user:boss", "two"),
        ("user:boss", "three"),
    }


def test_keys_are_never_edited_or_deleted(boss):
    api_key, _ = api_key_create(actor=ACTOR, name="ci", scope="readonly")
    change = reverse("admin:aegis_apikey_change", args=[api_key.prefix])
    assert boss.get(change).status_code == 200
    assert boss.post(change, {"name": "renamed", "scope": "admin"}).status_code == 403
    assert boss.get(reverse("admin:aegis_apikey_delete", args=[api_key.prefix])).status_code == 403
    api_key.refresh_from_db()
    assert (api_key.name, api_key.scope) == ("ci", "readonly")
