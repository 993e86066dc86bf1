"""Leases offline (CONTRACT §9): what an activated instance verifies without the server —
with any JOSE library, never mistaken for a license (nor a license for a lease), revoked by
a revocation list when its seat is released."""

from __future__ import annotations

import datetime as dt
import io
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from licensing import seats
from licensing.models import Activation
from licensing.services import license_revoke
from licensing.verification import compute_fingerprint
from tests.conftest import ACTOR, TEST_KID
from tests.offline.conftest import (
    MODULE,
    client_verifier,
    offline_verifier,
    revocation_list,
    validate_online,
)

pytestmark = pytest.mark.django_db

INSTANCE = {"instance_db_uuid": "db-1", "instance_domain": "erp.acme.example"}
FP = compute_fingerprint("db-1", "erp.acme.example")


def activated(license, **instance) -> seats.Activated:
    result = seats.license_activate(
        token=license.token, module_name=MODULE, odoo_version="17.0", **(INSTANCE | instance)
    )
    assert result.outcome.valid, result.outcome.code
    return result


def test_a_lease_verifies_with_pyjwt_and_the_published_jwks(client, make_license):
    license = make_license(license_type="subscription", duration_days=60)
    result = activated(license)
    jwks = client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(result.lease)
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]

    claims = jwt.decode(
        result.lease,
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        issuer=settings.LICENSE_ISSUER,
        options={"require": ["exp", "iat", "iss", "jti"]},
    )

    assert header == {"alg": "EdDSA", "typ": "aegis-lease+jwt", "kid": TEST_KID}
    assert claims["jti"] == str(result.activation.id)
    assert claims["lic"] == str(license.id)
    assert claims["instance_fingerprint"] == FP
    assert claims["exp"] == int(result.activation.lease_expires_at.timestamp())
    assert client_verifier(client).verify_lease(
        result.lease, module_name=MODULE, odoo_version="17.0", fingerprint=FP
    ).code == ("VALID")


def test_a_lease_of_a_perpetual_license_expires(make_license):
    result = activated(make_license())
    claims = jwt.decode(result.lease, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == settings.LEASE_TTL_DAYS * 86400
    later = offline_verifier(clock=lambda: claims["exp"])
    assert later.verify_lease(
        result.lease, module_name=MODULE, odoo_version="17", **INSTANCE
    ).code == ("EXPIRED")


def test_a_lease_is_checked_with_the_license_codes_against_its_own_instance(make_license):
    lease = activated(make_license(allowed_major_versions=["17"])).lease
    verifier = offline_verifier()

    def code(**request) -> str:
        arguments = {"module_name": MODULE, "odoo_version": "17.0"} | request
        return verifier.verify_lease(lease, **arguments).code.value

    assert code(**INSTANCE) == "VALID"
    assert code(fingerprint=FP) == "VALID"
    assert code() == "FINGERPRINT_REQUIRED"  # a lease always names its instance
    assert code(instance_db_uuid="db-1", instance_domain="copy.example") == "FINGERPRINT_MISMATCH"
    assert code(module_name="other_module", **INSTANCE) == "MODULE_MISMATCH"
    assert code(odoo_version="18.0", **INSTANCE) == "VERSION_NOT_ALLOWED"
    header, _, signature = lease.split(".")
    other = activated(make_license(), instance_db_uuid="db-2").lease.split(".")[1]
    assert verifier.verify_lease(
        f"{header}.{other}.{signature}", module_name=MODULE, odoo_version="17", fingerprint=FP
    ).code == ("BAD_SIGNATURE")
    stranger = jwt.encode(
        jwt.decode(lease, options={"verify_signature": False}),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "stranger", "typ": "aegis-lease+jwt"},
    )
    assert verifier.verify_lease(
        stranger, module_name=MODULE, odoo_version="17", fingerprint=FP
    ).code == ("UNKNOWN_KEY")


