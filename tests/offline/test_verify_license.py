"""`manage.py verify_license`: offline, public keys only; exit 0 only for VALID, 1 for any
other code, 2 for a usage error."""

from __future__ import annotations

import datetime as dt
import io
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from licensing import revocations, services
from licensing.verification import compute_fingerprint
from tests.conftest import ACTOR, TEST_KID
from tests.offline.conftest import MODULE, V08_KID, revocation_list, run, v08_token

FP = compute_fingerprint("db-1", "erp.acme.example")


def not_valid(*args, **kwargs) -> tuple[CommandError, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_license", *args, stdout=out, stderr=io.StringIO(), **kwargs)
    return excinfo.value, out.getvalue()


def test_valid_token_exits_0_and_prints_code_and_claims(make_license, django_assert_num_queries):
    license = make_license()
    with django_assert_num_queries(0):  # offline: no database
        out, _ = run("verify_license", license.token)
    assert out.splitlines()[0] == "VALID"
    assert f"key id: {TEST_KID}" in out
    assert "checked: the token only" in out
    assert str(license.id) in out and '"license_type": "perpetual"' in out


def test_needs_public_keys_only(make_license, keys_dir):
    license = make_license()
    (keys_dir / f"{TEST_KID}.private.pem").rename(keys_dir.parent / "elsewhere.pem")
    out, _ = run("verify_license", license.token, "--module", MODULE, "--odoo-version", "17.0")
    assert out.startswith("VALID")


def test_reads_the_token_from_stdin(make_license):
    license = make_license()
    out, _ = run("verify_license", "-", stdin=io.StringIO(license.token + "\n"))
    assert out.startswith("VALID")


def test_usage_checks_run_when_module_and_version_are_given(make_license):
    license = make_license(instance_fingerprint=FP)
    error, out = not_valid(license.token, "--module", MODULE, "--odoo-version", "17.0")
    assert error.returncode == 1 and out.startswith("FINGERPRINT_REQUIRED")
    out, _ = run(
        "verify_license",
        license.token,
        "--module",
        MODULE,
        "--odoo-version",
        "17.0+e",
        "--db-uuid",
        "db-1",
        "--domain",
        "https://erp.acme.example/web",
    )
    assert out.startswith("VALID") and "checked: the token only" not in out
    out, _ = run(
        "verify_license",
        license.token,
        "--module",
        MODULE,
        "--odoo-version",
        "18",
        "--fingerprint",
        FP,
    )
    assert out.startswith("VALID")
    error, out = not_valid(license.token, "--module", "other_module", "--odoo-version", "17")
    assert error.returncode == 1 and out.startswith("MODULE_MISMATCH")
    error, out = not_valid(license.token, "--module", MODULE, "--odoo-version", "16.0")
    assert error.returncode == 1 and out.startswith("VERSION_NOT_ALLOWED")


def test_expired_exits_1_and_still_shows_the_claims(db, v08_key):
    error, out = not_valid(v08_token("demo"))
    assert error.returncode == 1 and "EXPIRED" in str(error)
    assert out.splitlines()[:2] == ["EXPIRED", "The license has expired."]
    assert "84bb650c-4963-49de-bc1f-0c6ddcd69d25" in out and f"key id: {V08_KID}" in out


def test_unknown_key_exits_1_and_names_the_kid(db):
    error, out = not_valid(v08_token("perpetual"))
    assert error.returncode == 1
    assert out.startswith("UNKNOWN_KEY") and f"key id: {V08_KID}" in out
    assert "not shown" in out  # no unverified claims are displayed


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_malformed_exits_1(db, token):
    error, out = not_valid(token)
    assert error.returncode == 1 and out.startswith("MALFORMED")


def test_bad_signature_exits_1(make_license):
    other = Ed25519PrivateKey.generate()
    token = jwt.encode(
        {"jti": "x"}, other, algorithm="EdDSA", headers={"kid": TEST_KID, "typ": "JWT"}
    )
    license = make_license()
    header, payload, _ = license.token.split(".")
    forged = f"{header}.{payload}.{token.split('.')[2]}"
    error, out = not_valid(forged)
    assert error.returncode == 1 and out.startswith("BAD_SIGNATURE")


def test_revoked_with_a_revocation_list_file(client, make_license, tmp_path):
    license = make_license()
    services.license_revoke(actor=ACTOR, license_id=license.id, reason="Refund")
    body = revocation_list(client)
    as_json, as_jws = tmp_path / "rl.json", tmp_path / "rl.jws"
    as_json.write_text(json.dumps(body))
    as_jws.write_text(body["token"] + "\n")
    for path in (as_json, as_jws):
        error, out = not_valid(license.token, "--revocation-list", str(path))
        assert error.returncode == 1 and out.startswith("REVOKED")
        assert f"revocation list: seq {body['seq']}" in out
        error, out = not_valid(
            license.token,
            "--revocation-list",
            str(path),
            "--module",
            MODULE,
            "--odoo-version",
            "17",
        )
        assert out.startswith("REVOKED")


def test_json_output(client, make_license, tmp_path):
    license = make_license()
    path = tmp_path / "rl.json"
    path.write_text(json.dumps(revocation_list(client)))
    out, _ = run("verify_license", license.token, "--json", "--revocation-list", str(path))
    result = json.loads(out)
    assert result == {
        "valid": True,
        "code": "VALID",
        "error": None,
        "kid": TEST_KID,
        "claims": result["claims"],
        "checks": "token",
        "revocation_list_seq": 0,
    }
    assert result["claims"]["jti"] == str(license.id)
    error, out = not_valid("garbage", "--json")
    assert error.returncode == 1
    assert json.loads(out)["code"] == "MALFORMED" and json.loads(out)["claims"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--module", MODULE], "go together"),
        (["--odoo-version", "17"], "go together"),
        (["--db-uuid", "db-1", "--domain", "erp.acme.example"], "need --module"),
        (["--fingerprint", FP], "need --module"),
        (["--revocation-list", "/nonexistent/rl.json"], "cannot read"),
    ],
)
def test_usage_errors_exit_2(make_license, args, message):
    error, _ = not_valid(make_license().token, *args)
    assert error.returncode == 2 and message in str(error)


def test_empty_stdin_is_a_usage_error(db):
    error, _ = not_valid("-", stdin=io.StringIO("  \n"))
    assert error.returncode == 2 and "no token" in str(error)


def test_a_refused_revocation_list_is_a_usage_error(make_license, tmp_path):
    license = make_license()
    expired = tmp_path / "expired.json"
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"seq": 3}')
    not_a_list = tmp_path / "license.jws"
    not_a_list.write_text(license.token)

    error, _ = not_valid(license.token, "--revocation-list", str(garbage))
    assert error.returncode == 2 and "no token" in str(error)
    error, _ = not_valid(license.token, "--revocation-list", str(not_a_list))
    assert error.returncode == 2 and "MALFORMED" in str(error)

    # A list signed three days ago: expired two days ago by its 24 h lifetime.
    stale = revocations.revocation_list_get(now=timezone.now() - dt.timedelta(days=3))
    expired.write_text(json.dumps({"token": stale.token}))
    error, _ = not_valid(license.token, "--revocation-list", str(expired))
    assert error.returncode == 2 and "EXPIRED" in str(error)
