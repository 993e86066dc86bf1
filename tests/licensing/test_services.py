"""license_issue / license_revoke: the rows, the audit row, and nothing written on failure."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from aegis.core.exceptions import ValidationFailed
from audit.models import AuditLog
from customers.services import CustomerInactive, CustomerNotFound, customer_update
from licensing import services, signing
from licensing.models import License
from licensing.verification import Code
from tests.conftest import ACTOR, TEST_KID

pytestmark = pytest.mark.django_db


def test_issue_perpetual_writes_license_and_one_audit_row(make_license):
    license = make_license(allowed_major_versions=["18", "17", "17"], notes="phone order")
    row = License.objects.get()
    assert row.id == license.id
    assert row.allowed_major_versions == ["17", "18"]
    assert row.expires_at is None and row.status == "active" and row.key_id == TEST_KID
    result = signing.verifier().verify_token(row.token)
    assert result.code is Code.VALID
    assert result.claims["jti"] == str(row.id)
    assert result.claims["customer"] == {"id": "CUST-001", "name": "Acme Corporation"}
    assert result.claims["module"]["allowed_major_versions"] == ["17", "18"]
    assert int(row.issued_at.timestamp()) == result.claims["iat"]
    assert "exp" not in result.claims

    audit = AuditLog.objects.get(event_type="license.issued")
    assert audit.license_id == row.id and audit.customer_id == "CUST-001"
    assert audit.module_name == "biz4a_payroll_drc" and audit.actor == ACTOR
    assert audit.event_data["license_type"] == "perpetual"
    assert "token" not in audit.event_data


def test_subscription_expiry_matches_token_exp(make_license):
    license = make_license(license_type="subscription", duration_days=365)
    claims = signing.verifier().verify_token(license.token).claims
    assert claims["exp"] == int(license.expires_at.timestamp())
    assert license.expires_at - license.issued_at == dt.timedelta(days=365)


def test_demo_gets_default_duration_and_is_capped(make_license, settings):
    demo = make_license(license_type="demo")
    assert demo.expires_at - demo.issued_at == dt.timedelta(
        days=settings.DEFAULT_DEMO_DURATION_DAYS
    )
    with pytest.raises(ValidationFailed) as exc:
        make_license(license_type="demo", duration_days=settings.DEMO_MAX_DURATION_DAYS + 1)
    assert "duration_days" in exc.value.errors


def test_bound_license_carries_the_fingerprint(make_license):
    fp = "sha256:" + "ab" * 32
    license = make_license(instance_fingerprint=fp)
    assert signing.verifier().verify_token(license.token).claims["instance_fingerprint"] == fp


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"duration_days": 30}, "duration_days"),  # perpetual never expires
        ({"license_type": "subscription"}, "duration_days"),  # needs an expiry
        (
            {"license_type": "subscription", "expires_at": timezone.now() - dt.timedelta(days=1)},
            "expires_at",
        ),
        ({"license_type": "subscription", "duration_days": 0}, "duration_days"),
        (
            {
                "license_type": "subscription",
                "duration_days": 5,
                "expires_at": timezone.now() + dt.timedelta(days=9),
            },
            "expires_at",
        ),
        ({"license_type": "lifetime"}, "license_type"),
        ({"module_name": "Biz4a-Payroll"}, "module_name"),
        ({"module_name": "x"}, "module_name"),
        ({"allowed_major_versions": []}, "allowed_major_versions"),
        ({"allowed_major_versions": ["17.0"]}, "allowed_major_versions"),
        ({"allowed_major_versions": "17"}, "allowed_major_versions"),
        ({"instance_fingerprint": "sha256:ABC"}, "instance_fingerprint"),
    ],
)
def test_issue_rules_refuse_bad_requests_and_write_nothing(make_license, overrides, field):
    with pytest.raises(ValidationFailed) as exc:
        make_license(**overrides)
    assert field in exc.value.errors
    assert not License.objects.exists()
    assert not AuditLog.objects.filter(event_type="license.issued").exists()


def test_issue_for_unknown_or_inactive_customer(make_license, customer):
    with pytest.raises(CustomerNotFound):
        make_license(customer_id="NOPE")
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    with pytest.raises(CustomerInactive):
        make_license()
    assert not License.objects.exists()


def test_issue_without_signing_key_writes_nothing(make_license, settings, tmp_path):
    settings.PRIVATE_KEY_PATH = tmp_path / "missing.private.pem"
    with pytest.raises(services.SigningUnavailable):
        make_license()
    assert not License.objects.exists()


def test_failing_audit_insert_leaves_no_license(make_license, audit_insert_fails):
    with pytest.raises(DatabaseError):
        make_license()
    assert not License.objects.exists()


def test_revoke_writes_state_and_one_audit_row(make_license):
    license = make_license()
    revoked = services.license_revoke(actor=ACTOR, license_id=str(license.id), reason="  unpaid  ")
    row = License.objects.get()
    assert row.status == "revoked" and row.revoked_reason == "unpaid" and row.revoked_at
    assert row.token == license.token  # never re-signed
    assert revoked.effective_status == "revoked"
    audit = AuditLog.objects.get(event_type="license.revoked")
    assert audit.license_id == license.id and audit.event_data == {"reason": "unpaid"}


def test_second_revoke_raises_and_writes_nothing(make_license):
    license = make_license()
    services.license_revoke(actor=ACTOR, license_id=license.id, reason="unpaid")
    before = License.objects.get().revoked_at
    with pytest.raises(services.LicenseAlreadyRevoked):
        services.license_revoke(actor=ACTOR, license_id=license.id, reason="again")
    row = License.objects.get()
    assert row.revoked_at == before and row.revoked_reason == "unpaid"
    assert AuditLog.objects.filter(event_type="license.revoked").count() == 1


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_revoke_requires_a_reason(make_license, reason):
    license = make_license()
    with pytest.raises(ValidationFailed):
        services.license_revoke(actor=ACTOR, license_id=license.id, reason=reason)
    assert License.objects.get().status == "active"


@pytest.mark.parametrize(
    "license_id", ["nope", "6f1c7a52-0000-4000-8000-000000000000", "", "1' OR '1'='1"]
)
def test_revoke_unknown_license(db, license_id):
    with pytest.raises(services.LicenseNotFound):
        services.license_revoke(actor=ACTOR, license_id=license_id, reason="x")


def test_failing_audit_insert_leaves_license_active(make_license, audit_insert_fails_after_issue):
    license = audit_insert_fails_after_issue
    with pytest.raises(DatabaseError):
        services.license_revoke(actor=ACTOR, license_id=license.id, reason="unpaid")
    assert License.objects.get().status == "active"


@pytest.fixture
def audit_insert_fails_after_issue(make_license, request):
    license = make_license()
    request.getfixturevalue("audit_insert_fails")
    return license


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_revokes_one_wins(make_license):
    license = make_license()
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def revoke():
        try:
            barrier.wait()
            services.license_revoke(actor=ACTOR, license_id=license.id, reason="race")
            outcome = "ok"
        except services.LicenseAlreadyRevoked:
            outcome = "conflict"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=revoke) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert sorted(outcomes) == ["conflict"] * 19 + ["ok"]
    assert AuditLog.objects.filter(event_type="license.revoked").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_for_one_customer_are_all_distinct(customer):
    barrier = threading.Barrier(20)
    ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def issue():
        try:
            barrier.wait()
            license = services.license_issue(
                actor=ACTOR,
                customer_id=customer.id,
                module_name="biz4a_payroll_drc",
                allowed_major_versions=["17"],
                license_type="perpetual",
            )
            with lock:
                ids.append(license.id)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 20 == License.objects.count()
    assert AuditLog.objects.filter(event_type="license.issued").count() == 20
