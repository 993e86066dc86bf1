"""Fixtures shared by the whole suite.

Every test signs with a fresh Ed25519 key in a temporary keys folder, so no test depends on
the developer's keys/ and no key outlives its test.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from aegis.core import actors
from aegis.core.api import pagination
from customers.services import customer_create
from licensing import services, signing

# Tokens and the public key of the v0.8 server (copied from the project's shared interop set).
INTEROP = Path(__file__).resolve().parent / "fixtures" / "interop" / "v0.8"
TEST_KID = "aegis-test-01"
ACTOR = "user:tester"


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need PostgreSQL (row locks, triggers); on SQLite they are
    deselected, not skipped. CI always runs them."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("postgres") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def keys_dir(tmp_path_factory, settings) -> Path:
    path = tmp_path_factory.mktemp("keys")
    settings.KEYS_DIR = path
    settings.KEY_ID = TEST_KID
    settings.PRIVATE_KEY_PATH = path / f"{TEST_KID}.private.pem"
    settings.PRIVATE_KEY_PASSPHRASE = None
    signing.write_keypair(path, TEST_KID)
    signing.reset()
    yield path
    signing.reset()


@pytest.fixture(autouse=True)
def fresh_planner_estimates():
    """Each test starts without the estimates a worker keeps (aegis/core/api/pagination.py):
    the same SQL on another test's rows must ask the planner again."""
    pagination._estimates.clear()
    yield
    pagination._estimates.clear()


@pytest.fixture
def customer(db):
    return customer_create(
        actor=ACTOR, id="CUST-001", name="Acme Corporation", email="it@acme.example"
    )


@pytest.fixture
def make_license(customer):
    def make(**overrides):
        params = {
            "actor": ACTOR,
            "customer_id": customer.id,
            "module_name": "biz4a_payroll_drc",
            "allowed_major_versions": ["17", "18"],
            "license_type": "perpetual",
        }
        params.update(overrides)
        return services.license_issue(**params)

    return make


def refuse_audit_inserts(name: str) -> None:
    """Make the database itself refuse audit inserts (a trigger raising), as a full disk or a
    broken audit table would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION 'audit unavailable'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT ON audit_auditlog "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT ON audit_auditlog "
                f"BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END"
            )


@contextlib.contextmanager
def audit_inserts_refused(name: str):
    """`refuse_audit_inserts` for the duration of the block, for tests whose writes commit."""
    refuse_audit_inserts(name)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER {name} ON audit_auditlog")
                cursor.execute(f"DROP FUNCTION {name}()")
            else:
                cursor.execute(f"DROP TRIGGER {name}")


@pytest.fixture
def audit_insert_fails(db):
    """Audit inserts fail for the rest of the test (rolled back with the test's transaction)."""
    refuse_audit_inserts(f"fail_audit_{uuid.uuid4().hex[:8]}")


def cli_actor() -> str:
    return actors.for_cli()


@pytest.fixture
def cache_unreachable():
    """The shared cache (Redis, behind every rate limit) on a port where nothing listens;
    restored before the suite's own cache clean-up runs."""
    with cache_unreachable_now():
        yield


@contextlib.contextmanager
def cache_unreachable_now():
    """`cache_unreachable` for the duration of a block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    with override_settings(CACHES=unreachable):
        yield
