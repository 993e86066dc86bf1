"""The v0.8 server's tokens keep working: offline once its public key is imported, online
once `import_licenses` has registered them."""

from __future__ import annotations

import io
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections, connection

from audit.models import AuditLog
from customers.models import Customer
from licensing import services, signing
from licensing.models import License
from licensing.verification import Code
from tests.conftest import ACTOR
from tests.offline.conftest import (
    MODULE,
    V08_KID,
    V08_PEM,
    copy_interop,
    offline_verifier,
    run,
    v08_token,
    validate_online,
)

PERPETUAL_ID = "0bfb0cef-a864-400f-83d4-e8c6bd41dda5"
DEMO_ID = "84bb650c-4963-49de-bc1f-0c6ddcd69d25"
BOUND_ID = "df678d30-e478-4629-a241-80dce677f2bc"


def test_v08_tokens_verify_offline_after_import_public_key(db):
    verifier = offline_verifier()
    assert verifier.verify_token(v08_token("perpetual")).code is Code.UNKNOWN_KEY
    run("import_public_key", str(V08_PEM), "--key-id", V08_KID)
    verifier = offline_verifier()
    perpetual = verifier.verify(v08_token("perpetual"), module_name=MODULE, odoo_version="18.0")
    assert perpetual.code is Code.VALID
    assert perpetual.header["kid"] == V08_KID
    assert verifier.verify(v08_token("demo"), module_name=MODULE, odoo_version="18.0").code is (
        Code.EXPIRED
    )


def test_import_licenses_registers_v08_tokens_and_creates_their_customers(
    client, v08_key, tmp_path
):
    assert validate_online(client, v08_token("perpetual")) == "UNKNOWN_LICENSE"
    out, err = run("import_licenses", *copy_interop(tmp_path, "perpetual", "demo", "bound"))
    assert "3 tokens: 3 imported, 0 already registered, 0 refused." in out
    assert err == ""

    perpetual = License.objects.get(pk=PERPETUAL_ID)
    assert perpetual.token == v08_token("perpetual")  # verbatim, never re-signed
    assert perpetual.key_id == V08_KID
    assert perpetual.license_type == "perpetual" and perpetual.expires_at is None
    assert perpetual.allowed_major_versions == ["17", "18"]
    assert perpetual.issued_at.timestamp() == 1770145930
    demo = License.objects.get(pk=DEMO_ID)
    assert demo.expires_at.timestamp() == 1772737930 and demo.effective_status == "expired"
    bound = License.objects.get(pk=BOUND_ID)
    assert bound.instance_fingerprint.startswith("sha256:cf5d28bd")

    customers = {c.id: c for c in Customer.objects.all()}
    assert set(customers) == {"CUST-001", "CUST-002", "DEMO-123"}
    assert customers["CUST-001"].name == "Acme Corporation"
    assert customers["CUST-001"].email == "cust-001@imported.invalid"

    imported = AuditLog.objects.filter(event_type="license.imported")
    assert {str(r.license_id) for r in imported} == {PERPETUAL_ID, DEMO_ID, BOUND_ID}
    assert AuditLog.objects.filter(event_type="customer.created").count() == 3
    demo_row = imported.get(license_id=DEMO_ID)
    assert demo_row.event_data["expired"] is True
    assert demo_row.event_data["customer_created"] is True

    assert validate_online(client, v08_token("perpetual"), odoo_version="18.0") == "VALID"
    assert validate_online(client, v08_token("demo"), odoo_version="18.0") == "EXPIRED"


def test_import_licenses_is_idempotent(db, v08_key, tmp_path):
    files = copy_interop(tmp_path, "perpetual", "demo")
    run("import_licenses", *files)
    rows = AuditLog.objects.count()
    out, _ = run("import_licenses", *files)
    assert "2 tokens: 0 imported, 2 already registered, 0 refused." in out
    assert AuditLog.objects.count() == rows
    assert License.objects.count() == 2


def test_an_existing_customer_is_kept(customer, v08_key, tmp_path):
    run("import_licenses", *copy_interop(tmp_path, "perpetual"))
    customer.refresh_from_db()
    assert customer.email == "it@acme.example"
    assert License.objects.get(pk=PERPETUAL_ID).customer_id == customer.id
    row = AuditLog.objects.get(event_type="license.imported")
    assert row.event_data["customer_created"] is False
    assert not AuditLog.objects.filter(event_type="customer.created").exclude(actor=ACTOR).exists()


