"""The dashboard's figures, the staff groups, and the list helpers behind the admin."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from aegis.core.adminkit import distinct_values, uuid_lookup
from aegis.dashboard import validations_chart
from audit.models import AuditLog
from audit.services import audit_record
from licensing import services
from licensing.models import License
from tests.conftest import ACTOR


def card(content: str, label: str) -> int:
    match = re.search(
        r'<span class="aegis-card-value">([\d,]+)</span>\s*<span class="aegis-card-label">'
        + re.escape(label),
        content,
    )
    assert match, label
    return int(match.group(1).replace(",", ""))


def test_the_dashboard_counts_licenses_and_validations(boss, make_license):
    make_license()  # perpetual, active
    make_license(license_type="subscription", duration_days=12)  # active, expiring soon
    make_license(license_type="subscription", duration_days=200)  # active, later
    expired = make_license(license_type="subscription", duration_days=5)
    License.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(hours=1))
    revoked = make_license()
    services.license_revoke(actor=ACTOR, license_id=revoked.pk, reason="Fraud")
    for code in ("VALID", "VALID", "VALID", "REVOKED", "EXPIRED"):
        audit_record(event_type="license.validated", actor="public", event_data={"code": code})

    content = boss.get(reverse("admin:index")).content.decode()
    assert card(content, "Active licenses") == 3
    assert card(content, "Expiring within 30 days") == 1
    assert card(content, "Revoked this month") == 1
    assert card(content, "Active customers") == 1
    codes = re.findall(
        r'<span class="aegis-code[^"]*">(\w+)</span></td>\s*<td class="aegis-num">(\d+)</td>',
        content,
    )
    assert codes == [("VALID", "3"), ("EXPIRED", "1"), ("REVOKED", "1")]
    assert '<svg class="validations-chart"' in content
    assert "5 validations</title>" in content  # today's bar
    assert "Recent activity" in content
    assert "license.revoked" in content


def test_the_dashboard_cards_link_to_the_matching_lists(boss, make_license):
    make_license(license_type="subscription", duration_days=12)
    content = boss.get(reverse("admin:index")).content.decode()
    links = re.findall(r'<a class="aegis-card [^"]*" href="([^"]+)"', content)
    assert len(links) == 5  # three of licenses, seats in use, active customers
    for link in links:
        response = boss.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link
    expiring = boss.get(links[1].replace("&amp;", "&")).context["cl"]
    assert expiring.result_count == 1


def test_the_chart_scales_and_says_when_empty():
    days = [dt.date(2026, 11, d) for d in range(1, 31)]
    empty = validations_chart([(d, 0) for d in days])
    assert "No validations in the last 30 days" in empty
    busy = validations_chart([(d, 1234 if d.day == 15 else 0) for d in days])
    assert "Sun 15 Nov 2026: 1,234 validations" in busy
    assert ">2,000</text>" in busy  # the axis rounds up to 1, 2 or 5 × 10^k
    assert "<script" not in busy


# --- roles ---------------------------------------------------------------------------------


def test_the_migration_creates_the_two_staff_groups(staff_groups):
    def perms(name):
        group = Group.objects.get(name=name)
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}

    assert perms("License managers") == {
        "customers.add_customer",
        "customers.change_customer",
        "customers.view_customer",
        "customers.delete_customer",
        "licensing.add_license",
        "licensing.change_license",
        "licensing.view_license",
        "licensing.revoke_license",
        "audit.view_auditlog",
    }
    assert perms("Auditors") == {
        "customers.view_customer",
        "licensing.view_license",
        "audit.view_auditlog",
        "aegis.view_apikey",
    }


def test_an_auditor_cannot_revoke_even_by_posting(auditor, make_license):
    license = make_license()
    url = reverse("admin:licensing_license_revoke", args=[license.pk])
    assert auditor.post(url, {"confirm": "yes", "reason": "x"}).status_code == 403
    bulk = auditor.post(
        reverse("admin:licensing_license_changelist"),
        {"action": "revoke_selected", "_selected_action": [license.pk], "index": "0"},
    )
    assert bulk.status_code in {200, 302}  # an unknown action is ignored, not run
    license.refresh_from_db()
    assert license.status == "active"
    assert not AuditLog.objects.filter(event_type="license.revoked").exists()


def test_a_license_manager_issues_and_revokes_as_themselves(manager, customer):
    response = manager.post(
        reverse("admin:licensing_license_add"),
        {
            "customer": "CUST-001",
            "module_name": "biz4a_payroll_drc",
            "allowed_major_versions": ["18"],
            "license_type": "demo",
        },
    )
    assert response.status_code == 302
    license = License.objects.get()
    manager.post(
        reverse("admin:licensing_license_revoke", args=[license.pk]),
        {"confirm": "yes", "reason": "Trial over"},
    )
    actors = set(AuditLog.objects.filter(license_id=license.pk).values_list("event_type", "actor"))
    assert actors == {("license.issued", "user:mia"), ("license.revoked", "user:mia")}


# --- helpers -------------------------------------------------------------------------------


def test_uuid_lookup_accepts_a_full_id_or_a_prefix_only():
    pk = uuid.UUID("6386fffa-c281-4d93-9840-e3f2b00460d8")
    assert uuid_lookup(str(pk)).children == [("pk", pk)]
    assert uuid_lookup("6386FFFA").children == [
        ("pk__gte", uuid.UUID("6386fffa-0000-0000-0000-000000000000")),
        ("pk__lte", uuid.UUID("6386fffa-ffff-ffff-ffff-ffffffffffff")),
    ]
    for not_an_id in ("6386fff", "acme", "6386fffa-zz", ""):
        assert uuid_lookup(not_an_id) is None


@pytest.mark.parametrize("limit", [1, 100])
def test_distinct_values_lists_each_value_once_in_order(make_license, limit):
    for module in ("biz4a_b", "biz4a_a", "biz4a_b", "biz4a_c"):
        make_license(module_name=module)
    assert (
        distinct_values(License, "module_name", limit=limit)
        == [
            "biz4a_a",
            "biz4a_b",
            "biz4a_c",
        ][:limit]
    )
