"""The seat services (licensing/seats.py): their rows and audit rows, and nothing written when
they fail — for every door (API, admin, commands) calls them."""

from __future__ import annotations

import hashlib
import time
import uuid

import jwt
import pytest
from django.db import DatabaseError

from aegis.core.exceptions import ValidationFailed
from audit.models import AuditLog
from licensing import seats, services, signing, successors
from licensing.models import Activation
from licensing.services import LicenseNotFound, SigningUnavailable
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db

MODULE = "biz4a_payroll_drc"
INSTANCE = {"instance_db_uuid": "db-1", "instance_domain": "https://erp.acme.example/web"}


def activate(license, **fields):
    request = {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"}
    return seats.license_activate(**(request | INSTANCE | fields))


def seat_rows() -> int:
    return AuditLog.objects.filter(event_type__startswith="activation.").count()


def test_the_domain_stored_is_the_one_hashed(make_license):
    activation = activate(make_license()).activation
    assert Activation.objects.get().domain == "erp.acme.example"  # the host of web.base.url
    assert (
        activation.fingerprint == "sha256:" + hashlib.sha256(b"db-1:erp.acme.example").hexdigest()
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"instance_db_uuid": ""},
        {"instance_domain": "erp\x00.example"},
        {"instance_db_uuid": "\ud800"},  # a lone surrogate: PostgreSQL cannot store it
        {"environment": "qa"},
        {"odoo_version": "1" * 33},
        {"nonce": "\t"},
    ],
    ids=repr,
)
def test_a_bad_request_writes_nothing(make_license, fields):
    license = make_license(max_instances=1)
    with pytest.raises(ValidationFailed) as excinfo:
        activate(license, **fields)
    assert set(excinfo.value.errors) == {next(iter(fields))}
    assert not Activation.objects.exists() and seat_rows() == 0


def test_without_a_signing_key_no_seat_is_taken(make_license, keys_dir, settings):
    license = make_license(max_instances=1)
    settings.PRIVATE_KEY_PATH = keys_dir / "missing.private.pem"
    signing.reset()
    with pytest.raises(SigningUnavailable):
        activate(license)
    assert not Activation.objects.exists() and seat_rows() == 0


def test_a_failing_audit_insert_takes_no_seat(make_license, request):
    license = make_license(max_instances=1)
    request.getfixturevalue("audit_insert_fails")
    with pytest.raises(DatabaseError):
        activate(license)
    assert not Activation.objects.exists()


def test_release_refuses_what_it_cannot_release_and_writes_nothing(make_license):
    license, other = make_license(), make_license()
    activation = activate(license).activation
    before = seat_rows()
    with pytest.raises(LicenseNotFound):
        seats.activation_release(actor=ACTOR, license_id="nope", activation_id=activation.id)
    with pytest.raises(seats.ActivationNotFound):
        seats.activation_release(actor=ACTOR, license_id=other.id, activation_id=activation.id)
    seats.activation_release(actor=ACTOR, license_id=license.id, activation_id=activation.id)
    with pytest.raises(seats.ActivationAlreadyReleased):
        seats.activation_release(actor=ACTOR, license_id=license.id, activation_id=activation.id)
    assert seat_rows() == before + 1
    assert AuditLog.objects.get(event_type="activation.released").actor == ACTOR


def test_a_released_instance_activates_anew(make_license):
    license = make_license(max_instances=1)
    first = activate(license).activation
    seats.license_deactivate(token=license.token, **INSTANCE)
    second = activate(license).activation
    assert second.pk != first.pk  # a new activation: the released lease stays revoked
    assert Activation.objects.filter(released_at=None).get().pk == second.pk


def test_an_expired_license_is_offered_its_successor(make_license, customer):
    """The token step fails (EXPIRED) before any row is read, yet the license is known from
    the verified token: an instance that slept through its renewal still finds it."""
    issued = make_license(license_type="subscription", duration_days=30)
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    expired_token, _ = signing.sign(
        claims | {"jti": str(uuid.uuid4()), "exp": int(time.time()) - 60}
    )
    expired, _ = services.license_import(actor=ACTOR, token=expired_token)
    renewal = successors.license_renew(actor=ACTOR, license_id=expired.id, duration_days=30)

    result = seats.license_activate(
        token=expired_token, module_name=MODULE, odoo_version="17.0", **INSTANCE
    )

    assert result.outcome.code == "EXPIRED" and result.activation is None
    assert result.successor_token == renewal.token
