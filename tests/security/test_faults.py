"""Faults (CONTRACT §4, §7): the server fails closed and says so in JSON, and comes back.

- the database unreachable: 503 JSON on /health, validate, issue and revoke — never
  `valid: true`, never a traceback — and the same process answers again once it is back;
- the audit row cannot be written: the change does not happen and the caller gets a 503;
- the rate-limit cache (Redis) unreachable: 503 JSON, nothing served unthrottled;
- the signing key missing, unreadable, unusable or too widely readable: a production server
  process refuses to start and says why; in development it starts, logs why, and /health
  names the failing part (never the path).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.test import override_settings

from audit.models import AuditLog
from customers.models import Customer
from licensing import signing
from licensing.models import License, LicenseStatus
from tests.api.conftest import assert_error, client_with
from tests.conftest import refuse_audit_inserts

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "f" * 20 + "-production-secret-for-tests-" + "9" * 20
VALIDATE = "/api/v1/licenses/validate"
LICENSES = "/api/v1/licenses"
ISSUE = {
    "customer_id": "CUST-001",
    "module_name": "biz4a_payroll_drc",
    "allowed_major_versions": ["17"],
    "license_type": "perpetual",
}


def validate(client, token):
    return client.post(
        VALIDATE,
        {"token": token, "module_name": "biz4a_payroll_drc", "odoo_version": "17"},
        format="json",
    )


def assert_unavailable(response, code: str = "database_unavailable") -> None:
    body = assert_error(response, 503, code)
    assert "valid" not in body
    text = response.content.decode()
    assert "Traceback" not in text and "psycopg" not in text and "sqlite" not in text.lower()


# --- The database unreachable, then back -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_door_answers_503_json_while_the_database_is_unreachable(
    anon, make_key, make_license, closed_database
):
    license = make_license()
    issuer = client_with(make_key("issuer"))
    with closed_database():
        health = anon.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and health.json()["database"] == "unavailable"
        assert_unavailable(validate(anon, license.token))
        assert_unavailable(issuer.post(LICENSES, ISSUE, format="json"))
        revoke = f"{LICENSES}/{license.id}/revoke"
        assert_unavailable(issuer.delete(revoke, {"reason": "outage"}, format="json"))
        assert_unavailable(issuer.post(revoke, {"reason": "outage"}, format="json"))
        assert_unavailable(issuer.get(LICENSES))
    # Back: the same process answers, and nothing happened during the outage.
    assert anon.get("/health").status_code == 200
    assert validate(anon, license.token).json()["code"] == "VALID"
    license.refresh_from_db()
    assert license.status == LicenseStatus.ACTIVE
    assert License.objects.count() == 1


@contextlib.contextmanager
def database_outage():
    """PostgreSQL looked for on a closed port, with the process's connection dropped: after
    the outage the server must open a new connection by itself."""
    saved = dict(connection.settings_dict)
    connection.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_process_reconnects_after_an_outage_without_a_restart(anon, make_key, make_license):
    license = make_license()
    issuer = client_with(make_key("issuer"))
    for _ in range(2):  # down, up, down, up: no state is left behind by an outage
        with database_outage():
            assert anon.get("/health").status_code == 503
            assert_unavailable(validate(anon, license.token))
            assert_unavailable(issuer.post(LICENSES, ISSUE, format="json"))
            assert connection.connection is None
        assert anon.get("/health").json()["database"] == "ok"
        assert validate(anon, license.token).json()["valid"] is True
        assert issuer.post(LICENSES, ISSUE, format="json").status_code == 201
    revoked = issuer.delete(f"{LICENSES}/{license.id}/revoke", {"reason": "back"}, format="json")
    assert revoked.status_code == 200
    assert validate(anon, license.token).json()["code"] == "REVOKED"


@pytest.mark.django_db
def test_a_cache_outage_answers_503_json_and_changes_nothing(
    anon, make_key, make_license, cache_unreachable
):
    """Rate limits cannot be enforced: refuse (503), as for the database, rather than serve
    unthrottled or answer 500."""
    license = make_license()
    issuer = client_with(make_key("issuer"))
    before = AuditLog.objects.count()
    assert_unavailable(validate(anon, license.token), "service_unavailable")
    assert_unavailable(anon.get("/health"), "service_unavailable")
    assert_unavailable(issuer.post(LICENSES, ISSUE, format="json"), "service_unavailable")
    assert_unavailable(issuer.get(LICENSES, HTTP_X_API_KEY="wrong.key"), "service_unavailable")
    assert License.objects.count() == 1 and AuditLog.objects.count() == before


def _redis_cache_settings() -> dict:
    """CACHES as the settings build them for a Redis CACHE_URL (in a fresh interpreter)."""
    code = "from django.conf import settings; import json; print(json.dumps(settings.CACHES))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHE")}
    env |= {"CACHE_URL": "redis://127.0.0.1:6379/0", "DJANGO_SETTINGS_MODULE": "aegis.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_a_stalled_cache_fails_fast_with_503(anon, make_license):
    """Redis accepts the connection and never answers (overloaded, half-dead): the request
    is refused with 503 after the cache timeout instead of waiting for ever (on the event
    loop, one stalled request would hold up every validation of the worker)."""
    caches = _redis_cache_settings()
    options = caches["default"]["OPTIONS"]
    assert 0 < options["SOCKET_TIMEOUT"] <= 5 and 0 < options["SOCKET_CONNECT_TIMEOUT"] <= 5
    license = make_license()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # the kernel accepts; nothing ever answers
        stalled = {
            "default": caches["default"]
            | {"LOCATION": f"redis://127.0.0.1:{server.getsockname()[1]}/0"}
        }
        answers = []
        with override_settings(CACHES=stalled):
            worker = threading.Thread(target=lambda: answers.append(validate(anon, license.token)))
            worker.start()
            worker.join(timeout=30)
        assert not worker.is_alive(), "the request waited on the stalled cache"
    assert_unavailable(answers[0], "service_unavailable")


# --- The audit row cannot be written ---------------------------------------------------------


@pytest.fixture
def audit_refused(transactional_db):
    """The database refuses every audit insert (a trigger raising, as a full disk or a
    broken audit table would). Created and dropped explicitly: tests using it commit."""
    name = "security_audit_refused"
    refuse_audit_inserts(name)

    def restore() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"DROP TRIGGER IF EXISTS {name} ON audit_auditlog"
                if connection.vendor == "postgresql"
                else f"DROP TRIGGER IF EXISTS {name}"
            )
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")

    yield restore
    restore()


@pytest.fixture
def before_the_refusal(transactional_db, make_license, make_key):
    """A license and an issuer key, created while the audit trail still works."""
    return make_license(), client_with(make_key("issuer"))


def test_no_issue_without_its_audit_row(before_the_refusal, audit_refused):
    license, issuer = before_the_refusal
    assert_unavailable(issuer.post(LICENSES, ISSUE, format="json"), "service_unavailable")
    assert list(License.objects.values_list("pk", flat=True)) == [license.pk]


def test_no_revoke_without_its_audit_row(anon, before_the_refusal, audit_refused):
    license, issuer = before_the_refusal
    for method in (issuer.delete, issuer.post):
        response = method(f"{LICENSES}/{license.id}/revoke", {"reason": "x"}, format="json")
        assert_unavailable(response, "service_unavailable")
    license.refresh_from_db()
    assert license.status == LicenseStatus.ACTIVE and license.revoked_at is None
    audit_refused()  # the trail works again: the license was never revoked
    assert validate(anon, license.token).json()["code"] == "VALID"


def test_no_customer_change_without_its_audit_row(before_the_refusal, audit_refused):
    _, issuer = before_the_refusal
    created = issuer.post(
        "/api/v1/customers", {"id": "CUST-002", "name": "B", "email": "b@x.example"}, format="json"
    )
    assert_unavailable(created, "service_unavailable")
    assert not Customer.objects.filter(pk="CUST-002").exists()
    patched = issuer.patch("/api/v1/customers/CUST-001", {"is_active": False}, format="json")
    assert_unavailable(patched, "service_unavailable")
    assert Customer.objects.get(pk="CUST-001").is_active is True


def test_no_validation_answer_without_its_audit_row(anon, before_the_refusal, audit_refused):
    """Statistics and the trail count validations from their rows: a validation that cannot
    be recorded is not answered, least of all with `valid: true`."""
    license, _ = before_the_refusal
    before = AuditLog.objects.count()
    for _ in range(3):
        assert_unavailable(validate(anon, license.token), "service_unavailable")
    assert_unavailable(validate(anon, "garbage"), "service_unavailable")
    assert AuditLog.objects.count() == before


# --- The signing key at run time -------------------------------------------------------------


@pytest.mark.django_db
def test_losing_the_private_key_stops_issuing_not_verifying(anon, make_key, make_license, keys_dir):
    license = make_license()
    issuer = client_with(make_key("issuer"))
    (keys_dir / "aegis-test-01.private.pem").unlink()  # the public key stays
    assert_unavailable(issuer.post(LICENSES, ISSUE, format="json"), "signing_key_unavailable")
    assert License.objects.count() == 1
    assert validate(anon, license.token).json()["code"] == "VALID"
    health = anon.get("/health")
    assert health.status_code == 503 and health.json()["signing_key"] == "unavailable"


# --- The signing key at start ----------------------------------------------------------------


def _pem(key, passphrase: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


KID = "prod-01"
# name → (how to break the key folder, extra environment, the reason the refusal names)
BROKEN_KEYS = {
    "missing": (lambda d: None, {}, "signing key not found"),
    "a-directory": (lambda d: (d / f"{KID}.private.pem").mkdir(), {}, "is unreadable"),
    "not-pem": (
        lambda d: _write(d / f"{KID}.private.pem", b"not a key\n"),
        {},
        "could not be loaded",
    ),
    "encrypted-no-passphrase": (
        lambda d: _write(d / f"{KID}.private.pem", _pem(Ed25519PrivateKey.generate(), b"pw")),
        {},
        "could not be loaded",
    ),
    "wrong-passphrase": (
        lambda d: _write(d / f"{KID}.private.pem", _pem(Ed25519PrivateKey.generate(), b"pw")),
        {"PRIVATE_KEY_PASSPHRASE": "not-pw"},
        "wrong PRIVATE_KEY_PASSPHRASE",
    ),
    "ed448": (
        lambda d: _write(d / f"{KID}.private.pem", _pem(Ed448PrivateKey.generate())),
        {},
        "is not an Ed25519 key",
    ),
    "group-readable": (
        lambda d: _write(d / f"{KID}.private.pem", _pem(Ed25519PrivateKey.generate()), 0o640),
        {},
        "readable by group or others (mode 640)",
    ),
    "world-readable-only": (
        lambda d: _write(d / f"{KID}.private.pem", _pem(Ed25519PrivateKey.generate()), 0o604),
        {},
        "readable by group or others (mode 604)",
    ),
    "group-writable": (
        lambda d: _write(d / f"{KID}.private.pem", _pem(Ed25519PrivateKey.generate()), 0o620),
        {},
        "readable by group or others (mode 620)",
    ),
    "retired": (
        lambda d: (signing.write_keypair(d, KID), (d / f"{KID}.retired").write_text("")),
        {},
        "is retired",
    ),
}


def start_server_process(keys_dir: Path, environment: str, **extra) -> subprocess.CompletedProcess:
    """What gunicorn does first: import the WSGI application."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEBUG", "API_SECRET", "ENVIRONMENT", "PRIVATE_KEY", "LOG_"))
    }
    env |= {
        "ENVIRONMENT": environment,
        "API_SECRET_KEY": STRONG_SECRET,
        "ALLOWED_HOSTS": "license.example.com",
        "KEYS_DIR": str(keys_dir),
        "KEY_ID": KID,
        "LOG_FORMAT": "text",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-c", "import aegis.wsgi; print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("problem", list(BROKEN_KEYS))
def test_production_refuses_to_start_with_an_unusable_signing_key(tmp_path, problem):
    break_keys, extra, reason = BROKEN_KEYS[problem]
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    break_keys(keys_dir)
    proc = start_server_process(keys_dir, "production", **extra)
    assert proc.returncode != 0 and "started" not in proc.stdout
    assert "Refusing to start with ENVIRONMENT=production" in proc.stderr
    assert reason in proc.stderr, proc.stderr[-2000:]
    assert "BEGIN PRIVATE KEY" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_production_starts_with_an_owner_only_key(tmp_path, mode):
    """The positive control: the same process starts once the key is usable."""
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    _write(keys_dir / f"{KID}.private.pem", _pem(Ed25519PrivateKey.generate()), mode)
    proc = start_server_process(keys_dir, "production")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "started" in proc.stdout


def test_development_starts_without_a_key_and_logs_why(tmp_path):
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    proc = start_server_process(keys_dir, "development")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "started" in proc.stdout
    logged = proc.stdout + proc.stderr
    assert "signing key unusable" in logged and "signing key not found" in logged
    assert str(keys_dir) in logged  # the operator is told where it was looked for


@pytest.mark.django_db
@pytest.mark.parametrize(
    "problem", ["a-directory", "not-pem", "encrypted-no-passphrase", "ed448", "retired"]
)
def test_development_health_names_the_signing_key_and_no_path(anon, settings, tmp_path, problem):
    break_keys, _, reason = BROKEN_KEYS[problem]
    keys_dir = tmp_path / "dev-keys"
    keys_dir.mkdir()
    break_keys(keys_dir)
    settings.KEYS_DIR, settings.KEY_ID = keys_dir, KID
    settings.PRIVATE_KEY_PATH = keys_dir / f"{KID}.private.pem"
    signing.reset()
    assert reason in signing.signing_key_status()
    response = anon.get("/health")
    assert response.status_code == 503
    assert response.json() | {"version": None} == {
        "status": "degraded",
        "version": None,
        "environment": settings.ENVIRONMENT,
        "database": "ok",
        "signing_key": "unavailable",
    }
    assert str(keys_dir) not in response.content.decode()
