"""Key rotation, import, retirement and compromise: the files, the audit rows, and what
both the server and an offline client answer afterwards."""

from __future__ import annotations

import os
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import CommandError

from audit.models import AuditLog
from licensing import keys, signing
from licensing.services import SigningUnavailable
from licensing.verification import Code
from tests.conftest import ACTOR, TEST_KID
from tests.offline.conftest import (
    MODULE,
    V08_KID,
    V08_PEM,
    client_verifier,
    jwks_kids,
    offline_verifier,
    run,
    v08_token,
    validate_online,
)

NEW_KID = "aegis-2027-01"


def offline_code(token, verifier=None) -> Code:
    verifier = verifier or offline_verifier()
    return verifier.verify(token, module_name=MODULE, odoo_version="17.0").code


def test_rotation_keeps_old_licenses_valid_and_a_compromise_cuts_them_off(
    client, make_license, rotate
):
    first = make_license()
    rotate(NEW_KID)
    second = make_license()
    assert (first.key_id, second.key_id) == (TEST_KID, NEW_KID)

    assert jwks_kids(client) == sorted([TEST_KID, NEW_KID])
    from_jwks = client_verifier(client)
    for license in (first, second):
        assert offline_code(license.token) is Code.VALID
        assert offline_code(license.token, from_jwks) is Code.VALID
        assert validate_online(client, license.token) == "VALID"

    out, _ = run("retire_key", TEST_KID, "--compromised")
    assert "compromised" in out

    assert jwks_kids(client) == [NEW_KID]
    assert offline_code(first.token) is Code.UNKNOWN_KEY
    assert offline_code(first.token, client_verifier(client)) is Code.UNKNOWN_KEY
    assert validate_online(client, first.token) == "UNKNOWN_KEY"
    assert offline_code(second.token) is Code.VALID
    assert validate_online(client, second.token) == "VALID"
    row = AuditLog.objects.get(event_type="signing_key.compromised")
    assert row.event_data["key_id"] == TEST_KID
    assert row.event_data["was_signing_key"] is False


def test_retired_key_keeps_verifying_but_refuses_to_sign(client, make_license, keys_dir):
    license = make_license()
    out, _ = run("retire_key", TEST_KID)
    assert "retired" in out and "KEY_ID" in out  # warns: it is the signing key

    assert (keys_dir / f"{TEST_KID}.retired").exists()
    assert "retired" in signing.signing_key_status()
    with pytest.raises(signing.SigningKeyUnavailable):
        signing.sign({"iss": "x"})
    with pytest.raises(SigningUnavailable):
        make_license()
    assert offline_code(license.token) is Code.VALID
    assert validate_online(client, license.token) == "VALID"
    assert jwks_kids(client) == [TEST_KID]
    row = AuditLog.objects.get(event_type="signing_key.retired")
    assert row.event_data["key_id"] == TEST_KID and row.event_data["was_signing_key"] is True
    assert row.event_data["thumbprint"] == signing.thumbprint(
        signing.keyring().public_keys[TEST_KID]
    )


def test_retiring_a_signing_key_without_a_public_file_keeps_its_tokens_verifying(
    make_license, keys_dir, rotate
):
    license = make_license()
    (keys_dir / f"{TEST_KID}.public.pem").unlink()
    run("retire_key", TEST_KID)
    assert (keys_dir / f"{TEST_KID}.public.pem").exists()
    rotate(NEW_KID)  # the retired key is no longer KEY_ID: only its public file remains
    assert offline_code(license.token) is Code.VALID


def test_a_retired_key_can_then_be_declared_compromised(make_license, keys_dir):
    license = make_license()
    run("retire_key", TEST_KID)
    run("retire_key", TEST_KID, "--compromised")
    assert offline_code(license.token) is Code.UNKNOWN_KEY
    assert not (keys_dir / f"{TEST_KID}.private.pem").exists()
    assert (keys_dir / f"{TEST_KID}.private.pem.compromised").exists()
    assert (keys_dir / f"{TEST_KID}.compromised.pem").exists()
    assert "compromised" in signing.signing_key_status()
    assert [r.event_type for r in AuditLog.objects.filter(event_type__startswith="signing_key.")]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ([], [], "already retired"),
        (["--compromised"], [], "already marked compromised"),
        (["--compromised"], ["--compromised"], "already marked compromised"),
    ],
)
def test_retiring_twice_is_refused_and_writes_nothing(db, first, second, message):
    run("retire_key", TEST_KID, *first)
    before = AuditLog.objects.count()
    with pytest.raises(CommandError, match=message):
        run("retire_key", TEST_KID, *second)
    assert AuditLog.objects.count() == before


@pytest.mark.parametrize("kid", ["nobody", "../keys", ""])
def test_retiring_an_unknown_or_unsafe_key_id_is_refused(db, kid, keys_dir):
    before = sorted(p.name for p in keys_dir.iterdir())
    with pytest.raises(CommandError):
        run("retire_key", kid)
    assert sorted(p.name for p in keys_dir.iterdir()) == before
    assert not AuditLog.objects.exists()


def test_a_compromised_key_id_is_never_reused(db, keys_dir):
    run("retire_key", TEST_KID, "--compromised")
    with pytest.raises(CommandError, match="refusing to overwrite"):
        run("generate_keys", "--key-id", TEST_KID)
    with pytest.raises(CommandError, match="in use"):
        run("import_public_key", str(V08_PEM), "--key-id", TEST_KID)
    assert not (keys_dir / f"{TEST_KID}.public.pem").exists()


