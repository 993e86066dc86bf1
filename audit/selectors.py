"""Reads of the audit trail worth naming: validation counts for statistics and the dashboard.

Validations are audit rows `event_type="license.validated"` whose `event_data["code"]` is
the contract code answered. The counts come from maintained rollups (`audit/rollups.py`),
so they cost the same at ten thousand or ten million audit rows, and are exact.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone

from audit import chain, rollups
from audit.models import AuditLog

VALIDATED = rollups.VALIDATED


def audit_log_list() -> QuerySet[AuditLog]:
    return AuditLog.objects.all()


def validation_counts(*, since: dt.datetime) -> dict[str, int]:
    """Validations per code since `since`, e.g. `{"VALID": 120, "EXPIRED": 3}`."""
    counts = rollups.counts_since(since)
    return {code: n for code, n in counts.items() if code and n}


def validations_per_day(*, days: int = 30) -> list[tuple[dt.date, int]]:
    """Validations per UTC day over the last `days` days, oldest first, zero-filled."""
    today = timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    counts = rollups.per_day(start)
    return [
        (start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0))
        for i in range(days)
    ]


def audit_log_total() -> int:
    """How many audit rows there are, without counting ten million rows: the chain's length
    (every state change) plus every validation (rollups and their tail), plus the other
    unchained rows (seat check-ins: CONTRACT §9), counted on `audit_type_newest_idx` —
    far fewer than validations, but not folded yet: a cost that grows with them."""
    seq, _ = chain.head()
    validations = sum(rollups.counts_since(dt.datetime.min.replace(tzinfo=dt.UTC)).values())
    others = AuditLog.objects.filter(
        event_type__in=sorted(chain.UNCHAINED_EVENT_TYPES - {VALIDATED})
    ).count()
    return seq + validations + others
