"""`GET /.well-known/jwks.json`: every verifying key, public parts only, cacheable."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from licensing import signing
from licensing.verification import keys_from_jwks
from tests.conftest import TEST_KID
from tests.offline.conftest import V08_KID, V08_PEM, run


def raw(key) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_jwks_lists_public_parts_only_with_caching_headers(client, db):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')
    (jwk,) = response.json()["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": TEST_KID,
        "use": "sig",
        "alg": "EdDSA",
    }
    x = base64.urlsafe_b64decode(jwk["x"] + "=")
    assert x == raw(signing.keyring().public_keys[TEST_KID])


def test_if_none_match_gets_a_304_until_the_keys_change(client, db):
    etag = client.get("/.well-known/jwks.json")["ETag"]
    unchanged = client.get("/.well-known/jwks.json", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged["Cache-Control"] == "public, max-age=300"

    run("import_public_key", str(V08_PEM), "--key-id", V08_KID)
    changed = client.get("/.well-known/jwks.json", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert [k["kid"] for k in changed.json()["keys"]] == [V08_KID, TEST_KID]


def test_needs_no_api_key_and_refuses_writes(client, db):
    assert client.get("/.well-known/jwks.json", HTTP_X_API_KEY="bogus.key").status_code == 200
    assert client.post("/.well-known/jwks.json").status_code == 405


def test_keys_from_jwks_keeps_only_ed25519_signature_keys(client, db):
    document = client.get("/.well-known/jwks.json").json()
    good = document["keys"][0]
    document["keys"] += [
        {**good, "kid": "with-private", "d": good["x"]},
        {**good, "kid": "for-encryption", "use": "enc"},
        {**good, "kid": "other-alg", "alg": "ES256"},
        {**good, "kid": "x25519", "crv": "X25519"},
        {**good, "kid": "short", "x": good["x"][:10]},
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        {k: v for k, v in good.items() if k != "kid"},
        "not a dict",
    ]
    keys = keys_from_jwks(document)
    assert list(keys) == [TEST_KID]
    assert raw(keys[TEST_KID]) == raw(signing.keyring().public_keys[TEST_KID])


@pytest.mark.parametrize("document", [None, [], {"keys": "x"}, {"nokeys": []}])
def test_keys_from_jwks_refuses_what_is_not_a_jwks(document):
    with pytest.raises(ValueError):
        keys_from_jwks(document)


def test_both_documents_are_in_the_openapi_schema(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "get" in paths["/.well-known/jwks.json"]
    operation = paths["/api/v1/licenses/revocations"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["module"]
    assert not operation.get("security") or operation["security"] == [{}]
