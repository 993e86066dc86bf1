"""GET /api/v1/admin/stats: the seed's counters plus validations per code."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditLog
from customers.services import customer_create
from licensing.models import Activation, License
from licensing.seats import activation_release, license_activate
from licensing.services import license_revoke
from licensing.verification import Code
from tests.api.conftest import ACTOR

pytestmark = pytest.mark.django_db


def test_stats(admin, anon, make_license):
    customer_create(actor=ACTOR, id="OFF", name="Off", email="o@example.com", is_active=False)
    make_license()
    make_license(module_name="biz4a_hr", license_type="subscription", duration_days=30)
    revoked = make_license(license_type="demo")
    license_revoke(actor=ACTOR, license_id=revoked.id, reason="x")
    expired = make_license(license_type="subscription", duration_days=10)
    License.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    valid = make_license()
    for token, module in [(valid.token, "biz4a_payroll_drc"), (valid.token, "other"), ("x", "m")]:
        anon.post(
            "/api/v1/licenses/validate",
            {"token": token, "module_name": module, "odoo_version": "17"},
            format="json",
        )

    body = admin.get("/api/v1/admin/stats").json()
    assert body["customers"] == {"total": 2, "active": 1, "inactive": 1}
    assert body["licenses"] == {
        "total": 5,
        "active": 3,
        "revoked": 1,
        "expired": 1,
        "by_type": {"perpetual": 2, "subscription": 2, "demo": 1},
        "by_module": {"biz4a_hr": 1, "biz4a_payroll_drc": 4},
    }
    expected = {code.value: 0 for code in Code} | {
        "VALID": 1,
        "MODULE_MISMATCH": 1,
        "MALFORMED": 1,
    }
    assert body["validations"] == {"last_24h": expected, "last_30d": expected}
    # 2 customers, 5 issued, 1 revoked, 3 validations, the admin key's creation.
    assert body["audit_logs"] == {"total": 12}
    assert AuditLog.objects.count() == 12


def test_stats_count_seats_in_use_and_activations_per_day(admin, make_license):
    license = make_license(max_instances=5)

    def activate(n: int, **fields):
        return license_activate(
            token=license.token,
            module_name=license.module_name,
            odoo_version="17.0",
            instance_db_uuid=f"db-{n}",
            instance_domain=f"erp{n}.example.com",
            **fields,
        ).activation

    held, released, ran_out = activate(1), activate(2), activate(3)
    staging = activate(4, environment="staging")
    activation_release(actor=ACTOR, license_id=license.id, activation_id=released.id)
    now = timezone.now()
    Activation.objects.filter(pk=ran_out.pk).update(lease_expires_at=now - dt.timedelta(seconds=1))
    Activation.objects.filter(pk=staging.pk).update(first_seen_at=now - dt.timedelta(days=3))
    Activation.objects.filter(pk=held.pk).update(first_seen_at=now - dt.timedelta(days=40))

    body = admin.get("/api/v1/admin/stats").json()

    assert body["activations"]["seats_in_use"] == {"production": 1, "staging": 1}
    per_day = body["activations"]["per_day"]
    today = now.astimezone(dt.UTC).date()
    assert [row["date"] for row in per_day] == [
        (today - dt.timedelta(days=29 - i)).isoformat() for i in range(30)
    ]
    counts = {row["date"]: row["count"] for row in per_day if row["count"]}
    assert counts == {
        today.isoformat(): 2,  # released and ran_out: first seen today, whatever happened since
        (today - dt.timedelta(days=3)).isoformat(): 1,
    }
