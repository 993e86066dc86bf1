"""The license counts PostgreSQL keeps (licensing/counts.py, migration 0007) always equal
the counts read from the licenses themselves: after every kind of write, across month
boundaries, after rollbacks, under concurrent writers and folds, and after the migration
counted the licenses already there."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F, Sum
from django.utils import timezone

from licensing import counts, services
from licensing.models import License, LicenseCount, LicenseCountDelta
from licensing.selectors import LicenseCounts, license_counts, license_counts_scan
from tests.api.conftest import ACTOR
from tests.security.test_concurrency import race

pytestmark = pytest.mark.postgres

UTC = dt.UTC


def as_dict(result: LicenseCounts) -> dict:
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return {k: dict(v) if isinstance(v, dict) else v for k, v in fields.items()}


def both(now: dt.datetime) -> tuple[dict, dict]:
    return as_dict(license_counts(now=now)), as_dict(license_counts_scan(now=now))


def assert_counts_exact(now: dt.datetime | None = None) -> dict:
    kept, scanned = both(now or timezone.now())
    assert kept == scanned
    return kept


def set_expiry(license: License, expires_at: dt.datetime | None) -> None:
    License.objects.filter(pk=license.pk).update(expires_at=expires_at)


@pytest.mark.django_db
def test_counts_follow_every_kind_of_write(make_license, customer):
    now = timezone.now()
    perpetual = make_license()
    subscription = make_license(
        module_name="biz4a_hr", license_type="subscription", duration_days=30
    )
    demo = make_license(license_type="demo", duration_days=7)
    assert assert_counts_exact()["total"] == 3

    services.license_revoke(actor=ACTOR, license_id=demo.id, reason="refund")
    assert assert_counts_exact()["revoked"] == 1

    services.license_update_notes(actor=ACTOR, license_id=perpetual.id, notes="vip")
    set_expiry(subscription, now - dt.timedelta(days=40))  # into an earlier month
    assert assert_counts_exact()["expired"] == 1
    set_expiry(subscription, None)  # perpetual now
    set_expiry(perpetual, now + dt.timedelta(days=400))
    kept = assert_counts_exact()
    assert (kept["expired"], kept["by_module"]) == (0, {"biz4a_payroll_drc": 2, "biz4a_hr": 1})

    License.objects.filter(pk=perpetual.pk).update(module_name="biz4a_pos", license_type="demo")
    kept = assert_counts_exact()
    assert kept["by_type"] == {"subscription": 1, "demo": 2}

    License.objects.filter(pk=demo.pk).delete()
    assert assert_counts_exact()["total"] == 2


@pytest.mark.django_db
def test_on_postgresql_the_statistics_read_the_kept_counts(make_license):
    """Not the licenses: a count row changed behind the triggers' back shows."""
    make_license()
    make_license(module_name="biz4a_hr")
    counts.fold()
    LicenseCount.objects.filter(module_name="biz4a_hr").update(n=F("n") + 10)
    assert license_counts().by_module == {"biz4a_payroll_drc": 1, "biz4a_hr": 11}
    assert license_counts_scan().by_module == {"biz4a_payroll_drc": 1, "biz4a_hr": 1}


@pytest.mark.django_db
def test_a_write_rolled_back_takes_its_counts_with_it(make_license):
    make_license()
    before = assert_counts_exact()
    with pytest.raises(RuntimeError), transaction.atomic():
        make_license(license_type="subscription", duration_days=30)
        assert LicenseCountDelta.objects.filter(license_type="subscription").exists()
        raise RuntimeError("rolled back")
    assert assert_counts_exact() == before


@pytest.mark.django_db
@pytest.mark.parametrize("day", [3, 27], ids=["early in the month", "late in the month"])
def test_expired_this_month_counted_at_the_instant_asked(make_license, day):
    """Both ways of counting the current month: what already passed, or the month's count
    less what is still to come."""
    now = dt.datetime(2026, 11, day, 12, 0, tzinfo=UTC)
    expiries = [
        dt.datetime(2026, 10, 31, 23, 59, tzinfo=UTC),  # last month
        dt.datetime(2026, 11, 1, 0, 0, tzinfo=UTC),  # first instant of the month
        now - dt.timedelta(hours=1),
        now,  # expires_at <= now is expired
        now + dt.timedelta(seconds=1),
        dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),  # last second of the month
        dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC),  # next month
        None,
    ]
    for expires_at in expiries:
        set_expiry(make_license(license_type="subscription", duration_days=30), expires_at)
    revoked = make_license(license_type="subscription", duration_days=30)
    set_expiry(revoked, now - dt.timedelta(hours=2))
    services.license_revoke(actor=ACTOR, license_id=revoked.id, reason="x")

    kept = assert_counts_exact(now)
    assert (kept["total"], kept["expired"], kept["revoked"]) == (9, 4, 1)
    counts.fold()
    assert assert_counts_exact(now) == kept


