"""Validation counts maintained from the audit trail, so statistics stay cheap at tens of
millions of audit rows without adding a single write to the validate path.

`ValidationRollup` holds, per hour and per minute, the count of every `license.validated`
row with id <= `RollupCursor("validations").last_id` (the watermark). `fold()` reads only
the rows beyond the watermark, adds them to the counts and moves the watermark, in one
transaction. The statistics selectors call it before they read, and `manage.py
rollup_validations` (cron, every minute or so) keeps the unfolded tail short. Readers add
the tail they find beyond the watermark, so every answer is exact whatever the lag.

A window `[since, now]` is answered from whole hours, then whole minutes for the part of
the first hour after `since`, then raw rows for the part of the first minute — never more
than a minute of raw rows, plus the tail. Minute rows older than
`VALIDATION_ROLLUP_MINUTES_DAYS` (35 by default) are dropped; a window starting earlier
than that counts its first partial hour from raw rows (exact, only slower).

Ids are allocated at INSERT but become visible at COMMIT, so a row with a smaller id can
appear after a larger one. The watermark therefore only passes rows older than
`VALIDATION_ROLLUP_SETTLE_SECONDS` (30 s by default): a validation INSERT commits within
milliseconds, and a row still uncommitted after that long would be missed by the rollup.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMinute
from django.utils import timezone

from audit.models import AuditLog, RollupCursor, ValidationRollup

VALIDATED = "license.validated"
CURSOR = "validations"
# Audit ids aggregated per transaction while catching up on a large backlog.
BATCH_IDS = 250_000
# The rollup lives on the primary: it is written on read, and a reader must see the
# watermark and the counts of one and the same state.
DB = "default"
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


class _Raced(Exception):
    """Another process moved the watermark first (SQLite, which has no row locks)."""


def floor(value: dt.datetime, step: dt.timedelta) -> dt.datetime:
    value = value.astimezone(dt.UTC)
    if step == HOUR:
        return value.replace(minute=0, second=0, microsecond=0)
    return value.replace(second=0, microsecond=0)


def ceil(value: dt.datetime, step: dt.timedelta) -> dt.datetime:
    low = floor(value, step)
    return low if low == value else low + step


def _cursor_for_update() -> RollupCursor:
    # On PostgreSQL the row lock serialises folds, and keeps a fold from committing between
    # a reader's watermark and its counts.
    locked = RollupCursor.objects.using(DB).select_for_update()
    cursor = locked.filter(name=CURSOR).first()
    if cursor is None:  # the very first fold (get_or_create survives a concurrent first)
        RollupCursor.objects.using(DB).get_or_create(name=CURSOR)
        cursor = locked.get(name=CURSOR)
    return cursor


def locked_watermark() -> int:
    """The watermark, locked until the caller's transaction ends (call it inside one)."""
    return _cursor_for_update().last_id


def _settled_limit(after_id: int, now: dt.datetime) -> int | None:
    cutoff = now - dt.timedelta(seconds=settings.VALIDATION_ROLLUP_SETTLE_SECONDS)
    return (
        AuditLog.objects.using(DB)
        .filter(id__gt=after_id, created_at__lte=cutoff)
        .aggregate(m=Max("id"))["m"]
    )


def by_code(rows: QuerySet) -> Counter:
    """Count audit rows per `event_data.code` ("" for none)."""
    counts: Counter = Counter()
    for code, n in rows.values_list("event_data__code").annotate(n=Count("id")).order_by():
        counts["" if code is None else str(code)] += n
    return counts


