"""renew_license, transfer_license, reissue_licenses and the seats of issue_license: the same
services as the API and the admin, actor `cli:<os user>`, one-line errors, non-zero exits."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from licensing import signing
from licensing.models import License, LicenseStatus
from licensing.services import license_revoke
from licensing.verification import compute_fingerprint
from tests.conftest import ACTOR, TEST_KID, cli_actor

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
DB_UUID, DOMAIN = "7d2c1f00-1111-4a4b-9a4b-0242ac120099", "odoo.acme.example"
NEW_KID = "aegis-test-02"


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def rotate(settings, keys_dir) -> None:
    run("generate_keys", "--key-id", NEW_KID)
    settings.KEY_ID = NEW_KID
    settings.PRIVATE_KEY_PATH = keys_dir / f"{NEW_KID}.private.pem"
    signing.reset()


@pytest.fixture
def subscription(make_license):
    return make_license(license_type="subscription", duration_days=30)


def test_renew_license_by_days_prints_the_new_token(subscription):
    out = run("renew_license", str(subscription.id), "--days", "365").splitlines()
    new = License.objects.get(replaces=subscription)
    assert out == [
        f"Renewed license {subscription.id}: license {new.id} expires {new.expires_at.isoformat()}",
        new.token,
    ]
    assert new.expires_at == subscription.expires_at + dt.timedelta(days=365)
    row = AuditLog.objects.get(event_type="license.renewed")
    assert (row.actor, row.license_id, row.event_data["successor"]) == (
        cli_actor(),
        subscription.id,
        str(new.id),
    )


def test_renew_license_to_a_date(subscription):
    day = (subscription.expires_at + dt.timedelta(days=90)).date().isoformat()
    run("renew_license", str(subscription.id), "--expires-at", day)
    new = License.objects.get(replaces=subscription)
    assert new.expires_at.isoformat() == f"{day}T23:59:59+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expires-at", "someday"], "--expires-at: 'someday' is not an ISO date or date-time"),
        (["--expires-at", "2001-01-01"], "expires_at: Must be in the future."),
        (["--days", "0"], "duration_days: Must be a whole number of days, at least 1."),
        ([], "duration_days: A subscription needs duration_days or expires_at."),
    ],
)
def test_renew_license_bad_input(subscription, args, message):
    with pytest.raises(CommandError) as caught:
        run("renew_license", str(subscription.id), *args)
    assert str(caught.value) == message
    assert License.objects.count() == 1


def test_renew_license_refuses_a_perpetual_license(make_license):
    perpetual = make_license()
    with pytest.raises(CommandError, match="is perpetual; it never expires"):
        run("renew_license", str(perpetual.id), "--days", "30")
    with pytest.raises(CommandError, match="License not found"):
        run("renew_license", "not-a-license", "--days", "30")


def test_transfer_license_by_database_uuid_and_domain(make_license):
    old = make_license(instance_fingerprint="sha256:" + "b" * 64)
    out = run(
        "transfer_license",
        str(old.id),
        "--db-uuid",
        DB_UUID,
        "--domain",
        DOMAIN,
        "--reason",
        "moved",
    ).splitlines()
    new = License.objects.get(replaces=old)
    fingerprint = compute_fingerprint(DB_UUID, DOMAIN)
    assert out == [
        f"Transferred license {old.id} (now revoked): license {new.id} is bound to {fingerprint}",
        new.token,
    ]
    old.refresh_from_db()
    assert (old.status, old.revoked_reason) == (LicenseStatus.REVOKED, "moved")
    assert AuditLog.objects.get(event_type="license.transferred").actor == cli_actor()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "r"], "Give the new instance"),
        (["--db-uuid", DB_UUID, "--reason", "r"], "instance_domain: Give the domain"),
        (["--fingerprint", "md5:x", "--reason", "r"], "instance_fingerprint: Must be 'sha256:'"),
        (["--fingerprint", "sha256:" + "c" * 64, "--reason", " "], "reason: A reason is required."),
    ],
)
def test_transfer_license_bad_input(subscription, args, message):
    with pytest.raises(CommandError, match=message):
        run("transfer_license", str(subscription.id), *args)
    subscription.refresh_from_db()
    assert subscription.status == LicenseStatus.ACTIVE and License.objects.count() == 1


def test_reissue_licenses_prints_progress_and_a_summary(make_license, settings, keys_dir):
    made = [make_license() for _ in range(3)]
    revoked = make_license()
    license_revoke(actor=ACTOR, license_id=revoked.id, reason="r")
    rotate(settings, keys_dir)
    out = run(
        "reissue_licenses", "--key-id", TEST_KID, "--progress-every", "2", "--reason", "rotation"
    )
    assert out.splitlines() == [
        "... 2/3 licenses",
        "... 3/3 licenses",
        f"3 active licenses signed by {TEST_KID}: 3 re-issued under {NEW_KID}, 0 skipped.",
    ]
    assert set(License.objects.filter(key_id=NEW_KID).values_list("replaces_id", flat=True)) == {
        lic.id for lic in made
    }
    rows = AuditLog.objects.filter(event_type="license.reissued")
    assert rows.count() == 3 and {r.actor for r in rows} == {cli_actor()}
    assert {r.event_data["reason"] for r in rows} == {"rotation"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key-id", TEST_KID], f"key_id: {TEST_KID} is the current signing key"),
        (["--key-id", "bad/id"], "key_id: Use letters, digits"),
        (["--key-id", "x", "--progress-every", "0"], "--progress-every must be at least 1"),
    ],
)
def test_reissue_licenses_bad_input(make_license, args, message):
    make_license()
    with pytest.raises(CommandError, match=message):
        run("reissue_licenses", *args)
    assert License.objects.count() == 1


def test_issue_license_with_seats(customer):
    out = run(
        "issue_license",
        "--customer",
        customer.id,
        "--module",
        "biz4a_payroll_drc",
        "--versions",
        "17",
        "--type",
        "perpetual",
        "--max-instances",
        "3",
        "--max-staging-instances",
        "0",
        "--json",
    )
    data = json.loads(out)
    assert (data["max_instances"], data["max_staging_instances"]) == (3, 0)
    license = License.objects.get()
    assert (license.max_instances, license.max_staging_instances) == (3, 0)


def test_issue_license_refuses_zero_instances(customer):
    with pytest.raises(CommandError, match="max_instances: Must be a whole number of instances"):
        run(
            "issue_license",
            "--customer",
            customer.id,
            "--module",
            "biz4a_payroll_drc",
            "--versions",
            "17",
            "--type",
            "perpetual",
            "--max-instances",
            "0",
        )
    assert not License.objects.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["renew_license", "0bfb0cef-a864-400f-83d4-e8c6bd41dda5", "--days", "x"], "--days"),
        (["transfer_license", "0bfb0cef-a864-400f-83d4-e8c6bd41dda5"], "--reason"),
        (["reissue_licenses"], "--key-id"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, args, expected):
    """The real process: a non-zero exit and a short message, no traceback."""
    env = os.environ | {"KEYS_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert expected in proc.stderr.strip().splitlines()[-1]
