"""POST /api/v1/licenses/validate — CONTRACT §2: one whole-response test per code."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import connection

from audit.models import AuditLog
from customers.services import customer_update
from licensing import signing
from licensing.services import license_revoke
from licensing.verification import compute_fingerprint
from tests.api.conftest import ACTOR, assert_error

URL = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
DB_UUID, DOMAIN = "abc", "erp.example.com"
BOUND_TO = "sha256:" + hashlib.sha256(b"abc:erp.example.com").hexdigest()
NULL_LICENSE = {
    "license_id": None,
    "license_type": None,
    "customer_id": None,
    "customer_name": None,
    "module_name": None,
    "expires_at": None,
}
pytestmark = pytest.mark.django_db


def claims(**overrides) -> dict:
    base = {
        "jti": str(uuid.uuid4()),
        "iss": settings.LICENSE_ISSUER,
        "iat": int(time.time()),
        "customer": {"id": "CUST-001", "name": "Acme Corporation"},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17", "18"]},
        "license_type": "perpetual",
    }
    base.update(overrides)
    return base


def sign(**overrides) -> str:
    return signing.sign(claims(**overrides))[0]


def validate(client, token, **fields):
    body = {"token": token, "module_name": MODULE, "odoo_version": "17.0"} | fields
    return client.post(URL, body, format="json")


def license_fields(license) -> dict:
    return {
        "license_id": str(license.id),
        "license_type": license.license_type,
        "customer_id": license.customer_id,
        "customer_name": "Acme Corporation",
        "module_name": license.module_name,
        "expires_at": (
            license.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if license.expires_at else None
        ),
    }


def answer(code: str, error: str | None, fields: dict) -> dict:
    return {"valid": code == "VALID", "code": code, "error": error, **fields}


# --- One test per code, in the contract's order -------------------------------------------


def test_malformed(anon):
    response = validate(anon, "not-a-jws")
    assert response.status_code == 200
    assert response.json() == answer(
        "MALFORMED", "The token is not a well-formed AEGIS license.", NULL_LICENSE
    )


def test_unknown_key(anon):
    stranger = Ed25519PrivateKey.generate()
    token = jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": "stranger-01"})
    response = validate(anon, token)
    assert response.status_code == 200
    assert response.json() == answer(
        "UNKNOWN_KEY", "The token was signed with a key this server does not know.", NULL_LICENSE
    )


def test_bad_signature(anon, make_license):
    license = make_license()
    header, _, signature = license.token.split(".")
    other_payload = sign(license_type="perpetual").split(".")[1]
    response = validate(anon, f"{header}.{other_payload}.{signature}")
    assert response.status_code == 200
    assert response.json() == answer(
        "BAD_SIGNATURE", "The token signature is invalid.", NULL_LICENSE
    )


def test_wrong_issuer(anon):
    jti = str(uuid.uuid4())
    response = validate(anon, sign(jti=jti, iss="https://elsewhere.example"))
    assert response.status_code == 200
    assert response.json() == answer(
        "WRONG_ISSUER",
        "The token was not issued by this license server.",
        {
            "license_id": jti,
            "license_type": "perpetual",
            "customer_id": "CUST-001",
            "customer_name": "Acme Corporation",
            "module_name": MODULE,
            "expires_at": None,
        },
    )


def test_expired(anon):
    jti = str(uuid.uuid4())
    exp = int(time.time()) - 60
    response = validate(anon, sign(jti=jti, license_type="subscription", exp=exp))
    assert response.status_code == 200
    assert response.json() == answer(
        "EXPIRED",
        "The license has expired.",
        {
            "license_id": jti,
            "license_type": "subscription",
            "customer_id": "CUST-001",
            "customer_name": "Acme Corporation",
            "module_name": MODULE,
            "expires_at": dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )


def test_unknown_license(anon, customer):
    jti = str(uuid.uuid4())
    response = validate(anon, sign(jti=jti))
    assert response.status_code == 200
    assert response.json() == answer(
        "UNKNOWN_LICENSE",
        "No license with this id exists.",
        {
            "license_id": jti,
            "license_type": "perpetual",
            "customer_id": "CUST-001",
            "customer_name": "Acme Corporation",
            "module_name": MODULE,
            "expires_at": None,
        },
    )


def test_revoked(anon, make_license):
    license = make_license()
    license_revoke(actor=ACTOR, license_id=license.id, reason="cancelled")
    response = validate(anon, license.token)
    assert response.json() == answer(
        "REVOKED", "The license has been revoked.", license_fields(license)
    )


def test_suspended(anon, make_license, customer):
    license = make_license(license_type="subscription", duration_days=30)
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    response = validate(anon, license.token)
    assert response.json() == answer(
        "SUSPENDED",
        "The customer holding this license is suspended.",
        license_fields(license),
    )
    assert response.json()["expires_at"].endswith("Z")


def test_module_mismatch(anon, make_license):
    license = make_license()
    response = validate(anon, license.token, module_name="biz4a_other")
    assert response.json() == answer(
        "MODULE_MISMATCH", "The license is for another module.", license_fields(license)
    )


def test_version_not_allowed(anon, make_license):
    license = make_license(allowed_major_versions=["17"])
    response = validate(anon, license.token, odoo_version="18.0")
    assert response.json() == answer(
        "VERSION_NOT_ALLOWED",
        "The license does not cover this Odoo version.",
        license_fields(license),
    )


def test_fingerprint_required(anon, make_license):
    license = make_license(instance_fingerprint=BOUND_TO)
    response = validate(anon, license.token, instance_db_uuid=DB_UUID)
    assert response.json() == answer(
        "FINGERPRINT_REQUIRED",
        "The license is bound to an instance; instance details are required.",
        license_fields(license),
    )


def test_fingerprint_mismatch(anon, make_license):
    license = make_license(instance_fingerprint=BOUND_TO)
    response = validate(anon, license.token, instance_db_uuid="other", instance_domain=DOMAIN)
    assert response.json() == answer(
        "FINGERPRINT_MISMATCH",
        "The license is bound to another instance.",
        license_fields(license),
    )


def test_valid(anon, make_license):
    license = make_license()
    response = validate(anon, license.token)
    assert response.status_code == 200
    assert response.json() == answer("VALID", None, license_fields(license))


# --- Details of the checks ----------------------------------------------------------------


@pytest.mark.parametrize("odoo_version", ["17", "17.0", "17.0+e", "saas~17.2"])
def test_odoo_version_forms_compare_the_major(anon, make_license, odoo_version):
    license = make_license(allowed_major_versions=["17"])
    assert validate(anon, license.token, odoo_version=odoo_version).json()["code"] == "VALID"
    assert validate(anon, license.token, odoo_version="16.0").json()["code"] == (
        "VERSION_NOT_ALLOWED"
    )


@pytest.mark.parametrize(
    "instance",
    [
        {"instance_db_uuid": DB_UUID, "instance_domain": DOMAIN},
        {"instance_db_uuid": DB_UUID, "instance_domain": "https://erp.example.com/web"},
        {"fingerprint": BOUND_TO},
    ],
    ids=["db_uuid+domain", "db_uuid+url", "precomputed"],
)
def test_bound_license_is_valid_on_its_instance(anon, make_license, instance):
    license = make_license(instance_fingerprint=BOUND_TO)
    assert validate(anon, license.token, **instance).json()["code"] == "VALID"


def test_revoked_wins_over_suspended(anon, make_license, customer):
    """The first failing check sets the code."""
    license = make_license()
    license_revoke(actor=ACTOR, license_id=license.id, reason="x")
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    assert validate(anon, license.token, module_name="other").json()["code"] == "REVOKED"


# --- Audit and counting -------------------------------------------------------------------


def test_each_validation_writes_one_audit_row(anon, make_license):
    license = make_license(instance_fingerprint=BOUND_TO)
    before = AuditLog.objects.count()
    validate(anon, license.token, instance_db_uuid=DB_UUID, instance_domain=DOMAIN)
    assert AuditLog.objects.count() == before + 1
    row = AuditLog.objects.latest("id")
    assert row.event_type == "license.validated"
    assert row.actor == "public"
    assert row.license_id == license.id
    assert row.customer_id == "CUST-001"
    assert row.module_name == MODULE
    assert row.ip == "127.0.0.1"
    assert row.event_data == {"code": "VALID", "fingerprint": BOUND_TO, "odoo_version": "17.0"}


def test_unknown_license_is_audited_without_a_license_id(anon, customer):
    validate(anon, sign())
    row = AuditLog.objects.latest("id")
    assert row.license_id is None
    assert row.customer_id == "CUST-001"
    assert row.event_data["code"] == "UNKNOWN_LICENSE"


def test_malformed_token_is_audited_with_the_module_asked_for(anon):
    validate(anon, "garbage")
    row = AuditLog.objects.latest("id")
    assert (row.event_type, row.license_id, row.customer_id) == ("license.validated", None, None)
    assert row.module_name == MODULE
    assert row.event_data == {"code": "MALFORMED", "fingerprint": None, "odoo_version": "17.0"}


def test_validate_costs_one_statement_on_postgresql(anon, make_license, django_assert_num_queries):
    """PostgreSQL: the lookup, the decision and the audit row are one statement; other
    databases run the lookup and the INSERT one after the other."""
    license = make_license()
    statements = 1 if connection.vendor == "postgresql" else 2
    with django_assert_num_queries(statements):
        assert validate(anon, license.token).json()["code"] == "VALID"
    with django_assert_num_queries(1):  # no lookup when the signature fails
        assert validate(anon, "x.y.z").json()["code"] == "MALFORMED"


def test_validate_ignores_an_api_key(make_license, admin):
    """Public: a key is neither needed nor looked up, and the actor stays `public`."""
    license = make_license()
    assert validate(admin, license.token).json()["code"] == "VALID"
    assert AuditLog.objects.latest("id").actor == "public"


# --- Malformed requests are 400 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"module_name": MODULE, "odoo_version": "17"}, "token"),
        ({"token": 123, "module_name": MODULE, "odoo_version": "17"}, "token"),
        ({"token": ["a"], "module_name": MODULE, "odoo_version": "17"}, "token"),
        ({"token": None, "module_name": MODULE, "odoo_version": "17"}, "token"),
        ({"token": "", "module_name": MODULE, "odoo_version": "17"}, "token"),
        ({"token": "a.b.c", "module_name": True, "odoo_version": "17"}, "module_name"),
        ({"token": "a.b.c", "module_name": MODULE, "odoo_version": 17}, "odoo_version"),
        ({"token": "a.b.c", "module_name": MODULE}, "odoo_version"),
        (
            {"token": "a.b.c", "module_name": MODULE, "odoo_version": "17", "fingerprint": 1},
            "fingerprint",
        ),
    ],
)
def test_malformed_request_is_400(anon, body, field):
    response = anon.post(URL, body, format="json")
    body = assert_error(response, 400, "validation_error")
    assert field in body["errors"]
    assert not AuditLog.objects.filter(event_type="license.validated").exists()


@pytest.mark.parametrize("payload", ["[]", '"token"', "null", "{"])
def test_body_that_is_not_an_object_is_400(anon, payload):
    response = anon.post(URL, payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] in {"validation_error", "parse_error"}


def test_validate_is_throttled_per_ip_before_any_database_work(
    anon, make_license, settings, django_assert_num_queries
):
    settings.THROTTLE_RATE_PUBLIC = "1/min"
    license = make_license()
    assert validate(anon, license.token).status_code == 200
    with django_assert_num_queries(0):
        response = validate(anon, license.token)
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_fingerprint_algorithm_matches_the_contract():
    assert compute_fingerprint(DB_UUID, DOMAIN) == BOUND_TO


def test_an_exp_beyond_the_calendar_does_not_break_the_answer(anon):
    response = validate(anon, sign(license_type="subscription", exp=2**62))
    assert response.status_code == 200
    assert response.json()["code"] == "UNKNOWN_LICENSE"
    assert response.json()["expires_at"] is None
