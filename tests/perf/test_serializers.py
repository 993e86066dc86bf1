"""The list serializers write their rows by hand (licensing/api.py, audit/api.py): the
output must be exactly what their declared DRF fields give, for every kind of row."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from aegis.core.api.serializers import instant
from audit.api import AuditLogSerializer
from audit.models import AuditLog
from customers.services import customer_update
from licensing.api import LicenseSerializer
from licensing.models import License
from licensing.selectors import license_rows
from licensing.services import license_revoke
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db


def drf(serializer, instance) -> dict:
    """What DRF's ModelSerializer writes from the declared fields."""
    return serializers.ModelSerializer.to_representation(serializer, instance)


def assert_same(serializer, instance) -> None:
    ours, theirs = serializer.to_representation(instance), drf(serializer, instance)
    assert ours == theirs
    assert list(ours) == list(theirs)  # same key order: same bytes on the wire
    assert JSONRenderer().render(ours) == JSONRenderer().render(theirs)


def test_license_rows_are_the_declared_fields(make_license, customer):
    made = [
        make_license(),
        make_license(license_type="subscription", duration_days=30, notes="renewal\nline 2"),
        make_license(license_type="demo", allowed_major_versions=["16", "17", "18"]),
        make_license(instance_fingerprint="sha256:" + "a" * 64),
    ]
    license_revoke(actor=ACTOR, license_id=made[1].pk, reason="chargeback ✓")
    expired = made[2]
    License.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    customer_update(actor=ACTOR, customer_id=customer.id, name="Ünïcode & Co")
    for license in License.objects.select_related("customer"):
        assert_same(LicenseSerializer(), license)
    statuses = {LicenseSerializer().to_representation(x)["status"] for x in License.objects.all()}
    assert statuses == {"active", "revoked", "expired"}
    # List pages read rows as dictionaries: the same output, key for key.
    by_id = {license.pk: license for license in License.objects.select_related("customer")}
    rows = list(license_rows(License.objects.all()))
    assert len(rows) == len(by_id) == 4
    for row in rows:
        ours = LicenseSerializer().to_representation(row)
        theirs = drf(LicenseSerializer(), by_id[row["id"]])
        assert list(ours) == list(theirs)
        assert JSONRenderer().render(ours) == JSONRenderer().render(theirs)


def test_list_rows_are_what_retrieve_shows(make_license, make_key):
    from tests.api.conftest import client_with

    made = [make_license(), make_license(license_type="subscription", duration_days=1)]
    license_revoke(actor=ACTOR, license_id=made[0].pk, reason="r")
    License.objects.filter(pk=made[1].pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    client = client_with(make_key("readonly"))
    listed = client.get("/api/v1/licenses").json()["results"]
    assert sorted(row["status"] for row in listed) == ["expired", "revoked"]
    for row in listed:
        assert client.get(f"/api/v1/licenses/{row['id']}").json() == row


def test_audit_rows_are_the_declared_fields(make_license):
    make_license()
    AuditLog.objects.create(
        event_type="test.event",
        actor="user:x",
        ip="2001:db8::1",
        event_data={"nested": {"a": [1, 2.5, None]}, "flag": True},
        created_at=timezone.now().replace(microsecond=0),
    )
    AuditLog.objects.create(event_type="test.bare", actor="cli", event_data={})
    rows = list(AuditLog.objects.all())
    assert {r.license_id is None for r in rows} == {True, False}
    for row in rows:
        assert_same(AuditLogSerializer(), row)


@pytest.mark.parametrize("zone", ["UTC", "Africa/Kinshasa", "America/Caracas"])
@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 11, 29, 3, 4, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 3, 4, 5, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata")),
        None,
    ],
)
def test_instants_are_written_as_drf_writes_them(value, zone):
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        assert instant(value) == serializers.DateTimeField().to_representation(value)
