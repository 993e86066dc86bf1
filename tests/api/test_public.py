"""The public endpoints, whole responses: fingerprint, /health, /info (CONTRACT §3–§4)."""

from __future__ import annotations

import hashlib

import pytest

from licensing import signing
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db
FINGERPRINT = "/api/v1/licenses/fingerprint"
EXPECTED = "sha256:" + hashlib.sha256(b"abc:erp.example.com").hexdigest()


def test_fingerprint(anon):
    response = anon.post(FINGERPRINT, {"db_uuid": "abc", "domain": "erp.example.com"})
    assert response.status_code == 200
    assert response.json() == {
        "fingerprint": EXPECTED,
        "db_uuid": "abc",
        "domain": "erp.example.com",
        "algorithm": "sha256-dbuuid-domain",
    }


def test_fingerprint_of_a_full_url_hashes_its_host(anon):
    response = anon.post(
        FINGERPRINT, {"db_uuid": "abc", "domain": "https://erp.example.com/web?db=x"}
    )
    assert response.json() == {
        "fingerprint": EXPECTED,
        "db_uuid": "abc",
        "domain": "erp.example.com",
        "algorithm": "sha256-dbuuid-domain",
    }


def test_fingerprint_keeps_the_port_and_no_other_normalisation(anon):
    response = anon.post(FINGERPRINT, {"db_uuid": "abc", "domain": "ERP.example.com:8069"})
    assert response.json()["fingerprint"] == (
        "sha256:" + hashlib.sha256(b"abc:ERP.example.com:8069").hexdigest()
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domain": "erp.example.com"}, "db_uuid"),
        ({"db_uuid": "abc"}, "domain"),
        ({"db_uuid": 1, "domain": "erp.example.com"}, "db_uuid"),
        ({"db_uuid": "abc", "domain": ["x"]}, "domain"),
    ],
)
def test_fingerprint_bad_request_is_400(anon, body, field):
    assert field in assert_error(anon.post(FINGERPRINT, body), 400, "validation_error")["errors"]


def test_health(anon, settings):
    response = anon.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "version": settings.AEGIS_VERSION,
        "environment": settings.ENVIRONMENT,
        "database": "ok",
        "signing_key": "ok",
    }


def test_health_without_a_signing_key_is_503(anon, keys_dir, settings):
    (keys_dir / "aegis-test-01.private.pem").unlink()
    signing.reset()
    response = anon.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "version": settings.AEGIS_VERSION,
        "environment": settings.ENVIRONMENT,
        "database": "ok",
        "signing_key": "unavailable",
    }
    assert str(keys_dir) not in response.content.decode()  # no paths leak


@pytest.mark.django_db(transaction=True)
def test_health_with_the_database_unreachable_is_503(anon, closed_database, settings):
    with closed_database():
        response = anon.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "version": settings.AEGIS_VERSION,
        "environment": settings.ENVIRONMENT,
        "database": "unavailable",
        "signing_key": "ok",
    }
    assert anon.get("/health").status_code == 200  # and it recovers


def test_info(anon, settings, keys_dir):
    signing.write_keypair(keys_dir, "aegis-2025-01")  # an older key still verifies
    response = anon.get("/info")
    assert response.status_code == 200
    assert response.json() == {
        "app_name": "AEGIS License Server",
        "version": settings.AEGIS_VERSION,
        "environment": settings.ENVIRONMENT,
        "issuer": "https://license.biz4a.com",
        "key_id": "aegis-test-01",
        "verification_key_ids": ["aegis-2025-01", "aegis-test-01"],
        "api_version": "v1",
        "license_types": ["perpetual", "subscription", "demo"],
    }


@pytest.mark.parametrize("path", ["/health", "/info", "/health/", "/info/"])
def test_system_routes_need_no_key_and_ignore_a_bad_one(anon, path):
    assert anon.get(path).status_code == 200
    anon.credentials(HTTP_X_API_KEY="bogus")
    assert anon.get(path).status_code == 200
