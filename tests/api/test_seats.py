"""Seats and leases (CONTRACT §9) through the API: activate, heartbeat, deactivate, staff
release, NOT_ACTIVATED on validate — whole responses, the rows and the audit trail."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY

from audit import chain
from audit.models import AuditLog
from licensing import signing, successors
from licensing.models import Activation, License
from licensing.services import license_revoke
from licensing.verification import compute_fingerprint
from tests.api.conftest import ACTOR, assert_error

pytestmark = pytest.mark.django_db

ACTIVATE = "/api/v1/licenses/activate"
DEACTIVATE = "/api/v1/licenses/deactivate"
VALIDATE = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
NOT_ACTIVATED = "This instance holds no active seat of the license; activate it first."
SEATS_EXCEEDED = "Every seat of the license is taken."
NO_SEAT = {"activation_id": None, "lease": None, "lease_expires_at": None}


def instance(n: int, domain: str | None = None) -> dict:
    return {"instance_db_uuid": f"db-{n}", "instance_domain": domain or f"erp{n}.example.com"}


def fingerprint(n: int, domain: str | None = None) -> str:
    details = instance(n, domain)
    return compute_fingerprint(details["instance_db_uuid"], details["instance_domain"])


def activate(client, license, n: int = 1, **fields):
    body = {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"}
    return client.post(ACTIVATE, body | instance(n) | fields, format="json")


def validate(client, license, **fields):
    body = {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"} | fields
    return client.post(VALIDATE, body, format="json")


def deactivate(client, license, n: int = 1):
    return client.post(DEACTIVATE, {"token": license.token} | instance(n), format="json")


def z(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def license_fields(license: License) -> dict:
    return {
        "license_id": str(license.id),
        "license_type": license.license_type,
        "customer_id": license.customer_id,
        "customer_name": "Acme Corporation",
        "module_name": license.module_name,
        "expires_at": z(license.expires_at),
    }


def answer(code: str, error: str | None, license: License, **seat) -> dict:
    seat = (NO_SEAT | {"successor_token": None}) | seat
    return {
        "valid": code == "VALID",
        "code": code,
        "error": error,
        **license_fields(license),
    } | seat


def seat_answer(license: License, activation: Activation, lease: str, **more) -> dict:
    return answer(
        "VALID",
        None,
        license,
        activation_id=str(activation.id),
        lease=lease,
        lease_expires_at=z(activation.lease_expires_at),
        **more,
    )


def seat_events(license: License | None = None) -> list[tuple[str, bool, dict]]:
    """(event type, chained?, data) of the seat audit rows, oldest first."""
    rows = AuditLog.objects.filter(event_type__startswith="activation.").order_by("id")
    if license is not None:
        rows = rows.filter(license_id=license.id)
    return [(r.event_type, r.chain_seq is not None, r.event_data) for r in rows]


def lease_claims(lease: str, n: int = 1, **instance_fields) -> dict:
    result = signing.verifier().verify_lease(
        lease,
        module_name=MODULE,
        odoo_version="17.0",
        **(instance(n) | instance_fields),
    )
    assert result.code == "VALID", result.code
    assert result.header["typ"] == "aegis-lease+jwt"
    return dict(result.claims)


def move_lease(activation: Activation, expires_at: dt.datetime) -> None:
    """The clock moved: the lease runs out at `expires_at` (no job, no sleep)."""
    Activation.objects.filter(pk=activation.pk).update(lease_expires_at=expires_at)


# --- Activate and heartbeat --------------------------------------------------------------


def test_activate_takes_a_seat_and_answers_with_a_lease(anon, make_license):
    license = make_license(license_type="subscription", duration_days=90, max_instances=2)

    response = activate(anon, license, environment="production", nonce="n-1")

    assert response.status_code == 200
    activation = Activation.objects.get()
    body = response.json()
    assert body == seat_answer(license, activation, body["lease"])
    now = activation.first_seen_at
    assert (activation.license_id, activation.fingerprint, activation.db_uuid) == (
        license.id,
        fingerprint(1),
        "db-1",
    )
    assert (activation.domain, activation.environment, activation.odoo_version) == (
        "erp1.example.com",
        "production",
        "17.0",
    )
    assert activation.last_seen_at == now and activation.released_at is None
    iat = int(now.timestamp())
    assert activation.lease_expires_at == dt.datetime.fromtimestamp(
        iat + settings.LEASE_TTL_DAYS * 86400, dt.UTC
    )
    assert lease_claims(body["lease"]) == {
        "iss": settings.LICENSE_ISSUER,
        "jti": str(activation.id),
        "lic": str(license.id),
        "iat": iat,
        "exp": iat + settings.LEASE_TTL_DAYS * 86400,
        "instance_fingerprint": fingerprint(1),
        "environment": "production",
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17", "18"]},
        "license_type": "subscription",
        "customer": {"id": "CUST-001", "name": "Acme Corporation"},
    }
    assert seat_events() == [
        (
            "activation.created",
            True,
            {
                "activation_id": str(activation.id),
                "fingerprint": fingerprint(1),
                "db_uuid": "db-1",
                "domain": "erp1.example.com",
                "environment": "production",
                "odoo_version": "17.0",
                "lease_expires_at": activation.lease_expires_at.isoformat(),
            },
        )
    ]
    assert chain.verify().ok


def test_a_lease_never_outlives_its_license(anon, make_license):
    license = make_license(license_type="subscription", duration_days=3)
    body = activate(anon, license).json()
    assert body["lease_expires_at"] == z(license.expires_at)
    assert lease_claims(body["lease"])["exp"] == int(license.expires_at.timestamp())


def test_a_heartbeat_keeps_the_same_activation_with_a_new_lease(anon, make_license):
    license = make_license(max_instances=1)
    first = activate(anon, license).json()
    activation = Activation.objects.get()
    earlier = timezone.now() - dt.timedelta(days=3)
    Activation.objects.filter(pk=activation.pk).update(
        last_seen_at=earlier, lease_expires_at=earlier + dt.timedelta(days=10)
    )

    response = activate(anon, license, odoo_version="17.0+e")

    activation.refresh_from_db()
    body = response.json()
    assert body == seat_answer(license, activation, body["lease"])
    assert body["activation_id"] == first["activation_id"]
    assert activation.last_seen_at > earlier + dt.timedelta(days=2)
    assert activation.lease_expires_at > earlier + dt.timedelta(days=10)  # renewed
    assert activation.odoo_version == "17.0+e"
    assert lease_claims(body["lease"])["exp"] == int(activation.lease_expires_at.timestamp())
    assert Activation.objects.count() == 1
    # One chained row for the seat, then the heartbeat outside the chain.
    assert [(event, chained) for event, chained, _ in seat_events()] == [
        ("activation.created", True),
        ("activation.heartbeat", False),
    ]
    assert seat_events()[1][2] == {"activation_id": str(activation.id), "odoo_version": "17.0+e"}
    assert chain.verify().ok


def test_every_validation_check_runs_before_the_seat(anon, make_license, customer):
    revoked = make_license(max_instances=5)
    license_revoke(actor=ACTOR, license_id=revoked.id, reason="chargeback")
    response = activate(anon, revoked)
    assert response.json() == answer("REVOKED", "The license has been revoked.", revoked)
    mismatch = activate(anon, make_license(), module_name="other_module")
    assert mismatch.json()["code"] == "MODULE_MISMATCH"
    bound = make_license(instance_fingerprint=fingerprint(7))
    assert activate(anon, bound, 8).json()["code"] == "FINGERPRINT_MISMATCH"
    assert activate(anon, bound, 7).json()["code"] == "VALID"
    malformed = anon.post(
        ACTIVATE,
        {"token": "nope", "module_name": MODULE, "odoo_version": "17"} | instance(1),
        format="json",
    )
    assert malformed.json()["code"] == "MALFORMED"
    assert Activation.objects.count() == 1  # the bound license's, only
    refused = [(e, c, d["code"]) for e, c, d in seat_events() if e == "activation.refused"]
    assert refused == [
        ("activation.refused", False, "REVOKED"),
        ("activation.refused", False, "MODULE_MISMATCH"),
        ("activation.refused", False, "FINGERPRINT_MISMATCH"),
        ("activation.refused", False, "MALFORMED"),
    ]
    assert AuditLog.objects.get(event_data__code="MALFORMED").license_id is None


def test_activations_are_counted_per_code(anon, make_license, django_capture_on_commit_callbacks):
    def sample(code):
        return REGISTRY.get_sample_value("aegis_activations_total", {"code": code}) or 0.0

    valid, exceeded = sample("VALID"), sample("SEATS_EXCEEDED")
    assert REGISTRY.get_sample_value("aegis_activations_total", {"code": "NOT_ACTIVATED"}) is None
    license = make_license(max_instances=1)
    with django_capture_on_commit_callbacks(execute=True):
        activate(anon, license, 1)
        activate(anon, license, 1)
        activate(anon, license, 2)
    assert (sample("VALID"), sample("SEATS_EXCEEDED")) == (valid + 2, exceeded + 1)


# --- Seats ------------------------------------------------------------------------------


def test_seats_exceeded_when_every_seat_is_taken(anon, make_license):
    license = make_license(max_instances=2)
    assert activate(anon, license, 1).json()["code"] == "VALID"
    assert activate(anon, license, 2).json()["code"] == "VALID"

    response = activate(anon, license, 3)

    assert response.status_code == 200
    assert response.json() == answer("SEATS_EXCEEDED", SEATS_EXCEEDED, license)
    assert activate(anon, license, 1).json()["code"] == "VALID"  # a holder keeps its seat
    assert Activation.objects.count() == 2
    assert seat_events()[2] == (
        "activation.refused",
        False,
        {
            "code": "SEATS_EXCEEDED",
            "fingerprint": fingerprint(3),
            "environment": "production",
            "odoo_version": "17.0",
        },
    )


def test_staging_seats_are_counted_apart(anon, make_license):
    license = make_license(max_instances=1, max_staging_instances=1)
    assert activate(anon, license, 1).json()["code"] == "VALID"
    staging = activate(anon, license, 2, environment="staging").json()
    assert staging["code"] == "VALID"
    assert lease_claims(staging["lease"], 2)["environment"] == "staging"
    assert activate(anon, license, 3).json()["code"] == "SEATS_EXCEEDED"
    assert activate(anon, license, 4, environment="staging").json()["code"] == "SEATS_EXCEEDED"
    assert sorted(Activation.objects.values_list("db_uuid", "environment")) == [
        ("db-1", "production"),
        ("db-2", "staging"),
    ]


def test_a_license_without_a_limit_has_no_limit(anon, make_license):
    license = make_license()  # max_instances NULL: today's behaviour
    codes = {
        activate(anon, license, n, environment=env).json()["code"]
        for n, env in [
            (1, "production"),
            (2, "production"),
            (3, "staging"),
            (4, "staging"),
            (5, "staging"),
        ]
    }
    assert codes == {"VALID"}
    assert validate(anon, license).json()["code"] == "VALID"  # no seat needed to validate


def test_deactivate_frees_the_seat(anon, make_license):
    license = make_license(max_instances=1)
    activate(anon, license, 1)
    activation = Activation.objects.get()

    response = deactivate(anon, license, 1)

    assert response.status_code == 200
    assert response.json() == {
        "deactivated": True,
        "code": "VALID",
        "error": None,
        "license_id": str(license.id),
        "activation_id": str(activation.id),
    }
    activation.refresh_from_db()
    assert activation.released_at is not None
    assert activate(anon, license, 2).json()["code"] == "VALID"
    assert seat_events()[1] == (
        "activation.released",
        True,
        {
            "activation_id": str(activation.id),
            "fingerprint": fingerprint(1),
            "domain": "erp1.example.com",
            "environment": "production",
            "by": "instance",
        },
    )
    # Nothing left to give back: nothing written.
    rows = AuditLog.objects.count()
    assert deactivate(anon, license, 1).json() == {
        "deactivated": False,
        "code": "NOT_ACTIVATED",
        "error": NOT_ACTIVATED,
        "license_id": str(license.id),
        "activation_id": None,
    }
    assert AuditLog.objects.count() == rows
    assert deactivate(anon, make_license(), 1).json()["code"] == "NOT_ACTIVATED"
    assert anon.post(DEACTIVATE, {"token": "x"} | instance(1), format="json").json() == {
        "deactivated": False,
        "code": "MALFORMED",
        "error": "The token is not a well-formed AEGIS license.",
        "license_id": None,
        "activation_id": None,
    }


def test_a_lease_that_ran_out_frees_its_seat_with_no_job(anon, make_license):
    license = make_license(max_instances=1)
    activate(anon, license, 1)
    first = Activation.objects.get()
    move_lease(first, timezone.now() - dt.timedelta(seconds=1))

    assert validate(anon, license, **instance(1)).json()["code"] == "NOT_ACTIVATED"
    assert activate(anon, license, 2).json()["code"] == "VALID"  # the seat was free
    assert activate(anon, license, 1).json()["code"] == "SEATS_EXCEEDED"

    deactivate(anon, license, 2)
    back = activate(anon, license, 1).json()
    assert back["code"] == "VALID"
    assert back["activation_id"] == str(first.id)  # the instance's own activation, resumed
    first.refresh_from_db()
    assert first.lease_expires_at > timezone.now() + dt.timedelta(days=13)
    assert [event for event, _, _ in seat_events()] == [
        "activation.created",
        "activation.created",
        "activation.refused",
        "activation.released",
        "activation.resumed",
    ]


def test_an_instance_moving_to_staging_needs_a_staging_seat(anon, make_license):
    license = make_license(max_instances=1, max_staging_instances=0)
    activate(anon, license, 1)
    assert activate(anon, license, 1, environment="staging").json()["code"] == "SEATS_EXCEEDED"
    assert Activation.objects.get().environment == "production"


# --- Validate ---------------------------------------------------------------------------


def test_validate_answers_not_activated_unless_the_instance_holds_a_seat(anon, make_license):
    license = make_license(max_instances=3)

    response = validate(anon, license, **instance(1))

    assert response.json() == {
        "valid": False,
        "code": "NOT_ACTIVATED",
        "error": NOT_ACTIVATED,
        **license_fields(license),
    }
    assert validate(anon, license).json()["code"] == "NOT_ACTIVATED"  # no instance at all
    activate(anon, license, 1)
    assert validate(anon, license, **instance(1)).json()["code"] == "VALID"
    assert validate(anon, license, fingerprint=fingerprint(1)).json()["code"] == "VALID"
    assert validate(anon, license, **instance(2)).json()["code"] == "NOT_ACTIVATED"
    deactivate(anon, license, 1)
    assert validate(anon, license, **instance(1)).json()["code"] == "NOT_ACTIVATED"
    audited = AuditLog.objects.filter(event_type="license.validated").order_by("id")
    assert [row.event_data["code"] for row in audited] == [
        "NOT_ACTIVATED",
        "NOT_ACTIVATED",
        "VALID",
        "VALID",
        "NOT_ACTIVATED",
        "NOT_ACTIVATED",
    ]


# --- Clones and successors --------------------------------------------------------------


def test_the_same_database_on_a_second_domain_is_a_suspected_clone(anon, readonly, make_license):
    license = make_license(max_instances=3)
    activate(anon, license, 1)
    original = Activation.objects.get()

    copy = activate(anon, license, 1, instance_domain="copy.example.net").json()

    assert copy["code"] == "VALID" and copy["activation_id"] != str(original.id)  # its own seat
    clone = Activation.objects.get(domain="copy.example.net")
    assert seat_events()[-1] == (
        "activation.clone_suspected",
        True,
        {
            "activation_id": str(clone.id),
            "db_uuid": "db-1",
            "domain": "copy.example.net",
            "live_on": [{"activation_id": str(original.id), "domain": "erp1.example.com"}],
        },
    )
    listed = readonly.get(f"/api/v1/licenses/{license.id}/activations").json()["results"]
    assert {row["domain"]: row["clone_suspected"] for row in listed} == {
        "copy.example.net": True,
        "erp1.example.com": True,
    }
    activate(anon, license, 2)
    assert seat_events()[-1][0] == "activation.created"  # another database: no suspicion


def test_a_renewal_reaches_the_instance_as_a_successor_token(anon, make_license):
    license = make_license(license_type="subscription", duration_days=30, max_instances=2)
    assert activate(anon, license).json()["successor_token"] is None

    renewal = successors.license_renew(actor=ACTOR, license_id=license.id, duration_days=365)

    body = activate(anon, license).json()
    activation = Activation.objects.get(license=license)
    assert body == seat_answer(license, activation, body["lease"], successor_token=renewal.token)
    # Not for another module's request, where the renewal would not be valid either.
    other = activate(anon, license, module_name="other_module").json()
    assert (other["code"], other["successor_token"]) == ("MODULE_MISMATCH", None)
    # Nor once the renewal itself is revoked.
    license_revoke(actor=ACTOR, license_id=renewal.id, reason="mistake")
    assert activate(anon, license).json()["successor_token"] is None


# --- Bad requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"instance_db_uuid": None}, "instance_db_uuid"),
        ({"instance_domain": ""}, "instance_domain"),
        ({"instance_db_uuid": 12}, "instance_db_uuid"),
        ({"instance_domain": "erp\x00.example.com"}, None),  # refused by the parser
        ({"environment": "qa"}, "environment"),
        ({"environment": 1}, "environment"),
        ({"nonce": ""}, "nonce"),
        ({"nonce": "é"}, "nonce"),
        ({"nonce": "n" * 129}, "nonce"),
        ({"odoo_version": ["17"]}, "odoo_version"),
        ({"token": None}, "token"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_bad_activation_requests_are_400s_and_write_nothing(anon, make_license, fields, field):
    license = make_license(max_instances=1)
    rows = AuditLog.objects.count()
    response = activate(anon, license, **fields)
    body = assert_error(response, 400, "validation_error" if field else "parse_error")
    assert field is None or field in body["errors"]
    assert Activation.objects.count() == 0
    assert AuditLog.objects.count() == rows


def test_missing_instance_details_are_400s(anon, make_license):
    license = make_license()
    body = {"token": license.token, "module_name": MODULE, "odoo_version": "17"}
    errors = assert_error(anon.post(ACTIVATE, body, format="json"), 400, "validation_error")
    assert set(errors["errors"]) == {"instance_db_uuid", "instance_domain"}
    errors = assert_error(
        anon.post(DEACTIVATE, {"token": license.token}, format="json"), 400, "validation_error"
    )
    assert set(errors["errors"]) == {"instance_db_uuid", "instance_domain"}
    assert Activation.objects.count() == 0


# --- Staff: list and release --------------------------------------------------------------


def test_staff_list_and_release_activations(anon, readonly, issuer, make_license):
    license = make_license(max_instances=1)
    activate(anon, license, 1, environment="staging")
    activation = Activation.objects.get()
    url = f"/api/v1/licenses/{license.id}/activations"
    expected = {
        "id": str(activation.id),
        "license_id": str(license.id),
        "fingerprint": fingerprint(1),
        "db_uuid": "db-1",
        "domain": "erp1.example.com",
        "environment": "staging",
        "odoo_version": "17.0",
        "status": "active",
        "clone_suspected": False,
        "first_seen_at": activation.first_seen_at.isoformat().replace("+00:00", "Z"),
        "last_seen_at": activation.last_seen_at.isoformat().replace("+00:00", "Z"),
        "lease_expires_at": z(activation.lease_expires_at),
        "released_at": None,
    }
    listed = readonly.get(url)
    assert listed.status_code == 200
    assert listed.json() == {"count": 1, "next": None, "previous": None, "results": [expected]}
    assert readonly.get(url, {"status": "released"}).json()["results"] == []
    assert_error(readonly.get(url, {"status": "gone"}), 400, "validation_error")
    assert_error(readonly.delete(f"{url}/{activation.id}"), 403, "permission_denied")

    released = issuer.delete(f"{url}/{activation.id}")

    assert released.status_code == 200
    activation.refresh_from_db()
    assert released.json() == expected | {
        "status": "released",
        "released_at": activation.released_at.isoformat().replace("+00:00", "Z"),
    }
    assert seat_events()[-1][:2] == ("activation.released", True)
    assert seat_events()[-1][2]["by"] == "staff"
    assert AuditLog.objects.filter(event_type="activation.released").get().actor == (
        "api_key:issuer-key"
    )
    assert_error(issuer.delete(f"{url}/{activation.id}"), 409, "activation_already_released")
    assert_error(issuer.delete(f"{url}/not-a-uuid"), 404, "activation_not_found")
    other = make_license()
    assert_error(
        issuer.delete(f"/api/v1/licenses/{other.id}/activations/{activation.id}"),
        404,
        "activation_not_found",
    )
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(readonly.get(f"/api/v1/licenses/{missing}/activations"), 404, "license_not_found")
    # The released lease goes on the revocation list; the seat is free again.
    revocations = anon.get("/api/v1/licenses/revocations").json()
    assert (
        str(activation.id)
        in signing.verifier().verify_revocation_list(revocations["token"]).revoked
    )
    assert activate(anon, license, 2).json()["code"] == "VALID"
