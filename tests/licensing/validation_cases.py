"""One validate request per code of CONTRACT §2, built with the services on the database Django
uses: the parity tests run them on PostgreSQL, and on SQLite in a process of its own."""

from __future__ import annotations

import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from customers.services import customer_create, customer_update
from licensing import seats, services, signing

MODULE = "biz4a_payroll_drc"
BOUND_TO = "sha256:" + "a" * 64
# The instance holding the seat of the license with a seat limit, and one that holds none.
SEATED = {"instance_db_uuid": "db-seated", "instance_domain": "erp.example.com"}
UNSEATED = {"instance_db_uuid": "db-unseated", "instance_domain": "erp.example.com"}
ACTOR = "user:tester"


# The code of each case of `build_cases`, in order.
CODES = [
    "MALFORMED",
    "UNKNOWN_KEY",
    "BAD_SIGNATURE",
    "WRONG_ISSUER",
    "EXPIRED",
    "UNKNOWN_LICENSE",
    "REVOKED",
    "SUSPENDED",
    "MODULE_MISMATCH",
    "VERSION_NOT_ALLOWED",
    "FINGERPRINT_REQUIRED",
    "FINGERPRINT_MISMATCH",
    "NOT_ACTIVATED",
    "VALID",
    "VALID",
    "VALID",
]
# Codes decided before the license row is looked up: their audit row has no license id.
UNLOOKED = {"MALFORMED", "UNKNOWN_KEY", "BAD_SIGNATURE", "WRONG_ISSUER", "EXPIRED"}


def body(token: str, **fields) -> dict:
    return {"token": token, "module_name": MODULE, "odoo_version": "17.0"} | fields


def build_cases() -> list[tuple[str, dict]]:
    """(expected code, request body) for every code validate answers, in the contract's
    order, VALID three times (unbound, bound, and with a seat of a license with a seat
    limit). Creates the customers, licenses and the activation they need."""
    active = customer_create(actor=ACTOR, id="CUST-PAR", name="Parity", email="p@example.com")
    held = customer_create(actor=ACTOR, id="CUST-HELD", name="Held", email="h@example.com")

    def issue(customer, **fields):
        return services.license_issue(
            actor=ACTOR,
            customer_id=customer.id,
            module_name=MODULE,
            allowed_major_versions=["17"],
            license_type="perpetual",
            **fields,
        )

    valid, revoked, suspended = issue(active), issue(active), issue(held)
    bound = issue(active, instance_fingerprint=BOUND_TO)
    seated = issue(active, max_instances=1)
    taken = seats.license_activate(
        token=seated.token, module_name=MODULE, odoo_version="17.0", **SEATED
    )
    assert taken.outcome.valid, taken.outcome.code
    # A heartbeat of the same instance (its own statement) keeps the same seat.
    again = seats.license_activate(
        token=seated.token, module_name=MODULE, odoo_version="17.0", **SEATED
    )
    assert again.activation.pk == taken.activation.pk, (again.outcome.code, again.activation)
    services.license_revoke(actor=ACTOR, license_id=revoked.id, reason="parity")
    customer_update(actor=ACTOR, customer_id=held.id, is_active=False)
    claims = jwt.decode(valid.token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(valid.token)["kid"]
    stranger = Ed25519PrivateKey.generate()
    later = {"license_type": "subscription", "exp": int(time.time()) - 60}
    return [
        ("MALFORMED", body("not-a-token")),
        ("UNKNOWN_KEY", body(jwt.encode(claims, stranger, "EdDSA", headers={"kid": "nobody"}))),
        ("BAD_SIGNATURE", body(jwt.encode(claims, stranger, "EdDSA", headers={"kid": kid}))),
        ("WRONG_ISSUER", body(signing.sign(claims | {"iss": "https://elsewhere.example"})[0])),
        ("EXPIRED", body(signing.sign(claims | later)[0])),
        ("UNKNOWN_LICENSE", body(signing.sign(claims | {"jti": str(uuid.uuid4())})[0])),
        ("REVOKED", body(revoked.token)),
        ("SUSPENDED", body(suspended.token)),
        ("MODULE_MISMATCH", body(valid.token, module_name="other_module")),
        ("VERSION_NOT_ALLOWED", body(valid.token, odoo_version="12.0")),
        ("FINGERPRINT_REQUIRED", body(bound.token)),
        ("FINGERPRINT_MISMATCH", body(bound.token, fingerprint="sha256:" + "b" * 64)),
        ("NOT_ACTIVATED", body(seated.token, **UNSEATED)),
        ("VALID", body(valid.token)),
        ("VALID", body(bound.token, fingerprint=BOUND_TO)),
        ("VALID", body(seated.token, **SEATED)),
    ]


def revoke_all(token: str) -> None:
    """Revoke the license of `token` (for "REVOKED on the very next request")."""
    license_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    services.license_revoke(actor=ACTOR, license_id=license_id, reason="next request")