def test_retire_writes_no_file_when_the_audit_row_cannot_be_written(audit_insert_fails, keys_dir):
    before = sorted(p.name for p in keys_dir.iterdir())
    with pytest.raises(CommandError, match="database error"):
        run("retire_key", TEST_KID, "--compromised")
    assert sorted(p.name for p in keys_dir.iterdir()) == before
    assert signing.signing_key_status() is None


# --- import_public_key ----------------------------------------------------------------------


def test_import_public_key_makes_v08_tokens_verify(db, keys_dir):
    assert offline_code(v08_token("perpetual")) is Code.UNKNOWN_KEY
    out, _ = run("import_public_key", str(V08_PEM), "--key-id", V08_KID)
    assert V08_KID in out
    path = keys_dir / f"{V08_KID}.public.pem"
    assert path.read_text() == V08_PEM.read_text()
    assert offline_code(v08_token("perpetual")) is Code.VALID
    assert offline_code(v08_token("demo")) is Code.EXPIRED
    row = AuditLog.objects.get(event_type="signing_key.imported")
    assert row.event_data == {
        "key_id": V08_KID,
        "thumbprint": signing.thumbprint(signing.keyring().public_keys[V08_KID]),
    }
    assert row.actor.startswith("cli:")


def test_import_refuses_to_overwrite_a_key(db, keys_dir, v08_key):
    other = Ed25519PrivateKey.generate().public_key()
    pem_path = keys_dir.parent / "other.pem"
    pem_path.write_text(signing.public_key_pem(other))
    with pytest.raises(CommandError, match="in use"):
        run("import_public_key", str(pem_path), "--key-id", V08_KID)
    with pytest.raises(CommandError, match="in use"):
        run("import_public_key", str(pem_path), "--key-id", TEST_KID)  # the signing key's id
    assert (keys_dir / f"{V08_KID}.public.pem").read_text() == V08_PEM.read_text()
    assert AuditLog.objects.filter(event_type="signing_key.imported").count() == 1


def _pem(kind: str) -> bytes:
    if kind == "ec-public":
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if kind == "ed25519-private":
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("kind", ["ec-public", "ed25519-private", "garbage"])
def test_import_refuses_anything_but_an_ed25519_public_key(db, keys_dir, tmp_path, kind):
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(kind))
    with pytest.raises(CommandError, match="Ed25519 public key"):
        run("import_public_key", str(path), "--key-id", "imported-01")
    assert not (keys_dir / "imported-01.public.pem").exists()
    assert not AuditLog.objects.exists()


def test_import_refuses_a_path_like_key_id_and_a_missing_file(db, keys_dir, tmp_path):
    with pytest.raises(CommandError, match="key_id"):
        run("import_public_key", str(V08_PEM), "--key-id", "../escape")
    assert not (keys_dir.parent / "escape.public.pem").exists()
    with pytest.raises(CommandError, match="cannot read"):
        run("import_public_key", str(tmp_path / "absent.pem"), "--key-id", "imported-01")


def test_import_writes_no_file_when_the_audit_row_cannot_be_written(audit_insert_fails, keys_dir):
    with pytest.raises(CommandError, match="database error"):
        run("import_public_key", str(V08_PEM), "--key-id", V08_KID)
    assert not (keys_dir / f"{V08_KID}.public.pem").exists()


def test_key_inventory_reports_each_state(db, v08_key, rotate):
    rotate(NEW_KID)
    keys.signing_key_retire(actor=ACTOR, key_id=TEST_KID)
    states = {info.kid: info for info in signing.key_inventory()}
    assert states[NEW_KID].current and states[NEW_KID].can_sign
    assert states[TEST_KID].state == "retired" and states[TEST_KID].verifies
    assert not states[TEST_KID].can_sign
    assert states[V08_KID].state == "active" and not states[V08_KID].can_sign
    keys.signing_key_retire(actor=ACTOR, key_id=V08_KID, compromised=True)
    v08 = {info.kid: info for info in signing.key_inventory()}[V08_KID]
    assert v08.state == "compromised" and not v08.verifies


# --- every worker notices a change without a restart -----------------------------------------


def _age(keys_dir, seconds=3600):
    then = time.time() - seconds
    for path in [*keys_dir.iterdir(), keys_dir]:
        os.utime(path, (then, then))


def test_a_key_change_reaches_a_running_process_without_reset(make_license, keys_dir):
    license = make_license()
    _age(keys_dir)
    signing.reset()
    ring = signing.keyring()
    assert signing.keyring() is ring  # cached: no re-read while nothing changes

    # Another process (a command) declares the key compromised; this one never hears of it
    # but for the files.
    os.rename(keys_dir / f"{TEST_KID}.public.pem", keys_dir / f"{TEST_KID}.compromised.pem")
    os.rename(
        keys_dir / f"{TEST_KID}.private.pem", keys_dir / f"{TEST_KID}.private.pem.compromised"
    )

    assert signing.verifier().verify_token(license.token).code is Code.UNKNOWN_KEY
    assert "compromised" in signing.signing_key_status()
    assert signing.jwks() == {"keys": []}
