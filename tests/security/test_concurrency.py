"""Races through the API, on PostgreSQL (row locks and the audit chain's lock are real only
there): many clients at once never double-revoke, never lose or duplicate an issue, never
create one customer twice, and a validation that starts after a revoke (or a suspension)
has returned never answers VALID.

The service-level races live in tests/licensing/test_services.py; here every request goes
through authentication, throttling, serializers, the service and the audit trail.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from audit import chain
from audit.models import AuditLog
from customers.models import Customer
from licensing import signing
from licensing.models import License, LicenseStatus
from tests.api.conftest import client_with

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20
LICENSES = "/api/v1/licenses"
MODULE = "biz4a_payroll_drc"


def race(worker: Callable[[int], object], n: int = THREADS) -> list[object]:
    """Run `worker(i)` in `n` threads released together; return their results in order.
    Any exception in a thread fails the test (a thread never dies silently)."""
    start = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = worker(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    assert errors == [], errors
    return results


@pytest.fixture
def issuer_keys(make_key) -> list[str]:
    """Several keys: the racers are different clients, not one client retrying."""
    return [make_key("issuer", f"racer-{i}") for i in range(4)]


def test_twenty_revokes_of_one_license_by_delete_and_post_one_wins(make_license, issuer_keys):
    license = make_license()
    url = f"{LICENSES}/{license.id}/revoke"

    def revoke(i: int):
        client = client_with(issuer_keys[i % len(issuer_keys)])
        method = client.delete if i % 2 else client.post
        response = method(url, {"reason": f"racer {i}"}, format="json")
        return response.status_code, response.json()

    answers = race(revoke)
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: 1, 409: THREADS - 1}
    assert all(body["code"] == "already_revoked" for status, body in answers if status == 409)
    winner = next(body for status, body in answers if status == 200)
    license.refresh_from_db()
    assert license.status == LicenseStatus.REVOKED
    assert license.revoked_reason == winner["revoked_reason"]  # the winner's, not a later one
    rows = AuditLog.objects.filter(event_type="license.revoked", license_id=license.id)
    assert rows.count() == 1
    assert winner["revoked_reason"] in str(rows.get().event_data)
    assert chain.verify().ok


def test_twenty_issues_for_one_customer_are_distinct_and_audited(customer, issuer_keys):
    body = {
        "customer_id": customer.id,
        "module_name": MODULE,
        "allowed_major_versions": ["17"],
        "license_type": "subscription",
        "duration_days": 30,
    }

    def issue(i: int):
        response = client_with(issuer_keys[i % len(issuer_keys)]).post(
            LICENSES, body | {"notes": f"racer {i}"}, format="json"
        )
        return response.status_code, response.json()

    answers = race(issue)
    assert [status for status, _ in answers] == [201] * THREADS
    ids = {answer["id"] for _, answer in answers}
    tokens = {answer["token"] for _, answer in answers}
    assert len(ids) == len(tokens) == THREADS
    assert set(License.objects.values_list("id", flat=True).filter(customer=customer)) == {
        uuid.UUID(i) for i in ids
    }
    audited = AuditLog.objects.filter(event_type="license.issued")
    assert sorted(str(row.license_id) for row in audited) == sorted(ids)
    verifier = signing.verifier()
    for token in tokens:
        assert verifier.verify_token(token).claims["jti"] in ids
    verdict = chain.verify()
    assert verdict.ok, verdict


def test_twenty_creations_of_one_customer_id_make_one_customer(issuer_keys):
    def create(i: int):
        response = client_with(issuer_keys[i % len(issuer_keys)]).post(
            "/api/v1/customers",
            {"id": "CUST-RACE", "name": f"Racer {i}", "email": f"r{i}@x.example"},
            format="json",
        )
        return response.status_code, response.json()

    answers = race(create)
    assert Counter(status for status, _ in answers) == {201: 1, 409: THREADS - 1}
    assert all(body["code"] == "customer_exists" for status, body in answers if status == 409)
    winner = next(body for status, body in answers if status == 201)
    assert Customer.objects.get(pk="CUST-RACE").name == winner["name"]
    created = AuditLog.objects.filter(event_type="customer.created", customer_id="CUST-RACE")
    assert created.count() == 1


# --- A state change racing validations -------------------------------------------------------


def validations_around(change: Callable[[], int], token: str, *, validators: int = 6):
    """Validators loop on `token` while `change()` runs once; returns (answers before the
    change returned, answers that started after it). Each validator stops after 5 requests
    that started after the change returned."""
    changed = threading.Event()
    lock = threading.Lock()
    before: list[str] = []
    after: list[str] = []
    change_status: list[int] = []
    go = threading.Barrier(validators + 1)
    warmed = threading.Event()  # every validator has an answer from before the change
    errors: list[BaseException] = []

    def validate_loop(i: int) -> None:
        client = client_with()
        seen_after = 0
        try:
            go.wait()
            while seen_after < 5:
                started_after = changed.is_set()  # read BEFORE the request is sent
                response = client.post(
                    f"{LICENSES}/validate",
                    {"token": token, "module_name": MODULE, "odoo_version": "17"},
                    format="json",
                    REMOTE_ADDR=f"10.0.0.{i + 1}",
                )
                assert response.status_code == 200, response.content
                with lock:
                    (after if started_after else before).append(response.json()["code"])
                    if len(before) >= validators:
                        warmed.set()
                seen_after += started_after
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def change_once() -> None:
        try:
            go.wait()
            assert warmed.wait(timeout=60), "the validators never answered"
            change_status.append(change())
            changed.set()
        except BaseException as exc:
            errors.append(exc)
            changed.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=validate_loop, args=(i,)) for i in range(validators)]
    threads.append(threading.Thread(target=change_once))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == [], errors
    return change_status[0], before, after


@pytest.fixture
def unthrottled(settings):
    settings.RATE_LIMIT_ENABLED = False  # the validators loop; limits are tested elsewhere


def test_a_validation_started_after_a_revoke_returned_says_revoked(
    make_license, issuer_keys, unthrottled
):
    license = make_license()
    revoker = client_with(issuer_keys[0])

    def revoke() -> int:
        url = f"{LICENSES}/{license.id}/revoke"
        return revoker.delete(url, {"reason": "race"}, format="json").status_code

    status, before, after = validations_around(revoke, license.token)
    assert status == 200
    assert len(after) >= 30 and set(after) == {"REVOKED"}
    assert set(before) <= {"VALID", "REVOKED"}
    assert "VALID" in before  # the validators really were running before the revoke
    audited = Counter(
        AuditLog.objects.filter(event_type="license.validated", license_id=license.id).values_list(
            "event_data__code", flat=True
        )
    )
    assert audited == Counter(before + after)  # every answer has its audit row, and no more


def test_a_validation_started_after_a_suspension_returned_says_suspended(
    make_license, customer, issuer_keys, unthrottled
):
    license = make_license()
    editor = client_with(issuer_keys[0])

    def suspend() -> int:
        url = f"/api/v1/customers/{customer.id}"
        return editor.patch(url, {"is_active": False}, format="json").status_code

    status, before, after = validations_around(suspend, license.token)
    assert status == 200
    assert len(after) >= 30 and set(after) == {"SUSPENDED"}
    assert "VALID" in before
