"""generate_keys, issue_license and revoke_license: same services, clear errors, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from licensing.models import License

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_generate_keys_creates_0600_private_key_and_audits(tmp_path):
    out = run("generate_keys", "--key-id", "aegis-2027-01", "--keys-dir", str(tmp_path))
    private = tmp_path / "aegis-2027-01.private.pem"
    public = tmp_path / "aegis-2027-01.public.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    assert str(public) in out and "BEGIN PRIVATE KEY" not in out
    audit = AuditLog.objects.get(event_type="signing_key.generated")
    assert audit.event_data == {"key_id": "aegis-2027-01", "encrypted": False}
    assert audit.actor.startswith("cli:")


def test_generate_keys_refuses_to_overwrite(tmp_path):
    run("generate_keys", "--key-id", "k", "--keys-dir", str(tmp_path))
    before = (tmp_path / "k.private.pem").read_bytes()
    with pytest.raises(CommandError, match="refusing to overwrite"):
        run("generate_keys", "--key-id", "k", "--keys-dir", str(tmp_path))
    assert (tmp_path / "k.private.pem").read_bytes() == before
    assert AuditLog.objects.filter(event_type="signing_key.generated").count() == 1
    assert "already exists" in run(
        "generate_keys", "--key-id", "k", "--keys-dir", str(tmp_path), "--if-missing"
    )


def test_generate_keys_rejects_a_bad_key_id(tmp_path):
    with pytest.raises(CommandError, match="key_id"):
        run("generate_keys", "--key-id", "../escape", "--keys-dir", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_issued_token_verifies_like_the_odoo_client(customer, keys_dir):
    token = run(
        "issue_license",
        "--customer",
        customer.id,
        "--module",
        "biz4a_payroll_drc",
        "--versions",
        "18",
        "17",
        "--type",
        "perpetual",
    ).strip()
    public = load_pem_public_key((keys_dir / f"{settings.KEY_ID}.public.pem").read_bytes())
    claims = jwt.decode(
        token, public, algorithms=["EdDSA"], options={"require": ["jti", "iss", "iat"]}
    )
    assert claims["module"] == {
        "technical_name": "biz4a_payroll_drc",
        "allowed_major_versions": ["17", "18"],
    }
    assert "exp" not in claims
    license = License.objects.get(pk=claims["jti"])
    assert license.token == token
    assert AuditLog.objects.get(event_type="license.issued").actor.startswith("cli:")


def test_issue_license_json_with_expiry_date(customer):
    day = (dt.date.today() + dt.timedelta(days=200)).isoformat()
    out = run(
        "issue_license",
        "--customer",
        customer.id,
        "--module",
        "biz4a_payroll_drc",
        "--versions",
        "17",
        "--type",
        "subscription",
        "--expires",
        day,
        "--json",
    )
    data = json.loads(out)
    assert data["expires_at"].startswith(f"{day}T23:59:59")
    assert data["token"].count(".") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--customer", "NOPE", "--module", "abc", "--versions", "17", "--type", "perpetual"],
            "not found",
        ),
        (
            [
                "--customer",
                "CUST-001",
                "--module",
                "Bad-Name",
                "--versions",
                "17",
                "--type",
                "perpetual",
            ],
            "module_name",
        ),
        (
            [
                "--customer",
                "CUST-001",
                "--module",
                "abc",
                "--versions",
                "17",
                "--type",
                "subscription",
            ],
            "duration_days",
        ),
        (
            [
                "--customer",
                "CUST-001",
                "--module",
                "abc",
                "--versions",
                "17",
                "--type",
                "demo",
                "--expires",
                "soon",
            ],
            "ISO",
        ),
    ],
)
def test_issue_license_bad_input(customer, args, message):
    with pytest.raises(CommandError, match=message):
        run("issue_license", *args)
    assert not License.objects.exists()


def test_revoke_license_command(make_license):
    license = make_license()
    assert "Revoked" in run("revoke_license", str(license.id), "--reason", "fraud")
    with pytest.raises(CommandError, match="already revoked"):
        run("revoke_license", str(license.id), "--reason", "fraud")
    assert AuditLog.objects.filter(event_type="license.revoked").count() == 1


def test_bad_input_exits_non_zero_with_one_line(tmp_path):
    """The real process: exit status 1 and a one-line message, no traceback."""
    env = os.environ | {"KEYS_DIR": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "issue_license",
            "--customer",
            "X",
            "--module",
            "abc",
            "--versions",
            "17",
            "--type",
            "perpetual",
            "--days",
            "notanumber",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "--days" in proc.stderr
