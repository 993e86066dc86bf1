"""Validation statistics come from maintained rollups and answer exactly what counting the
raw audit rows answers, before, during and after folding, late arrivals included."""

from __future__ import annotations

import datetime as dt
import random
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit import rollups, selectors
from audit.models import AuditLog, RollupCursor, ValidationRollup
from audit.services import audit_record
from licensing.models import LicenseCount, LicenseCountDelta
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db

VALIDATED = "license.validated"
CODES = ["VALID", "VALID", "VALID", "EXPIRED", "REVOKED", "BAD_SIGNATURE", None]


# The definition the rollups must match: counting the raw rows.
def raw_counts(since):
    rows = (
        AuditLog.objects.filter(event_type=VALIDATED, created_at__gte=since)
        .values("event_data__code")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {r["event_data__code"]: r["n"] for r in rows if r["event_data__code"]}


def raw_per_day(days):
    start = timezone.now().date() - dt.timedelta(days=days - 1)
    rows = (
        AuditLog.objects.filter(
            event_type=VALIDATED,
            created_at__gte=dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC),
        )
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {r["day"]: r["n"] for r in rows}
    return [
        (start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0))
        for i in range(days)
    ]


def validations(rng, now, count, *, max_age):
    rows = []
    for _ in range(count):
        code = rng.choice(CODES)
        rows.append(
            AuditLog(
                event_type=VALIDATED,
                actor="public",
                event_data={"code": code} if code else {"fingerprint": None},
                created_at=now - dt.timedelta(seconds=rng.uniform(0, max_age)),
            )
        )
    AuditLog.objects.bulk_create(rows)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def windows(now):
    """Window starts: the stats' own, on the hour, on the minute, beyond the minute rows,
    inside the settle delay, and in the future."""
    on_hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=5)
    return [
        now - dt.timedelta(hours=24),
        now - dt.timedelta(days=30),
        now - dt.timedelta(days=38, minutes=17, seconds=3),
        on_hour,
        on_hour + dt.timedelta(minutes=23),
        now - dt.timedelta(seconds=10),
        now + dt.timedelta(hours=1),
        dt.datetime(2000, 1, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    ]


@pytest.fixture
def history(now, windows):
    rng = random.Random(6)
    validations(rng, now, 600, max_age=40 * 86400)
    validations(rng, now, 60, max_age=3 * 3600)
    for since in windows[:5]:  # crowd the partial hour and minute at each window's start
        validations(rng, since + dt.timedelta(minutes=61), 40, max_age=62 * 60)
    validations(rng, now, 15, max_age=20)  # the newest rows, not settled yet
    audit_record(event_type="customer.created", actor=ACTOR, customer_id="C1")
    return rng


def assert_matches_raw(windows):
    for since in windows:
        assert selectors.validation_counts(since=since) == raw_counts(since), since
    for days in (1, 7, 30, 45):
        assert selectors.validations_per_day(days=days) == raw_per_day(days), days


def test_counts_equal_raw_counts_from_an_empty_rollup(history, windows):
    assert not RollupCursor.objects.exists()
    assert_matches_raw(windows)


def test_folding_moves_the_watermark_but_not_past_unsettled_rows(history, now):
    assert rollups.fold() > 0
    watermark = rollups.watermark()
    settle = dt.timedelta(seconds=30)
    assert not AuditLog.objects.filter(
        id__lte=watermark, created_at__gt=now - settle + dt.timedelta(seconds=1)
    ).exists()
    assert AuditLog.objects.filter(id__gt=watermark, event_type=VALIDATED).count() > 0
    hours = ValidationRollup.objects.filter(period=ValidationRollup.HOUR)
    folded = AuditLog.objects.filter(id__lte=watermark, event_type=VALIDATED).count()
    assert sum(hours.values_list("count", flat=True)) == folded
    minutes = ValidationRollup.objects.filter(period=ValidationRollup.MINUTE)
    assert minutes.filter(start__lt=now - dt.timedelta(days=35)).count() == 0
    assert rollups.fold() == 0  # nothing new settled


def test_counts_equal_raw_counts_after_folding_and_with_late_rows(history, windows, now):
    rollups.fold()
    assert_matches_raw(windows)
    # Rows arriving after a fold, some stamped in hours already folded.
    validations(history, now, 80, max_age=30 * 86400)
    assert_matches_raw(windows)
    rollups.fold()
    assert_matches_raw(windows)


def test_a_partial_fold_answers_the_same(history, windows, monkeypatch):
    monkeypatch.setattr(rollups, "BATCH_IDS", 100)
    first_id = AuditLog.objects.order_by("id").first().id
    assert rollups.fold(max_batches=2) == first_id + 199
    assert rollups.watermark() == first_id + 199
    assert_matches_raw(windows)


def test_everything_settled_is_folded_by_the_selectors_themselves(history, settings):
    settings.VALIDATION_ROLLUP_SETTLE_SECONDS = 0
    selectors.validation_counts(since=timezone.now() - dt.timedelta(days=1))
    assert rollups.watermark() == AuditLog.objects.order_by("-id").first().id


def test_audit_log_total_counts_every_row(history):
    assert selectors.audit_log_total() == AuditLog.objects.count()
    rollups.fold()
    audit_record(event_type="customer.updated", actor=ACTOR, customer_id="C1")
    assert selectors.audit_log_total() == AuditLog.objects.count()


def test_rollup_validations_command(history):
    out = StringIO()
    call_command("rollup_validations", stdout=out)
    watermark = rollups.watermark()
    assert watermark > 0
    assert out.getvalue().splitlines()[0].endswith(f"rollup at id {watermark}")
    out = StringIO()
    call_command("rollup_validations", stdout=out)
    assert out.getvalue().startswith("Folded 0 audit ids")


@pytest.mark.postgres
def test_rollup_validations_command_folds_the_license_counts(make_license):
    make_license()
    make_license(module_name="biz4a_hr")
    out = StringIO()
    call_command("rollup_validations", stdout=out)
    assert "Folded license count changes into 2 counts" in out.getvalue()
    assert not LicenseCountDelta.objects.exists()
    assert LicenseCount.objects.count() == 2


def test_selector_cost_does_not_grow_with_folded_rows(history, django_assert_max_num_queries):
    """Once folded, a window is answered from rollup rows and at most a minute of raw rows:
    the same few queries, whatever the table holds."""
    rollups.fold()
    with django_assert_max_num_queries(10) as ctx:
        selectors.validation_counts(since=timezone.now() - dt.timedelta(days=30))
    audit_queries = [q["sql"] for q in ctx.captured_queries if '"audit_auditlog"' in q["sql"]]
    for sql in audit_queries:
        # Each raw read is bounded by the watermark (the tail) or by a minute of time.
        assert '"audit_auditlog"."id" >' in sql or '"audit_auditlog"."id" <=' in sql, sql
