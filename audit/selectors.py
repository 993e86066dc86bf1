"""Reads of the audit trail worth naming: validation counts for statistics and the dashboard.

Validations are audit rows `event_type="license.validated"` whose `event_data["code"]` is
the contract code answered.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditLog

VALIDATED = "license.validated"


def audit_log_list() -> QuerySet[AuditLog]:
    return AuditLog.objects.all()


def validation_counts(*, since: dt.datetime) -> dict[str, int]:
    """Validations per code since `since`, e.g. `{"VALID": 120, "EXPIRED": 3}`."""
    rows = (
        AuditLog.objects.filter(event_type=VALIDATED, created_at__gte=since)
        .values("event_data__code")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["event_data__code"]: row["n"] for row in rows if row["event_data__code"]}


def validations_per_day(*, days: int = 30) -> list[tuple[dt.date, int]]:
    """Validations per UTC day over the last `days` days, oldest first, zero-filled."""
    today = timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
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
    counts = {row["day"]: row["n"] for row in rows}
    return [
        (start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0))
        for i in range(days)
    ]
