"""Helpers for the offline kit: a client's view (public keys only, JWKS, revocation list)
and the server's (the validate endpoint)."""

from __future__ import annotations

import io
import shutil

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command

from licensing import signing
from licensing.verification import Verifier, keys_from_jwks
from tests.conftest import INTEROP

MODULE = "biz4a_payroll_drc"
V08_KID = "aegis-2026-01"
V08_PEM = INTEROP / f"{V08_KID}.public.pem"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Signed revocation lists are cached; every test starts without one.
    cache.clear()
    yield
    cache.clear()


def offline_verifier(**kwargs) -> Verifier:
    """What `verify_license` and an Odoo client hold: the public keys of the keys folder."""
    return Verifier(signing.load_public_keys(settings.KEYS_DIR), settings.LICENSE_ISSUER, **kwargs)


def client_verifier(client, **kwargs) -> Verifier:
    """What an online-refreshed Odoo client holds: the keys of the server's JWKS."""
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return Verifier(keys_from_jwks(response.json()), settings.LICENSE_ISSUER, **kwargs)


def jwks_kids(client) -> list[str]:
    return [key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]]


def revocation_list(client, **params) -> dict:
    response = client.get("/api/v1/licenses/revocations", params)
    assert response.status_code == 200, response.content
    return response.json()


def validate_online(client, token, *, module_name=MODULE, odoo_version="17.0", **instance) -> str:
    """The code the server's validate endpoint answers."""
    body = {"token": token, "module_name": module_name, "odoo_version": odoo_version}
    body.update(instance)
    response = client.post("/api/v1/licenses/validate", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["code"]


def run(command, *args, **kwargs) -> tuple[str, str]:
    """call_command with captured stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def rotate(settings, keys_dir):
    """Generate a new key with the operator command and make it the signing key."""

    def rotate_to(kid: str) -> None:
        run("generate_keys", "--key-id", kid)
        settings.KEY_ID = kid
        settings.PRIVATE_KEY_PATH = keys_dir / f"{kid}.private.pem"

    return rotate_to


@pytest.fixture
def v08_key(db):
    """The v0.8 public key, imported through the operator command."""
    run("import_public_key", str(V08_PEM), "--key-id", V08_KID)
    return V08_KID


def v08_token(name: str) -> str:
    return (INTEROP / f"example-{name}.jwt").read_text().strip()


def copy_interop(tmp_path, *names) -> list[str]:
    paths = []
    for name in names:
        target = tmp_path / f"example-{name}.jwt"
        shutil.copy(INTEROP / f"example-{name}.jwt", target)
        paths.append(str(target))
    return paths