def test_a_lease_never_passes_as_a_license_nor_a_license_as_a_lease(client, make_license):
    license = make_license()
    lease = activated(license).lease
    verifier = offline_verifier()

    assert verifier.verify(lease, module_name=MODULE, odoo_version="17", **INSTANCE).code == (
        "MALFORMED"
    )
    assert verifier.verify_token(lease).code == "MALFORMED"
    assert validate_online(client, lease, **INSTANCE) == "MALFORMED"
    assert verifier.verify_lease(
        license.token, module_name=MODULE, odoo_version="17", **INSTANCE
    ).code == ("MALFORMED")
    # Nor does a lease's claims set under a license's header: the header is signed.
    _, payload, signature = lease.split(".")
    license_header = license.token.split(".")[0]
    assert verifier.verify_token(f"{license_header}.{payload}.{signature}").code in {
        "MALFORMED",
        "BAD_SIGNATURE",
    }
    # An activation with a lease instead of the license is refused as such.
    refused = seats.license_activate(token=lease, module_name=MODULE, odoo_version="17", **INSTANCE)
    assert refused.outcome.code == "MALFORMED" and refused.lease is None


def test_a_released_seat_revokes_its_lease_through_the_revocation_list(client, make_license):
    license = make_license(max_instances=2)
    kept = activated(license, instance_db_uuid="db-kept")
    released = activated(license)
    seats.license_deactivate(token=license.token, **INSTANCE)
    listed = revocation_list(client)

    verifier = client_verifier(client).with_revocation_list(listed["token"])

    assert listed["seq"] == 1
    assert verifier.verify_lease(
        released.lease, module_name=MODULE, odoo_version="17", **INSTANCE
    ).code == ("REVOKED")
    kept_instance = INSTANCE | {"instance_db_uuid": "db-kept"}
    assert verifier.verify_lease(
        kept.lease, module_name=MODULE, odoo_version="17", **kept_instance
    ).code == ("VALID")
    # Revoking the license revokes every lease of it (by `lic`).
    license_revoke(actor=ACTOR, license_id=license.id, reason="chargeback")
    newer = client_verifier(client).with_revocation_list(
        revocation_list(client)["token"], min_seq=2
    )
    assert newer.revocation_list.seq == 2
    assert newer.verify_lease(
        kept.lease, module_name=MODULE, odoo_version="17", **kept_instance
    ).code == ("REVOKED")


def test_a_released_lease_leaves_the_list_once_it_has_run_out(client, make_license):
    license = make_license()
    activated(license)
    seats.license_deactivate(token=license.token, **INSTANCE)
    Activation.objects.update(lease_expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    listed = revocation_list(client)
    verifier = client_verifier(client).with_revocation_list(listed["token"])
    assert listed["seq"] == 1 and verifier.revocation_list.revoked == frozenset()


def run_lease(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_license", *args, "--lease", stdout=out, stderr=io.StringIO())
    except CommandError as error:
        return error.returncode, out.getvalue()
    return 0, out.getvalue()


def test_verify_license_checks_a_lease(client, make_license, tmp_path):
    license = make_license()
    lease = activated(license).lease
    usage = ["--module", MODULE, "--odoo-version", "17.0"]

    assert run_lease(lease)[0] == 0
    status, out = run_lease(lease, *usage, "--db-uuid", "db-1", "--domain", "erp.acme.example")
    assert (status, out.splitlines()[0]) == (0, "VALID")
    assert run_lease(lease, *usage, "--fingerprint", FP)[0] == 0
    status, out = run_lease(lease, *usage)
    assert (status, out.splitlines()[0]) == (1, "FINGERPRINT_REQUIRED")
    status, out = run_lease(license.token, *usage, "--fingerprint", FP)
    assert (status, out.splitlines()[0]) == (1, "MALFORMED")
    seats.license_deactivate(token=license.token, **INSTANCE)
    listed = tmp_path / "revocations.json"
    listed.write_text(json.dumps(revocation_list(client)))
    status, out = run_lease(lease, "--revocation-list", str(listed), "--json")
    assert status == 1 and json.loads(out)["code"] == "REVOKED"