@pytest.mark.django_db
def test_fold_leaves_one_row_per_key_and_the_same_counts(make_license):
    for _ in range(3):
        make_license()
    make_license(module_name="biz4a_hr")
    gone = make_license(module_name="biz4a_gone")
    License.objects.filter(pk=gone.pk).delete()
    assert LicenseCountDelta.objects.count() == 6  # one per insert, one for the delete
    before = as_dict(license_counts_scan())

    counts.fold()
    assert not LicenseCountDelta.objects.exists()
    assert sorted(LicenseCount.objects.values_list("module_name", "n")) == [
        ("biz4a_hr", 1),
        ("biz4a_payroll_drc", 3),
    ]  # biz4a_gone folded to zero and dropped
    assert assert_counts_exact() == before
    assert counts.fold() == 0


@pytest.mark.django_db
def test_bulk_inserts_are_counted_per_statement(customer):
    now = timezone.now()
    rows = [
        License(
            customer=customer,
            module_name=f"biz4a_m{i % 3}",
            license_type="subscription",
            token="t",
            key_id="k",
            issued_at=now,
            expires_at=now + dt.timedelta(days=i * 20 - 200),
        )
        for i in range(30)
    ]
    License.objects.bulk_create(rows)
    assert assert_counts_exact()["total"] == 30
    assert LicenseCountDelta.objects.count() <= 3 * 13  # grouped per key, not per row


@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_revokes_and_folds_lose_nothing(customer):
    def work(i: int):
        if i % 5 == 4:
            for _ in range(5):
                counts.fold()
            return None
        issued = [
            services.license_issue(
                actor=ACTOR,
                customer_id=customer.id,
                module_name=f"biz4a_m{i % 2}",
                allowed_major_versions=["17"],
                license_type="subscription",
                duration_days=30,
            )
            for _ in range(3)
        ]
        services.license_revoke(actor=ACTOR, license_id=issued[0].id, reason="race")
        return len(issued)

    issued = sum(n for n in race(work, n=15) if n)
    kept = assert_counts_exact()
    assert (kept["total"], kept["revoked"]) == (issued, issued // 3)


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_licenses_already_there(make_license):
    for license_type, days in [("perpetual", None), ("subscription", 30), ("demo", 7)]:
        make_license(license_type=license_type, duration_days=days)
    expected = assert_counts_exact()

    customer_id = License.objects.values_list("customer_id", flat=True).first()
    executor = MigrationExecutor(connection)
    before = [("licensing", "0006_trgm_fastupdate_off")]
    executor.migrate(before)
    # A license written before the triggers, with the model of that time.
    old_license = executor.loader.project_state(before).apps.get_model("licensing", "License")
    now = timezone.now()
    old_license.objects.create(
        customer_id=customer_id,
        module_name="biz4a_payroll_drc",
        license_type="subscription",
        token="t-before",
        key_id="k",
        issued_at=now,
        expires_at=now + dt.timedelta(days=60),
    )
    executor.loader.build_graph()
    executor.migrate([("licensing", "0007_license_counts")])

    assert not LicenseCountDelta.objects.exists()
    assert LicenseCount.objects.aggregate(n=Sum("n"))["n"] == 4
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # the schema the other tests expect
    assert assert_counts_exact()["total"] == expected["total"] + 1


@pytest.mark.django_db(transaction=True)
def test_one_writer_never_waits_for_another_on_the_counts(customer):
    """Two transactions adding licenses of the same key both get past their INSERT while
    neither has committed: the triggers append, no counter row is shared and locked."""
    both_inserted = threading.Barrier(2, timeout=10)

    def insert(i: int) -> None:
        with transaction.atomic():
            License.objects.create(
                customer=customer,
                module_name="biz4a_payroll_drc",
                license_type="perpetual",
                token=f"t{i}",
                key_id="k",
                issued_at=timezone.now(),
            )
            both_inserted.wait()  # a writer blocked on the other's lock never gets here

    race(insert, n=2)
    assert assert_counts_exact()["total"] == 2
