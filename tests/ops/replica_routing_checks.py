"""Replica routing against two real databases: rows written only to the replica show which
database a request read. Run by tests/ops/test_replica_routing.py (not collected alone).

The replica is a second database on the same server, filled by hand here: it stands for a
streaming replica a moment behind the primary."""

from __future__ import annotations

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from aegis.core.api.scopes import Scope
from aegis.core.routers import replica_reads
from aegis.services import api_key_create, api_key_revoke
from customers.models import Customer
from customers.services import customer_create
from licensing import services
from licensing.models import License
from tests.conftest import ACTOR

# transaction=True: requests run outside any transaction, as in production (inside one,
# every read goes to the primary by design).
pytestmark = pytest.mark.django_db(databases=["default", "replica"], transaction=True)


@pytest.fixture
def admin_key():
    _, raw = api_key_create(actor=ACTOR, name="routing", scope=Scope.ADMIN)
    return raw


@pytest.fixture
def client(admin_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=admin_key)
    return client


@pytest.fixture
def primary_customer():
    return customer_create(actor=ACTOR, id="ON-PRIMARY", name="Primary Ltd", email="p@x.example")


@pytest.fixture
def replica_customer():
    return Customer.objects.using("replica").create(
        id="ON-REPLICA", name="Replica Ltd", email="r@x.example"
    )


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_lists_read_the_replica_and_authenticate_on_the_primary(
    client, primary_customer, replica_customer
):
    # The API key exists on the primary only: authentication read the primary.
    assert ids(client.get("/api/v1/customers")) == {"ON-REPLICA"}
    assert ids(client.get("/api/v1/customers/")) == {"ON-REPLICA"}


def test_detail_reads_the_primary(client, primary_customer, replica_customer):
    assert client.get("/api/v1/customers/ON-PRIMARY").status_code == 200
    assert client.get("/api/v1/customers/ON-REPLICA").status_code == 404


def test_stats_count_the_replica(client, primary_customer, replica_customer):
    Customer.objects.using("replica").create(id="ON-REPLICA-2", name="Two", email="t@x.example")
    response = client.get("/api/v1/admin/stats")
    assert response.status_code == 200, response.content
    assert response.json()["customers"]["total"] == 2


def test_validate_reads_the_primary_so_a_revocation_counts_at_once(client, primary_customer):
    license = services.license_issue(
        actor=ACTOR,
        customer_id=primary_customer.id,
        module_name="biz4a_payroll_drc",
        allowed_major_versions=["17"],
        license_type="perpetual",
    )
    # The replica has the license as it was before the revocation (replication lag).
    Customer.objects.using("replica").create(
        id=primary_customer.id, name=primary_customer.name, email=primary_customer.email
    )
    row = License.objects.get(pk=license.pk)
    row._state.db = "replica"
    License.objects.using("replica").bulk_create([row])
    services.license_revoke(actor=ACTOR, license_id=license.id, reason="chargeback")

    lagging = client.get("/api/v1/licenses", {"status": "active"})
    assert ids(lagging) == {str(license.id)}  # the list is a moment behind...
    answer = APIClient().post(
        "/api/v1/licenses/validate",
        {"token": license.token, "module_name": "biz4a_payroll_drc", "odoo_version": "17"},
        format="json",
    )
    assert answer.status_code == 200
    assert answer.json()["code"] == "REVOKED"  # ...validation is not


def test_a_revoked_key_is_refused_at_once_on_replica_routes(client, admin_key):
    assert client.get("/api/v1/customers").status_code == 200
    api_key_revoke(actor=ACTOR, prefix=admin_key.partition(".")[0])
    assert client.get("/api/v1/customers").status_code == 401


def test_writes_and_transactions_use_the_primary(primary_customer, replica_customer):
    with replica_reads():
        assert list(Customer.objects.values_list("id", flat=True)) == ["ON-REPLICA"]
        created = customer_create(actor=ACTOR, id="NEW", name="New", email="n@x.example")
        assert created._state.db == "default"
        with transaction.atomic():
            assert set(Customer.objects.values_list("id", flat=True)) == {"ON-PRIMARY", "NEW"}
    assert not Customer.objects.using("replica").filter(id="NEW").exists()
    # Outside replica_reads() every read is the primary's.
    assert set(Customer.objects.values_list("id", flat=True)) == {"ON-PRIMARY", "NEW"}
