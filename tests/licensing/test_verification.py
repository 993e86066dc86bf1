"""The offline usage checks and the fingerprint algorithm of CONTRACT §1–§2."""

from __future__ import annotations

import hashlib

import pytest

from licensing import signing
from licensing.verification import Code, compute_fingerprint, instance_domain, odoo_major
from tests.licensing.test_signing import claims

FP = compute_fingerprint("abc", "erp.example.com")


def test_fingerprint_is_the_seed_algorithm():
    expected = "sha256:" + hashlib.sha256(b"abc:erp.example.com").hexdigest()
    assert expected == FP
    # A full web.base.url reduces to its network location, port kept, nothing else changed.
    assert compute_fingerprint("abc", "https://erp.example.com/web") == expected
    assert instance_domain("http://erp.example.com:8069/") == "erp.example.com:8069"
    assert instance_domain("https://user:pw@erp.example.com") == "erp.example.com"
    assert instance_domain("ERP.example.com") == "ERP.example.com"


@pytest.mark.parametrize(
    ("version", "major"),
    [
        ("17", "17"),
        ("17.0", "17"),
        ("17.0+e", "17"),
        ("saas~17.2", "17"),
        ("18.0", "18"),
        ("banana", None),
        ("", None),
        ("17.x", None),
    ],
)
def test_odoo_major(version, major):
    assert odoo_major(version) == major


def usage(token_claims, **kwargs):
    params = {"module_name": "biz4a_payroll_drc", "odoo_version": "17.0"} | kwargs
    return signing.verifier().check_usage(token_claims, **params).code


def test_usage_checks_in_contract_order():
    c = claims(instance_fingerprint=FP)
    assert usage(c, module_name="other_module", odoo_version="99") is Code.MODULE_MISMATCH
    assert usage(c, odoo_version="16.0") is Code.VERSION_NOT_ALLOWED
    assert usage(c) is Code.FINGERPRINT_REQUIRED
    assert usage(c, instance_db_uuid="abc") is Code.FINGERPRINT_REQUIRED
    assert (
        usage(c, instance_db_uuid="abd", instance_domain="erp.example.com")
        is Code.FINGERPRINT_MISMATCH
    )
    assert usage(c, fingerprint="sha256:" + "0" * 64) is Code.FINGERPRINT_MISMATCH
    assert usage(c, instance_db_uuid="abc", instance_domain="https://erp.example.com") is Code.VALID
    assert usage(c, fingerprint=FP) is Code.VALID


def test_unbound_license_ignores_instance_details():
    assert usage(claims(), instance_db_uuid="x", instance_domain="y") is Code.VALID


def test_offline_verify_answers_revoked_for_listed_ids():
    c = claims()
    token, _ = signing.sign(c)
    assert (
        signing.verifier().verify(token, module_name="biz4a_payroll_drc", odoo_version="18").valid
    )
    revoked = signing.verifier(revoked={c["jti"]})
    assert (
        revoked.verify(token, module_name="biz4a_payroll_drc", odoo_version="18").code
        is Code.REVOKED
    )
