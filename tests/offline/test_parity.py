"""One table of cases, one code: the server's validate endpoint and an offline client
(keys from JWKS, the signed revocation list) answer every case alike."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from licensing import services, signing
from tests.conftest import ACTOR
from tests.offline.conftest import MODULE, client_verifier, revocation_list, validate_online

DB_UUID = "6f1c7a52-8b0e-4c9e-9a57-0d2f5e1b9c11"
DOMAIN = "erp.acme.example:8069"
FINGERPRINT = "sha256:" + hashlib.sha256(f"{DB_UUID}:{DOMAIN}".encode()).hexdigest()


def _claims(**overrides):
    now = int(time.time())
    claims = {
        "jti": str(uuid.uuid4()),
        "iss": settings.LICENSE_ISSUER,
        "iat": now - 86400 * 40,
        "customer": {"id": "CUST-001", "name": "Acme Corporation"},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17", "18"]},
        "license_type": "subscription",
        "exp": now - 86400 * 5,
    }
    claims.update(overrides)
    return claims


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["module"]["allowed_major_versions"].append("19")
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.fixture
def world(make_license):
    """Every kind of token, after one revocation, with the server's current documents."""
    plain = make_license()
    bound = make_license(instance_fingerprint=FINGERPRINT)
    revoked = make_license()
    services.license_revoke(actor=ACTOR, license_id=revoked.id, reason="Chargeback")
    # An expired subscription: signed like any license, registered as a real one.
    expired_token, _ = signing.sign(_claims())
    services.license_import(actor=ACTOR, token=expired_token)
    stranger = Ed25519PrivateKey.generate()
    return {
        "plain": plain.token,
        "bound": bound.token,
        "revoked": revoked.token,
        "expired": expired_token,
        "tampered": _tamper(plain.token),
        "unknown_kid": jwt.encode(
            _claims(exp=int(time.time()) + 3600),
            stranger,
            algorithm="EdDSA",
            headers={"kid": "somebody-else", "typ": "JWT"},
        ),
        "wrong_issuer": signing.sign(_claims(iss="https://evil.example", exp=2_000_000_000))[0],
        "garbage": "not.a.token",
    }


CASES = [
    ("valid", "plain", {}, "VALID"),
    ("expired", "expired", {}, "EXPIRED"),
    ("tampered", "tampered", {}, "BAD_SIGNATURE"),
    ("unknown kid", "unknown_kid", {}, "UNKNOWN_KEY"),
    ("wrong issuer", "wrong_issuer", {}, "WRONG_ISSUER"),
    ("malformed", "garbage", {}, "MALFORMED"),
    ("wrong module", "plain", {"module_name": "biz4a_accounting_ohada"}, "MODULE_MISMATCH"),
    ("wrong version", "plain", {"odoo_version": "16.0"}, "VERSION_NOT_ALLOWED"),
    ("saas version", "plain", {"odoo_version": "saas~18.2"}, "VALID"),
    ("unbound with instance", "plain", {"instance_db_uuid": "x", "instance_domain": "y"}, "VALID"),
    ("bound, no instance", "bound", {}, "FINGERPRINT_REQUIRED"),
    ("bound, half an instance", "bound", {"instance_db_uuid": DB_UUID}, "FINGERPRINT_REQUIRED"),
    (
        "bound, wrong instance",
        "bound",
        {"instance_db_uuid": DB_UUID, "instance_domain": "erp.other.example"},
        "FINGERPRINT_MISMATCH",
    ),
    (
        "bound, wrong fingerprint",
        "bound",
        {"fingerprint": "sha256:" + "0" * 64},
        "FINGERPRINT_MISMATCH",
    ),
    (
        "bound, right instance",
        "bound",
        {"instance_db_uuid": DB_UUID, "instance_domain": f"http://{DOMAIN}/web"},
        "VALID",
    ),
    ("bound, right fingerprint", "bound", {"fingerprint": FINGERPRINT}, "VALID"),
    ("revoked", "revoked", {}, "REVOKED"),
]


@pytest.mark.parametrize(
    ("token_name", "request_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_online_and_offline_give_the_same_code(client, world, token_name, request_, expected):
    token = world[token_name]
    params = {"module_name": MODULE, "odoo_version": "17.0"} | request_

    offline = client_verifier(client).with_revocation_list(revocation_list(client)["token"])
    offline_code = offline.verify(token, **params).code.value
    online_code = validate_online(client, token, **params)

    assert (online_code, offline_code) == (expected, expected)