def _minute_counts(lo: int, hi: int) -> Counter:
    rows = (
        AuditLog.objects.using(DB)
        .filter(id__gt=lo, id__lte=hi, event_type=VALIDATED)
        .annotate(minute=TruncMinute("created_at", tzinfo=dt.UTC))
        .values_list("minute", "event_data__code")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: Counter = Counter()
    for minute, code, n in rows:
        counts[(minute, "" if code is None else str(code))] += n
    return counts


def _add(period: str, counts: Counter) -> None:
    if not counts:
        return
    starts = {start for start, _ in counts}
    existing = {
        (r.start, r.code): r.count
        for r in ValidationRollup.objects.using(DB).filter(period=period, start__in=starts)
    }
    # Read-add-write is safe: the cursor row lock is held, no other fold runs.
    ValidationRollup.objects.using(DB).bulk_create(
        [
            ValidationRollup(
                period=period, start=start, code=code, count=existing.get((start, code), 0) + n
            )
            for (start, code), n in counts.items()
        ],
        update_conflicts=True,
        unique_fields=["period", "start", "code"],
        update_fields=["count"],
        batch_size=1000,
    )


def _fold_batch(now: dt.datetime) -> int:
    """Fold at most BATCH_IDS ids beyond the watermark; return how many ids were passed."""
    if _settled_limit(watermark(), now) is None:
        return 0  # an unlocked peek: nothing to fold, no transaction, no lock
    with transaction.atomic(using=DB):
        cursor = _cursor_for_update()
        start = cursor.last_id
        limit = _settled_limit(start, now)
        if limit is None:
            return 0
        first = AuditLog.objects.using(DB).filter(id__gt=start).aggregate(m=Min("id"))["m"]
        end = min(limit, first - 1 + BATCH_IDS)
        minutes = _minute_counts(start, end)
        hours: Counter = Counter()
        for (minute, code), n in minutes.items():
            hours[(floor(minute, HOUR), code)] += n
        keep_after = now - dt.timedelta(days=settings.VALIDATION_ROLLUP_MINUTES_DAYS)
        _add(ValidationRollup.HOUR, hours)
        _add(
            ValidationRollup.MINUTE,
            Counter({key: n for key, n in minutes.items() if key[0] >= keep_after}),
        )
        moved = (
            RollupCursor.objects.using(DB)
            .filter(name=CURSOR, last_id=start)
            .update(last_id=end, updated_at=timezone.now())
        )
        if moved != 1:
            raise _Raced()
        return end - start


def _prune_minutes(now: dt.datetime) -> None:
    keep_after = now - dt.timedelta(days=settings.VALIDATION_ROLLUP_MINUTES_DAYS)
    ValidationRollup.objects.using(DB).filter(
        period=ValidationRollup.MINUTE, start__lt=keep_after
    ).delete()


def fold(*, now: dt.datetime | None = None, max_batches: int | None = None) -> int:
    """Bring the counts up to the settled end of the audit table.

    Returns how many audit ids the watermark moved by. Safe to call from several processes
    at once (PostgreSQL: the cursor row lock; SQLite: a conditional watermark update).
    """
    now = now or timezone.now()
    moved, batches = 0, 0
    while max_batches is None or batches < max_batches:
        try:
            step = _fold_batch(now)
        except (_Raced, IntegrityError):
            break  # another process folded these rows; its result stands
        if step == 0:
            break
        moved += step
        batches += 1
    if moved:
        _prune_minutes(now)
    return moved


def minutes_cover(since: dt.datetime, now: dt.datetime) -> bool:
    """Whether minute rows are still kept for the minute starting at `since`."""
    return since >= now - dt.timedelta(days=settings.VALIDATION_ROLLUP_MINUTES_DAYS) + MINUTE


def rolled_up(period: str, *, start: dt.datetime, end: dt.datetime | None = None) -> Counter:
    rows = ValidationRollup.objects.using(DB).filter(period=period, start__gte=start)
    if end is not None:
        rows = rows.filter(start__lt=end)
    return Counter(dict(rows.values_list("code").annotate(n=Sum("count")).order_by()))


def raw(watermark: int, *, folded: bool) -> QuerySet:
    """Validation rows on one side of the watermark."""
    rows = AuditLog.objects.using(DB).filter(event_type=VALIDATED)
    return rows.filter(id__lte=watermark) if folded else rows.filter(id__gt=watermark)


def counts_since(since: dt.datetime, *, now: dt.datetime | None = None) -> Counter:
    """Validations per code with `created_at >= since` (codes as stored, "" for none)."""
    now = now or timezone.now()
    since = since.astimezone(dt.UTC)
    fold(now=now)
    with transaction.atomic(using=DB):
        watermark = locked_watermark()
        first_hour = ceil(since, HOUR)
        counts = rolled_up(ValidationRollup.HOUR, start=first_hour)
        head = raw(watermark, folded=True).filter(created_at__gte=since, created_at__lt=first_hour)
        if since < first_hour and minutes_cover(since, now):
            first_minute = ceil(since, MINUTE)
            counts += rolled_up(ValidationRollup.MINUTE, start=first_minute, end=first_hour)
            head = head.filter(created_at__lt=first_minute)
        counts += by_code(head)
        counts += by_code(raw(watermark, folded=False).filter(created_at__gte=since))
    return counts


def per_day(start: dt.date, *, now: dt.datetime | None = None) -> Counter:
    """Validations per UTC day from the midnight starting `start` on."""
    now = now or timezone.now()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    fold(now=now)
    counts: Counter = Counter()
    with transaction.atomic(using=DB):
        watermark = locked_watermark()
        days = (
            ValidationRollup.objects.using(DB)
            .filter(period=ValidationRollup.HOUR, start__gte=since)
            .annotate(day=TruncDate("start", tzinfo=dt.UTC))
            .values_list("day")
            .annotate(n=Sum("count"))
            .order_by()
        )
        for day, n in days:
            counts[day] += n
        tail = (
            raw(watermark, folded=False)
            .filter(created_at__gte=since)
            .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
            .values_list("day")
            .annotate(n=Count("id"))
            .order_by()
        )
        for day, n in tail:
            counts[day] += n
    return counts


def watermark() -> int:
    """The id up to which the counts are folded (0 before the first fold)."""
    return (
        RollupCursor.objects.using(DB).filter(name=CURSOR).values_list("last_id", flat=True).first()
        or 0
    )
