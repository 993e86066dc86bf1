"""The verified-token cache of the validate path keeps CONTRACT §2 intact.

The cache may only spare the Ed25519 check of a token it saw verify: a revocation, a
suspension, an expiry or a key compromise answers on the very next request, and a token
that differs by one byte from a cached one is verified in full.
"""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from customers.services import customer_update
from licensing import signing, validation
from licensing.services import license_revoke
from licensing.verification import Code, Verifier
from tests.conftest import ACTOR, TEST_KID

URL = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def cache():
    """The process's cache, emptied around each test, at its configured size."""
    tokens = validation.verified_tokens
    size = tokens.maxsize
    tokens.clear()
    yield tokens
    tokens.maxsize = size
    tokens.clear()


def verify(verifier, token):
    """What the validation service asks of the verifier for `token`, through the cache."""
    return verifier.check_expiry(validation.verified_tokens.verify_signature(verifier, token))


def code_of(client, token, **fields) -> str:
    body = {"token": token, "module_name": MODULE, "odoo_version": "17.0"} | fields
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 200
    return response.json()["code"]


def test_a_second_validation_skips_the_signature_check(client, make_license, cache):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    assert license.token in cache
    hits = cache.hits
    assert code_of(client, license.token) == "VALID"
    assert cache.hits == hits + 1


def test_revocation_answers_on_the_very_next_request_with_the_cache_on(client, make_license, cache):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    license_revoke(actor=ACTOR, license_id=license.id, reason="cancelled")
    hits = cache.hits
    assert code_of(client, license.token) == "REVOKED"
    assert cache.hits == hits + 1  # answered from the cache, and still REVOKED


def test_suspension_answers_on_the_very_next_request_with_the_cache_on(
    client, make_license, customer, cache
):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    assert code_of(client, license.token) == "SUSPENDED"
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=True)
    assert code_of(client, license.token) == "VALID"


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_token_one_byte_off_a_cached_one_is_verified_in_full(client, make_license, part):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    segments = license.token.split(".")
    # Flip one base64url character: the segment still decodes, to different bytes.
    flipped = segments[part][:-2] + ("A" if segments[part][-2] != "A" else "B")
    segments[part] = flipped + segments[part][-1]
    tampered = ".".join(segments)
    assert code_of(client, tampered) in {"MALFORMED", "BAD_SIGNATURE"}
    assert tampered not in validation.verified_tokens


def test_a_forged_token_reusing_a_cached_jti_is_refused(client, make_license):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    claims = jwt.decode(license.token, options={"verify_signature": False})
    claims["module"]["allowed_major_versions"] = ["17", "18", "19"]
    header = {"kid": TEST_KID, "typ": "JWT"}
    stranger = Ed25519PrivateKey.generate()
    forged = jwt.encode(claims, stranger, algorithm="EdDSA", headers=header)
    assert code_of(client, forged) == "BAD_SIGNATURE"


def test_failed_tokens_are_not_kept(client, cache):
    code_of(client, "not-a-token")
    code_of(client, jwt.encode({"x": 1}, Ed25519PrivateKey.generate(), algorithm="EdDSA"))
    assert len(cache) == 0


def test_expiry_is_decided_against_the_clock_on_a_cache_hit(make_license, cache):
    license = make_license(license_type="subscription", duration_days=30)
    exp = int(license.expires_at.timestamp())
    now = [exp - 1.0]
    verifier = Verifier(
        signing.keyring().public_keys, settings.LICENSE_ISSUER, clock=lambda: now[0]
    )
    assert verify(verifier, license.token).code is Code.VALID
    now[0] = exp
    hits = cache.hits
    result = verify(verifier, license.token)
    assert cache.hits == hits + 1
    assert result.code is Code.EXPIRED
    assert result.claims["jti"] == str(license.id)


def test_an_expired_token_stays_expired_from_the_cache(client, customer, cache):
    exp = int(time.time()) - 60
    claims = {
        "jti": str(uuid.uuid4()),
        "iss": settings.LICENSE_ISSUER,
        "iat": exp - 3600,
        "customer": {"id": customer.id, "name": customer.name},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17"]},
        "license_type": "subscription",
        "exp": exp,
    }
    token, _ = signing.sign(claims)
    assert code_of(client, token) == "EXPIRED"
    hits = cache.hits
    assert code_of(client, token) == "EXPIRED"
    assert cache.hits == hits + 1


def test_a_compromised_key_stops_its_cached_tokens_at_once(client, make_license, keys_dir):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    signing.mark_compromised(keys_dir, TEST_KID)
    assert code_of(client, license.token) == "UNKNOWN_KEY"


def test_a_new_issuer_stops_cached_tokens_at_once(client, make_license, settings):
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    settings.LICENSE_ISSUER = "https://elsewhere.example"
    assert code_of(client, license.token) == "WRONG_ISSUER"


def test_a_leeway_change_applies_to_cached_tokens(client, customer, settings):
    exp = int(time.time()) - 60
    claims = {
        "jti": str(uuid.uuid4()),
        "iss": settings.LICENSE_ISSUER,
        "iat": exp - 3600,
        "customer": {"id": customer.id, "name": customer.name},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17"]},
        "license_type": "subscription",
        "exp": exp,
    }
    token, _ = signing.sign(claims)
    assert code_of(client, token) == "EXPIRED"
    settings.VALIDATION_LEEWAY_SECONDS = 3600
    assert code_of(client, token) == "UNKNOWN_LICENSE"  # no longer expired; no such row


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(make_license, cache):
    cache.maxsize = 2
    verifier = validation.current_verifier()
    first, second, third = (make_license().token for _ in range(3))
    for token in (first, second):
        verify(verifier, token)
    verify(verifier, first)  # first is now the most recently used
    verify(verifier, third)
    assert len(cache) == 2
    assert first in cache and third in cache and second not in cache


def test_a_cache_of_size_zero_keeps_nothing_and_answers_the_same(client, make_license, cache):
    cache.maxsize = 0
    license = make_license()
    assert code_of(client, license.token) == "VALID"
    assert code_of(client, license.token) == "VALID"
    assert len(cache) == 0
