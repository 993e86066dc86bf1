"""Seats under a race, on PostgreSQL (CONTRACT §9): instances activating a license at once
never get more seats than it has, and every seat granted has exactly one audit row.

Each request goes through the public route (throttles off: the racers share an address),
the service's row lock on the license and the audit chain's lock.
"""

from __future__ import annotations

from collections import Counter

import pytest

from audit import chain
from audit.models import AuditLog
from licensing.models import Activation
from tests.api.conftest import client_with
from tests.security.test_concurrency import THREADS, race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SEATS = 5
MODULE = "biz4a_payroll_drc"


@pytest.fixture(autouse=True)
def unthrottled(settings):
    settings.RATE_LIMIT_ENABLED = False


def activate(token: str, n: int, **fields) -> tuple[int, dict]:
    response = client_with().post(
        "/api/v1/licenses/activate",
        {
            "token": token,
            "module_name": MODULE,
            "odoo_version": "17.0",
            "instance_db_uuid": f"db-{n}",
            "instance_domain": f"erp{n}.example.com",
        }
        | fields,
        format="json",
    )
    return response.status_code, response.json()


def test_twenty_instances_racing_for_five_seats_get_exactly_five(make_license):
    license = make_license(max_instances=SEATS)

    answers = race(lambda i: activate(license.token, i))

    assert {status for status, _ in answers} == {200}
    codes = Counter(body["code"] for _, body in answers)
    assert codes == {"VALID": SEATS, "SEATS_EXCEEDED": THREADS - SEATS}
    granted = {body["activation_id"] for _, body in answers if body["code"] == "VALID"}
    seats = Activation.objects.filter(license=license)
    assert {str(pk) for pk in seats.values_list("id", flat=True)} == granted
    created = AuditLog.objects.filter(event_type="activation.created", license_id=license.id)
    assert sorted(row.event_data["activation_id"] for row in created) == sorted(granted)
    refused = AuditLog.objects.filter(event_type="activation.refused", license_id=license.id)
    assert refused.count() == THREADS - SEATS
    assert chain.verify().ok


def test_one_instance_racing_itself_holds_one_seat(make_license):
    """The same instance checking in from twenty workers at once: one activation, created
    once, the other nineteen are heartbeats of it."""
    license = make_license(max_instances=SEATS)

    answers = race(lambda i: activate(license.token, 1))

    assert Counter(body["code"] for _, body in answers) == {"VALID": THREADS}
    assert len({body["activation_id"] for _, body in answers}) == 1
    assert Activation.objects.filter(license=license).count() == 1
    events = Counter(
        AuditLog.objects.filter(
            license_id=license.id, event_type__startswith="activation."
        ).values_list("event_type", flat=True)
    )
    assert events == {"activation.created": 1, "activation.heartbeat": THREADS - 1}
