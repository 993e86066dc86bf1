"""The signed revocation list: what the server publishes and what an offline client accepts."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from licensing import revocations, signing
from licensing.services import SigningUnavailable, license_revoke
from licensing.verification import (
    REVOCATION_LIST_TYP,
    Code,
    ListRejection,
    RevocationListRejected,
    Verifier,
)
from tests.conftest import ACTOR, TEST_KID
from tests.offline.conftest import MODULE, client_verifier, offline_verifier, revocation_list


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def claims_of(token: str) -> dict:
    return json.loads(unb64(token.split(".")[1]))


def revoke(license):
    return license_revoke(actor=ACTOR, license_id=license.id, reason="Customer cancelled")


def test_the_list_is_a_signed_cacheable_document(client, db):
    response = client.get("/api/v1/licenses/revocations")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    body = response.json()
    assert set(body) == {"token", "seq", "expires_at"}
    header = jwt.get_unverified_header(body["token"])
    assert header == {"alg": "EdDSA", "typ": REVOCATION_LIST_TYP, "kid": TEST_KID}
    claims = claims_of(body["token"])
    assert set(claims) == {"iss", "iat", "exp", "seq", "revoked"}
    assert claims["revoked"] == [] and claims["seq"] == body["seq"] == 0
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert body["expires_at"] == dt.datetime.fromtimestamp(claims["exp"], dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # Any JOSE library verifies it with the public key.
    assert (
        jwt.decode(body["token"], signing.keyring().public_keys[TEST_KID], algorithms=["EdDSA"])
        == claims
    )

    again = client.get("/api/v1/licenses/revocations", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == response["ETag"]


def test_revoking_publishes_the_id_under_a_higher_seq(client, make_license):
    kept, revoked = make_license(), make_license()
    before = revocation_list(client)
    etag = client.get("/api/v1/licenses/revocations")["ETag"]
    revoke(revoked)

    response = client.get("/api/v1/licenses/revocations", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200  # the cached list was not served
    after = response.json()
    assert after["seq"] > before["seq"]
    assert claims_of(after["token"])["revoked"] == [str(revoked.id)]

    verifier = offline_verifier().with_revocation_list(after["token"], min_seq=before["seq"])
    assert verifier.revocation_list.seq == after["seq"]

    def code(license):
        return verifier.verify(license.token, module_name=MODULE, odoo_version="17.0").code

    assert code(revoked) is Code.REVOKED
    assert code(kept) is Code.VALID


def test_seq_never_decreases_and_ids_are_sorted(client, make_license):
    licenses = [make_license() for _ in range(4)]
    seqs = []
    for license in licenses:
        revoke(license)
        seqs.append(revocation_list(client)["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    listed = claims_of(revocation_list(client)["token"])["revoked"]
    assert listed == sorted(str(lic.id) for lic in licenses)


def test_module_filter_narrows_the_list_and_names_the_module(client, make_license):
    payroll = make_license()
    other = make_license(module_name="biz4a_accounting_ohada")
    revoke(payroll)
    revoke(other)
    body = revocation_list(client, module="biz4a_accounting_ohada")
    claims = claims_of(body["token"])
    assert claims["module"] == "biz4a_accounting_ohada"
    assert claims["revoked"] == [str(other.id)]
    assert body["seq"] == revocation_list(client)["seq"] == 2  # one sequence for all lists
    verified = offline_verifier().verify_revocation_list(body["token"])
    assert verified.module == "biz4a_accounting_ohada"


@pytest.mark.parametrize("module", ["", "Bad-Module", "x" * 200, "a;drop"])
def test_a_bad_module_is_a_400_in_the_error_shape(client, db, module):
    response = client.get("/api/v1/licenses/revocations", {"module": module})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error" and body["detail"]
    assert "module" in body["errors"]


def test_no_signing_key_is_a_503(client, db, settings, tmp_path):
    settings.PRIVATE_KEY_PATH = tmp_path / "absent.private.pem"
    response = client.get("/api/v1/licenses/revocations")
    assert response.status_code == 503
    assert response.json()["code"] == "signing_key_unavailable"


def test_the_list_is_signed_once_per_bucket_and_identical_across_calls(
    make_license, django_assert_num_queries
):
    revoke(make_license())
    now = timezone.now().replace(minute=0, second=0, microsecond=0)  # a bucket's start
    first = revocations.revocation_list_get(now=now)
    with django_assert_num_queries(1):  # the count; the ids and the signature come from cache
        second = revocations.revocation_list_get(now=now + dt.timedelta(seconds=1))
    assert second.token == first.token and second.etag == first.etag


def test_the_same_bucket_signs_the_same_bytes_without_a_cache(make_license):
    from django.core.cache import cache

    revoke(make_license())
    now = timezone.now()
    first = revocations.revocation_list_get(now=now)
    cache.clear()  # another worker, another cache: Ed25519 is deterministic
    assert revocations.revocation_list_get(now=now).token == first.token


# --- the offline verifier refuses what it must ----------------------------------------------


@pytest.fixture
def signed_list(client, make_license):
    revoke(make_license())
    return revocation_list(client)


def test_a_tampered_list_is_refused(signed_list):
    header, payload, signature = signed_list["token"].split(".")
    claims = json.loads(unb64(payload))
    claims["revoked"] = []  # an attacker "un-revokes" the license
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(RevocationListRejected) as excinfo:
        offline_verifier().with_revocation_list(forged)
    assert excinfo.value.reason is ListRejection.BAD_SIGNATURE


def test_a_list_signed_by_an_unknown_key_is_refused(signed_list):
    claims = claims_of(signed_list["token"])
    other = Ed25519PrivateKey.generate()
    for kid, reason in (
        (TEST_KID, ListRejection.BAD_SIGNATURE),
        ("elsewhere", ListRejection.UNKNOWN_KEY),
    ):
        token = jwt.encode(
            claims, other, algorithm="EdDSA", headers={"kid": kid, "typ": REVOCATION_LIST_TYP}
        )
        with pytest.raises(RevocationListRejected) as excinfo:
            offline_verifier().verify_revocation_list(token)
        assert excinfo.value.reason is reason


def test_an_expired_list_is_refused(signed_list):
    exp = claims_of(signed_list["token"])["exp"]
    assert offline_verifier(clock=lambda: exp - 1).verify_revocation_list(signed_list["token"])
    with pytest.raises(RevocationListRejected) as excinfo:
        offline_verifier(clock=lambda: exp).verify_revocation_list(signed_list["token"])
    assert excinfo.value.reason is ListRejection.EXPIRED


def test_a_replayed_older_list_is_refused(client, make_license):
    old = revocation_list(client)
    revoke(make_license())
    new = revocation_list(client)
    holder = offline_verifier().with_revocation_list(new["token"])
    with pytest.raises(RevocationListRejected) as excinfo:
        holder.with_revocation_list(old["token"])
    assert excinfo.value.reason is ListRejection.STALE
    with pytest.raises(RevocationListRejected):
        offline_verifier().verify_revocation_list(old["token"], min_seq=new["seq"])
    # The same seq again (re-signed later to extend its life) is accepted.
    assert holder.with_revocation_list(new["token"]).revocation_list.seq == new["seq"]


def test_a_list_from_another_issuer_is_refused(signed_list, settings):
    verifier = Verifier(signing.keyring().public_keys, "https://evil.example")
    with pytest.raises(RevocationListRejected) as excinfo:
        verifier.verify_revocation_list(signed_list["token"])
    assert excinfo.value.reason is ListRejection.WRONG_ISSUER


def test_a_list_is_never_a_license_nor_a_license_a_list(signed_list, make_license):
    verifier = offline_verifier()
    assert verifier.verify_token(signed_list["token"]).code is Code.MALFORMED
    assert (
        verifier.verify(signed_list["token"], module_name=MODULE, odoo_version="17").code
        is Code.MALFORMED
    )
    with pytest.raises(RevocationListRejected) as excinfo:
        verifier.verify_revocation_list(make_license().token)
    assert excinfo.value.reason is ListRejection.MALFORMED
    # Even a license-shaped list (typ JWT) or a list-shaped license (typ aegis-rl+jwt) fails.
    list_claims = claims_of(signed_list["token"])
    as_jwt, _ = signing.sign(list_claims)
    with pytest.raises(RevocationListRejected):
        verifier.verify_revocation_list(as_jwt)
    with pytest.raises(ValueError):
        signing.sign_revocation_list(claims_of(make_license().token))


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.pop("seq"),
        lambda c: c.update(seq=-1),
        lambda c: c.update(seq="3"),
        lambda c: c.pop("exp"),
        lambda c: c.update(revoked="all"),
        lambda c: c.update(revoked=["not-a-uuid"]),
        lambda c: c.update(module=7),
    ],
)
def test_a_mis_shaped_list_is_malformed_even_when_signed(signed_list, change):
    claims = claims_of(signed_list["token"])
    change(claims)
    token, _ = signing.sign_revocation_list(claims)
    with pytest.raises(RevocationListRejected) as excinfo:
        offline_verifier().verify_revocation_list(token)
    assert excinfo.value.reason is ListRejection.MALFORMED


def test_a_client_refreshing_from_jwks_accepts_the_list(client, signed_list):
    verifier = client_verifier(client).with_revocation_list(signed_list["token"])
    assert len(verifier.revocation_list.revoked) == 1


def test_signing_unavailable_raises_the_domain_error(db, settings, tmp_path):
    settings.PRIVATE_KEY_PATH = tmp_path / "absent.private.pem"
    with pytest.raises(SigningUnavailable):
        revocations.revocation_list_get()


def test_accepting_a_list_returns_a_new_verifier_and_keeps_known_revocations(
    signed_list, make_license
):
    base = offline_verifier(revoked={"0BFB0CEF-A864-400F-83D4-E8C6BD41DDA5"})
    holder = base.with_revocation_list(signed_list["token"])
    assert base.revocation_list is None and len(base.revoked) == 1  # unchanged
    assert holder.is_revoked("0bfb0cef-a864-400f-83d4-e8c6bd41dda5")  # ids compare as UUIDs
    assert holder.revoked >= set(claims_of(signed_list["token"])["revoked"])
    assert not holder.is_revoked(str(make_license().id))
