"""The signer and the verifier: every failure maps to its contract code, never an exception."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licensing import signing
from licensing.verification import Code, Verifier
from tests.conftest import INTEROP, TEST_KID

ISSUER = "https://license.biz4a.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def claims(**overrides):
    base = {
        "jti": str(uuid.uuid4()),
        "iss": ISSUER,
        "iat": int(time.time()),
        "customer": {"id": "CUST-001", "name": "Acme"},
        "module": {"technical_name": "biz4a_payroll_drc", "allowed_major_versions": ["17", "18"]},
        "license_type": "perpetual",
    }
    base.update(overrides)
    return base


def forge(header: dict, payload: dict, signature: bytes = b"\x00" * 64) -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def public_raw() -> bytes:
    key = signing.keyring().public_keys[TEST_KID]
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_round_trip_perpetual_has_no_exp():
    token, kid = signing.sign(claims())
    assert kid == TEST_KID
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT", "kid": TEST_KID}
    result = signing.verifier().verify_token(token)
    assert result.code is Code.VALID
    assert "exp" not in result.claims


def test_subscription_round_trip_keeps_integer_exp():
    exp = int(time.time()) + 3600
    token, _ = signing.sign(claims(license_type="subscription", exp=exp))
    result = signing.verifier().verify_token(token)
    assert result.code is Code.VALID and result.claims["exp"] == exp


def test_expired_with_a_frozen_clock_and_leeway():
    exp = 2_000_000_000
    token, _ = signing.sign(claims(license_type="demo", exp=exp))
    keys = signing.keyring().public_keys
    assert Verifier(keys, ISSUER, clock=lambda: exp - 1).verify_token(token).code is Code.VALID
    assert Verifier(keys, ISSUER, clock=lambda: exp).verify_token(token).code is Code.EXPIRED
    assert (
        Verifier(keys, ISSUER, clock=lambda: exp, leeway=5).verify_token(token).code is Code.VALID
    )


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampering_any_part_is_detected(part):
    token, _ = signing.sign(claims())
    segments = token.split(".")
    if part == 0:  # a header that still parses, with another (but valid) shape
        segments[0] = b64(json.dumps({"alg": "EdDSA", "kid": TEST_KID, "typ": "JWT"}).encode())
    elif part == 1:
        payload = json.loads(unb64(segments[1]))
        payload["customer"]["name"] = "Mallory"
        segments[1] = b64(json.dumps(payload).encode())
    else:
        sig = bytearray(unb64(segments[2]))
        sig[10] ^= 0x01
        segments[2] = b64(bytes(sig))
    result = signing.verifier().verify_token(".".join(segments))
    assert result.code is Code.BAD_SIGNATURE
    assert result.claims is None


def test_token_signed_by_another_key_with_our_kid():
    other = Ed25519PrivateKey.generate()
    token = jwt.encode(claims(), other, algorithm="EdDSA", headers={"kid": TEST_KID})
    assert signing.verifier().verify_token(token).code is Code.BAD_SIGNATURE


def test_unknown_and_missing_kid():
    other = Ed25519PrivateKey.generate()
    unknown = jwt.encode(claims(), other, algorithm="EdDSA", headers={"kid": "elsewhere"})
    missing = jwt.encode(claims(), other, algorithm="EdDSA")
    assert signing.verifier().verify_token(unknown).code is Code.UNKNOWN_KEY
    assert signing.verifier().verify_token(missing).code is Code.UNKNOWN_KEY


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS256", "RS256", "ES256"])
def test_header_other_than_eddsa_is_malformed(alg):
    token = forge({"alg": alg, "typ": "JWT", "kid": TEST_KID}, claims(), b"")
    token = token if alg.lower() != "none" else token.rstrip(".") + "."
    assert signing.verifier().verify_token(token).code is Code.MALFORMED


@pytest.mark.parametrize("form", ["raw", "pem", "hex"])
def test_hs256_signed_with_our_public_key_as_secret(form):
    raw = public_raw()
    secret = {
        "raw": raw,
        "pem": signing.public_key_pem(signing.keyring().public_keys[TEST_KID]).encode(),
        "hex": raw.hex().encode(),
    }[form]
    header = {"alg": "HS256", "typ": "JWT", "kid": TEST_KID}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert signing.verifier().verify_token(token).code is Code.MALFORMED


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "..", "eyJ.eyJ.", "not a token at all", "a" * 20000, None, 123],
)
def test_garbage_is_malformed(token):
    assert signing.verifier().verify_token(token).code is Code.MALFORMED


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.pop("jti"),
        lambda c: c.pop("iss"),
        lambda c: c.update(jti="not-a-uuid"),
        lambda c: c.update(license_type="lifetime"),
        lambda c: c.update(exp=None),  # perpetual with a null exp
        lambda c: c.update(license_type="subscription"),  # subscription without exp
        lambda c: c.update(license_type="demo", exp="2030-01-01"),
        lambda c: c["module"].pop("allowed_major_versions"),
        lambda c: c.update(instance_fingerprint="sha256:XYZ"),
    ],
)
def test_missing_or_mistyped_claims_are_malformed_even_when_signed(change):
    payload = claims()
    change(payload)
    token, _ = signing.sign(payload)
    assert signing.verifier().verify_token(token).code is Code.MALFORMED


def test_wrong_issuer_still_reports_claims():
    token, _ = signing.sign(claims(iss="https://evil.example"))
    result = signing.verifier().verify_token(token)
    assert result.code is Code.WRONG_ISSUER
    assert result.claims["customer"]["id"] == "CUST-001"


def test_extra_header_parameters_are_refused():
    for extra in ({"jku": "http://127.0.0.1:1/jwks"}, {"crit": ["exp"]}, {"x5u": "http://x"}):
        token, _ = signing.sign(claims())
        header = {"alg": "EdDSA", "typ": "JWT", "kid": TEST_KID, **extra}
        segments = token.split(".")
        segments[0] = b64(json.dumps(header).encode())
        assert signing.verifier().verify_token(".".join(segments)).code is Code.MALFORMED


def test_odoo_client_verifies_with_pyjwt_and_the_public_pem_only(make_license):
    license = make_license()
    pem = signing.keyring().public_keys[TEST_KID]
    decoded = jwt.decode(
        license.token,
        serialization.load_pem_public_key(signing.public_key_pem(pem).encode()),
        algorithms=["EdDSA"],
        options={"require": ["jti", "iss", "iat"]},
    )
    assert decoded["jti"] == str(license.id)
    assert "exp" not in decoded


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("example-perpetual.jwt", Code.VALID),
        ("example-bound.jwt", Code.VALID),
        ("example-demo.jwt", Code.EXPIRED),  # expired on 2026-03-05
    ],
)
def test_v08_tokens_verify_once_their_public_key_is_in_the_keys_folder(keys_dir, name, code):
    token = (INTEROP / name).read_text().strip()
    assert signing.verifier().verify_token(token).code is Code.UNKNOWN_KEY
    shutil.copy(INTEROP / "aegis-2026-01.public.pem", keys_dir / "aegis-2026-01.public.pem")
    signing.reset()
    result = signing.verifier().verify_token(token)
    assert result.code is code
    assert result.header["kid"] == "aegis-2026-01"


def test_jwks_lists_public_keys_only():
    keys = signing.jwks()["keys"]
    assert [k["kid"] for k in keys] == [TEST_KID]
    assert set(keys[0]) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert unb64(keys[0]["x"]) == public_raw()


def test_missing_signing_key_is_reported_not_raised(settings, tmp_path):
    settings.PRIVATE_KEY_PATH = tmp_path / "absent.private.pem"
    assert "not found" in signing.signing_key_status()
    with pytest.raises(signing.SigningKeyUnavailable):
        signing.sign(claims())


def test_encrypted_private_key_needs_its_passphrase(settings, tmp_path):
    signing.write_keypair(tmp_path, "enc", passphrase="correct horse")
    settings.PRIVATE_KEY_PATH = tmp_path / "enc.private.pem"
    settings.KEY_ID = "enc"
    settings.PRIVATE_KEY_PASSPHRASE = "wrong"
    assert "PRIVATE_KEY_PASSPHRASE" in signing.signing_key_status()
    settings.PRIVATE_KEY_PASSPHRASE = "correct horse"
    token, kid = signing.sign(claims())
    assert kid == "enc"
    assert signing.verifier().verify_token(token).code is Code.VALID


def test_private_key_file_is_created_with_mode_0600(tmp_path):
    private, _public = signing.write_keypair(tmp_path, "k1")
    assert private.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        signing.write_keypair(tmp_path, "k1")