def test_tokens_under_an_unknown_key_are_refused_and_reported(db, tmp_path):
    with pytest.raises(CommandError, match="1 token") as excinfo:
        run("import_licenses", *copy_interop(tmp_path, "perpetual"))
    assert excinfo.value.returncode == 1
    assert not License.objects.exists() and not Customer.objects.exists()


def test_refused_tokens_are_listed_and_the_others_imported(v08_key, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(
        "# exported from v0.8\n"
        f"{v08_token('perpetual')}\n"
        "\n"
        "not-a-token\n"
        f"{v08_token('demo')[:-4]}AAAA\n"
        f"{v08_token('bound')}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("import_licenses", str(tokens), stdout=out, stderr=err)
    assert excinfo.value.returncode == 1
    assert "4 tokens: 2 imported, 0 already registered, 2 refused." in out.getvalue()
    lines = err.getvalue().splitlines()
    assert lines[0].startswith(f"refused {tokens}:4:") and "MALFORMED" in lines[0]
    assert lines[1].startswith(f"refused {tokens}:5:") and "BAD_SIGNATURE" in lines[1]
    assert set(License.objects.values_list("id", flat=True)) == {
        uuid.UUID(PERPETUAL_ID),
        uuid.UUID(BOUND_ID),
    }


def test_stdin_and_progress_lines(v08_key):
    stdin = io.StringIO("\n".join(v08_token(n) for n in ("perpetual", "demo", "bound")) + "\n")
    out, _ = run("import_licenses", "-", "--progress-every", "2", stdin=stdin)
    lines = out.splitlines()
    assert lines[0] == "... 2 tokens: 2 imported, 0 already registered, 0 refused"
    assert lines[-1] == "3 tokens: 3 imported, 0 already registered, 0 refused."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/tokens.txt"], "cannot read"),
        (["-"], "no token found"),
        (["-", "--progress-every", "0"], "at least 1"),
    ],
)
def test_usage_errors_exit_2(db, args, message):
    with pytest.raises(CommandError, match=message) as excinfo:
        run("import_licenses", *args, stdin=io.StringIO(""))
    assert excinfo.value.returncode == 2


def test_a_different_token_under_a_registered_id_is_refused(v08_key, make_license):
    services.license_import(actor=ACTOR, token=v08_token("perpetual"))
    claims = {
        "jti": PERPETUAL_ID,
        "iss": "https://license.biz4a.com",
        "iat": int(time.time()),
        "customer": {"id": "CUST-001", "name": "Acme Corporation"},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17"]},
        "license_type": "perpetual",
    }
    impostor, _ = signing.sign(claims)
    with pytest.raises(services.LicenseIdConflict):
        services.license_import(actor=ACTOR, token=impostor)
    assert License.objects.get(pk=PERPETUAL_ID).token == v08_token("perpetual")


def test_reimporting_a_license_issued_here_changes_nothing(make_license):
    license = make_license()
    rows = AuditLog.objects.count()
    again, created = services.license_import(actor=ACTOR, token=license.token)
    assert (again.pk, created) == (license.pk, False)
    assert AuditLog.objects.count() == rows


def test_nothing_is_written_when_the_audit_row_cannot_be_written(v08_key, audit_insert_fails):
    with pytest.raises(DatabaseError):
        services.license_import(actor=ACTOR, token=v08_token("perpetual"))
    assert not License.objects.exists() and not Customer.objects.exists()


def test_wrong_issuer_is_refused(db):
    token, _ = signing.sign(
        {
            "jti": str(uuid.uuid4()),
            "iss": "https://evil.example",
            "iat": int(time.time()),
            "customer": {"id": "CUST-009", "name": "Mallory"},
            "module": {"technical_name": MODULE, "allowed_major_versions": ["17"]},
            "license_type": "perpetual",
        }
    )
    with pytest.raises(services.LicenseTokenRefused) as excinfo:
        services.license_import(actor=ACTOR, token=token)
    assert excinfo.value.verification_code == "WRONG_ISSUER"
    assert not Customer.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_of_one_token_register_it_once(v08_key):
    barrier = threading.Barrier(10)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def import_():
        try:
            barrier.wait()
            _license, created = services.license_import(actor=ACTOR, token=v08_token("perpetual"))
            with lock:
                outcomes.append(created)
        finally:
            connection.close()

    threads = [threading.Thread(target=import_) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert sorted(outcomes) == [False] * 9 + [True]
    assert License.objects.count() == 1 and Customer.objects.count() == 1
    assert AuditLog.objects.filter(event_type="license.imported").count() == 1
    assert AuditLog.objects.filter(event_type="customer.created").count() == 1
