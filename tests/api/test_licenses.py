"""/api/v1/licenses: issue, read, list with filters, revoke (CONTRACT §3)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import jwt
import pytest
from django.db import connection
from django.utils import timezone

from aegis.core.api.scopes import Scope
from audit.models import AuditLog
from customers.services import customer_create, customer_update
from licensing import signing
from licensing.models import License
from licensing.services import license_revoke
from tests.api.conftest import ACTOR, assert_error, client_with

pytestmark = pytest.mark.django_db
URL = "/api/v1/licenses"
ISSUE = {
    "customer_id": "CUST-001",
    "module_name": "biz4a_payroll_drc",
    "allowed_major_versions": ["18", "17", "17"],
    "license_type": "perpetual",
}


# --- Issue ------------------------------------------------------------------------------


def test_issue_returns_the_license_and_a_token_that_verifies(issuer, customer):
    response = issuer.post(URL, ISSUE, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    license = License.objects.get()
    assert response["Location"] == f"/api/v1/licenses/{license.id}"
    assert body["id"] == str(license.id)
    assert body["customer_id"] == "CUST-001"
    assert body["customer_name"] == "Acme Corporation"
    assert body["allowed_major_versions"] == ["17", "18"]
    assert body["status"] == "active"
    assert body["expires_at"] is None
    assert body["token"] == license.token
    claims = jwt.decode(
        body["token"],
        signing.keyring().public_keys["aegis-test-01"],
        algorithms=["EdDSA"],
        issuer="https://license.biz4a.com",
    )
    assert claims["jti"] == body["id"] and "exp" not in claims
    row = AuditLog.objects.get(event_type="license.issued")
    assert row.actor == "api_key:issuer-key" and row.license_id == license.id


def test_issue_a_subscription(issuer, customer):
    response = issuer.post(
        URL, ISSUE | {"license_type": "subscription", "duration_days": 365}, format="json"
    )
    assert response.status_code == 201
    expires = dt.datetime.fromisoformat(response.json()["expires_at"])
    assert dt.timedelta(days=364) < expires - timezone.now() <= dt.timedelta(days=365)


def test_issue_for_an_unknown_customer_is_404(issuer, db):
    assert_error(issuer.post(URL, ISSUE, format="json"), 404, "customer_not_found")


def test_issue_for_an_inactive_customer_is_409(issuer, customer):
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    assert_error(issuer.post(URL, ISSUE, format="json"), 409, "customer_inactive")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration_days": 30}, "duration_days"),  # perpetual: no expiry
        ({"license_type": "subscription"}, "duration_days"),  # needs one
        ({"license_type": "demo", "duration_days": 91}, "duration_days"),
        ({"license_type": "forever"}, "license_type"),
        ({"module_name": "Bad-Name"}, "module_name"),
        ({"allowed_major_versions": ["17a"]}, "allowed_major_versions"),
        ({"allowed_major_versions": []}, "allowed_major_versions"),
        ({"allowed_major_versions": "17"}, "allowed_major_versions"),
        ({"allowed_major_versions": [17]}, "allowed_major_versions.0"),
        ({"customer_id": 1}, "customer_id"),
        ({"duration_days": "30", "license_type": "subscription"}, "duration_days"),
        ({"duration_days": True, "license_type": "subscription"}, "duration_days"),
        ({"duration_days": 10**30, "license_type": "subscription"}, "duration_days"),
        ({"expires_at": "tomorrow", "license_type": "subscription"}, "expires_at"),
        ({"instance_fingerprint": "sha256:xyz"}, "instance_fingerprint"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_issue_with_bad_fields_is_400_and_writes_nothing(issuer, customer, changes, field):
    body = assert_error(issuer.post(URL, ISSUE | changes, format="json"), 400, "validation_error")
    assert field in body["errors"], body
    assert not License.objects.exists()
    assert not AuditLog.objects.filter(event_type="license.issued").exists()


def test_issue_without_a_signing_key_is_503(issuer, customer, keys_dir):
    (keys_dir / "aegis-test-01.private.pem").unlink()
    signing.reset()
    assert_error(issuer.post(URL, ISSUE, format="json"), 503, "signing_key_unavailable")
    assert not License.objects.exists()


# --- Read -------------------------------------------------------------------------------


def test_get_a_license(readonly, make_license):
    license = make_license()
    response = readonly.get(f"{URL}/{license.id}")
    assert response.status_code == 200
    assert response.json()["id"] == str(license.id)
    assert response.json()["token"] == license.token


def test_unknown_license_is_404(readonly, db):
    assert_error(readonly.get(f"{URL}/{uuid.uuid4()}"), 404, "license_not_found")


@pytest.mark.parametrize("bad", ["123", "not-a-uuid", "0bfb0cef-a864-400f-83d4", "%00"])
def test_malformed_license_id_is_404(readonly, bad):
    assert_error(readonly.get(f"{URL}/{bad}"), 404, "not_found")


def test_trailing_slash_is_accepted_without_redirect(issuer, customer):
    response = issuer.post(f"{URL}/", ISSUE, format="json")
    assert response.status_code == 201
    license_id = response.json()["id"]
    assert issuer.get(f"{URL}/{license_id}/").status_code == 200


# --- List -------------------------------------------------------------------------------


@pytest.fixture
def catalogue(make_license, customer):
    """Four licenses: perpetual, subscription, expired-looking demo, revoked subscription."""
    other = customer_create(actor=ACTOR, id="CUST-002", name="Globex", email="it@globex.example")
    perpetual = make_license(notes="flagship")
    subscription = make_license(
        license_type="subscription", duration_days=30, module_name="biz4a_hr"
    )
    demo = make_license(license_type="demo", customer_id=other.id)
    revoked = make_license(license_type="subscription", duration_days=365)
    license_revoke(actor=ACTOR, license_id=revoked.id, reason="x")
    # An expired demo: expiry in the past, as time would have made it.
    License.objects.filter(pk=demo.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    return {"perpetual": perpetual, "subscription": subscription, "demo": demo, "revoked": revoked}


def ids(response) -> set[str]:
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


def test_list_is_paginated_newest_first(readonly, catalogue):
    body = readonly.get(URL).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4
    issued = [row["issued_at"] for row in body["results"]]
    assert issued == sorted(issued, reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=active", {"perpetual", "subscription"}),
        ("status=revoked", {"revoked"}),
        ("status=expired", {"demo"}),
        ("license_type=subscription", {"subscription", "revoked"}),
        ("customer_id=CUST-002", {"demo"}),
        ("module_name=biz4a_hr", {"subscription"}),
        ("search=globex", {"demo"}),
        ("search=flagship", {"perpetual"}),
        ("expires_after=2000-01-01T00:00:00Z", {"subscription", "demo", "revoked"}),
    ],
)
def test_list_filters(readonly, catalogue, query, expected):
    assert ids(readonly.get(f"{URL}?{query}")) == {str(catalogue[name].id) for name in expected}


def test_list_expires_before_and_search_by_id(readonly, catalogue):
    cutoff = (timezone.now() + dt.timedelta(days=60)).isoformat()
    response = readonly.get(URL, {"expires_before": cutoff})
    assert ids(response) == {str(catalogue["subscription"].id), str(catalogue["demo"].id)}
    target = catalogue["revoked"].id
    assert ids(readonly.get(URL, {"search": str(target)})) == {str(target)}


def test_list_ordering_and_page_size(readonly, catalogue):
    body = readonly.get(URL, {"ordering": "expires_at", "page_size": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    assert body["results"][0]["id"] == str(catalogue["demo"].id)
    second = readonly.get(body["next"]).json()
    assert len(second["results"]) == 2
    assert not {r["id"] for r in body["results"]} & {r["id"] for r in second["results"]}


def test_page_size_is_capped_at_500(readonly, catalogue):
    assert readonly.get(URL, {"page_size": 100000}).status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("license_type=forever", "license_type"),
        ("expires_before=yesterday", "expires_before"),
        ("expires_after=2026-13-45", "expires_after"),
        ("ordering=token", "ordering"),
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=-5", "page_size"),
        ("page=abc", "page"),
        ("search=a%00b", "search"),
        ("customer_id=" + "x" * 51, "customer_id"),
    ],
)
def test_bad_list_parameters_are_400(readonly, catalogue, query, field):
    body = assert_error(readonly.get(f"{URL}?{query}"), 400, "validation_error")
    assert field in body["errors"], body


def test_page_past_the_end_is_404(readonly, catalogue):
    assert_error(readonly.get(URL, {"page": 99}), 404, "not_found")


def test_list_costs_the_same_for_1_and_30_licenses(
    readonly, make_license, django_assert_num_queries
):
    make_license()
    readonly.get(URL)  # the first use of a key records last_used_at
    # API key lookup, one SELECT joining the customer (a page that is not full is its own
    # count: aegis/core/api/pagination.py).
    with django_assert_num_queries(2):
        assert readonly.get(URL).json()["count"] == 1
    for _ in range(29):
        make_license()
    with django_assert_num_queries(2):
        assert readonly.get(URL).json()["count"] == 30


# --- Revoke -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["delete", "post"])
def test_revoke(issuer, make_license, method):
    license = make_license()
    response = getattr(issuer, method)(
        f"{URL}/{license.id}/revoke", {"reason": "Customer cancelled"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "revoked"
    assert body["revoked_reason"] == "Customer cancelled"
    assert body["revoked_at"]
    row = AuditLog.objects.get(event_type="license.revoked")
    assert row.actor == "api_key:issuer-key"
    assert row.event_data == {"reason": "Customer cancelled"}


def test_revoke_twice_is_409_with_one_audit_row(issuer, make_license):
    license = make_license()
    url = f"{URL}/{license.id}/revoke"
    assert issuer.delete(url, {"reason": "first"}, format="json").status_code == 200
    assert_error(issuer.delete(url, {"reason": "second"}, format="json"), 409, "already_revoked")
    assert AuditLog.objects.filter(event_type="license.revoked").count() == 1
    license.refresh_from_db()
    assert license.revoked_reason == "first"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": 5}])
def test_revoke_needs_a_reason(issuer, make_license, body):
    license = make_license()
    response = issuer.post(f"{URL}/{license.id}/revoke", body, format="json")
    assert "reason" in assert_error(response, 400, "validation_error")["errors"]
    license.refresh_from_db()
    assert license.status == "active"


def test_revoke_an_unknown_license_is_404(issuer, db):
    response = issuer.delete(f"{URL}/{uuid.uuid4()}/revoke", {"reason": "x"}, format="json")
    assert_error(response, 404, "license_not_found")


def test_licenses_are_never_deleted(admin, make_license):
    license = make_license()
    assert_error(admin.delete(f"{URL}/{license.id}"), 405, "method_not_allowed")
    assert License.objects.filter(pk=license.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_revokes_one_succeeds(make_license, make_key):
    license = make_license()
    raw = make_key(Scope.ISSUER, "race")
    url = f"{URL}/{license.id}/revoke"
    start = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def revoke(n: int) -> None:
        client = client_with(raw)
        try:
            start.wait()
            response = client.delete(url, {"reason": f"racer {n}"}, format="json")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=revoke, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 19
    assert AuditLog.objects.filter(event_type="license.revoked", license_id=license.id).count() == 1
