"""Every non-public route × every kind of caller → the contract's 401 / 403 / 2xx (CONTRACT §5)."""

from __future__ import annotations

import pytest

from customers.services import customer_create
from licensing.seats import license_activate
from tests.api.conftest import ACTOR, assert_error, client_with

pytestmark = pytest.mark.django_db

READ, ISSUE, ADMIN = "readonly", "issuer", "admin"
RANK = {READ: 0, ISSUE: 1, ADMIN: 2}

# (method, path, body, scope needed, status on success)
ROUTES = [
    ("get", "/api/v1/licenses", None, READ, 200),
    (
        "post",
        "/api/v1/licenses",
        {
            "customer_id": "CUST-001",
            "module_name": "biz4a_payroll_drc",
            "allowed_major_versions": ["17"],
            "license_type": "perpetual",
        },
        ISSUE,
        201,
    ),
    ("get", "/api/v1/licenses/{license}", None, READ, 200),
    ("delete", "/api/v1/licenses/{license}/revoke", {"reason": "r"}, ISSUE, 200),
    ("post", "/api/v1/licenses/{license}/revoke", {"reason": "r"}, ISSUE, 200),
    ("post", "/api/v1/licenses/{license}/renew", {"duration_days": 30}, ISSUE, 201),
    (
        "post",
        "/api/v1/licenses/{license}/transfer",
        {"instance_fingerprint": "sha256:" + "b" * 64, "reason": "r"},
        ISSUE,
        201,
    ),
    ("get", "/api/v1/licenses/{license}/activations", None, READ, 200),
    ("delete", "/api/v1/licenses/{license}/activations/{activation}", None, ISSUE, 200),
    ("get", "/api/v1/customers", None, READ, 200),
    ("post", "/api/v1/customers", {"name": "New", "email": "n@example.com"}, ISSUE, 201),
    ("get", "/api/v1/customers/CUST-001", None, READ, 200),
    ("patch", "/api/v1/customers/CUST-001", {"phone": "123"}, ISSUE, 200),
    ("delete", "/api/v1/customers/SPARE", None, ISSUE, 204),
    ("get", "/api/v1/admin/stats", None, ADMIN, 200),
    ("get", "/api/v1/admin/audit-logs", None, ADMIN, 200),
]
CALLERS = ["no key", "unknown key", "revoked key", READ, ISSUE, ADMIN]


@pytest.fixture
def world(make_license):
    customer_create(actor=ACTOR, id="SPARE", name="Spare", email="s@example.com")
    license = make_license(license_type="subscription", duration_days=30)
    seat = license_activate(
        token=license.token,
        module_name=license.module_name,
        odoo_version="17.0",
        instance_db_uuid="db-1",
        instance_domain="erp.example.com",
    )
    return {"license": license.id, "activation": seat.activation.id}


def caller_client(caller, make_key, revoked_key):
    if caller == "no key":
        return client_with(None)
    if caller == "unknown key":
        return client_with("Abcd1234.abcdefghijklmnopqrstuvwxyz012345")
    if caller == "revoked key":
        return client_with(revoked_key)
    return client_with(make_key(caller))


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "body", "needed", "success"),
    ROUTES,
    ids=[f"{m.upper()} {p}" for m, p, *_ in ROUTES],
)
def test_permission_matrix(
    world, make_key, revoked_key, caller, method, path, body, needed, success
):
    client = caller_client(caller, make_key, revoked_key)
    url = path.format(**world)
    call = getattr(client, method)
    response = call(url, body, format="json") if body else call(url)
    if caller == "no key":
        assert_error(response, 401, "not_authenticated")
        assert "X-API-Key" in response["WWW-Authenticate"]
    elif caller in ("unknown key", "revoked key"):
        assert_error(response, 401, "invalid_api_key")
    elif RANK[caller] < RANK[needed]:
        assert_error(response, 403, "permission_denied")
    else:
        assert response.status_code == success, response.content


def test_matrix_covers_every_protected_route():
    """A new route under /api/v1 must be added to the matrix (or be public)."""
    from tests.api.test_schema import PUBLIC as public
    from tests.api.test_schema import api_v1_routes

    covered = {
        path.replace("{license}", "{id}")
        .replace("{activation}", "{activation_id}")
        .replace("CUST-001", "{id}")
        .replace("SPARE", "{id}")
        for _, path, *_ in ROUTES
    }
    offline_documents = {"/api/v1/licenses/revocations"}  # public, served by licensing
    assert api_v1_routes() - public - offline_documents <= covered
