from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from customers.models import Customer
from licensing import counts, rules
from licensing.models import Activation, Environment, License, LicenseStatus


def license_list() -> QuerySet[License]:
    return License.objects.select_related("customer")


# A list row (licensing.api.LicenseSerializer) shows every column of the license, and the
# customer's name.
ROW_FIELDS = tuple(field.attname for field in License._meta.concrete_fields)


def license_rows(queryset: QuerySet[License]) -> QuerySet[dict]:
    """The rows of a page of `license_list()` as dictionaries: no License and Customer built
    per row (the same output, tests/perf/test_serializers.py). Only for reading a page:
    counts and filters stay on the licenses alone, without the customer's name.

    The name comes from a scalar subquery, not a join: PostgreSQL looks up the customers
    of the page's rows only, after the sort (a search matching a few licenses hashed
    every customer to join them; docs/performance.md)."""
    name = Customer.objects.filter(pk=OuterRef("customer_id")).order_by().values("name")[:1]
    return queryset.values(*ROW_FIELDS, customer_name=Subquery(name))


def license_get(license_id: uuid.UUID | str) -> License | None:
    try:
        pk = uuid.UUID(str(license_id))
    except ValueError:
        return None
    return license_list().filter(pk=pk).first()


@dataclass
class LicenseCounts:
    total: int = 0
    revoked: int = 0
    expired: int = 0  # active, past expires_at
    by_type: Counter = field(default_factory=Counter)
    by_module: Counter = field(default_factory=Counter)

    @property
    def active(self) -> int:
        return self.total - self.revoked - self.expired


def license_counts(*, now: dt.datetime | None = None) -> LicenseCounts:
    """Every count the statistics show. On PostgreSQL from the counts its triggers keep
    (`licensing.counts`: a few thousand rows and this month's expiries, however many
    licenses); elsewhere from the licenses themselves (`license_counts_scan`)."""
    now = now or timezone.now()
    if connection.vendor != "postgresql":
        return license_counts_scan(now=now)
    counts.fold()
    return _tally(counts.rows(now))


def license_counts_scan(*, now: dt.datetime | None = None) -> LicenseCounts:
    """The same counts from one pass over `license_stats_idx` (module, type, status,
    expiry): an index-only scan of every license, slow at a million
    (docs/performance.md)."""
    now = now or timezone.now()
    rows = (
        License.objects.order_by()
        .values_list("module_name", "license_type", "status")
        .annotate(n=Count("*"), past=Count("expires_at", filter=Q(expires_at__lte=now)))
    )
    return _tally(rows)


def _tally(rows) -> LicenseCounts:
    result = LicenseCounts()
    for module_name, license_type, status, n, past in rows:
        if not n:
            continue
        result.total += n
        result.by_type[license_type] += n
        result.by_module[module_name] += n
        if status == LicenseStatus.REVOKED:
            result.revoked += n
        else:
            result.expired += past
    return result


# --- Seats (CONTRACT §9) --------------------------------------------------------------------

# An activation is `active` while it holds its seat (licensing/rules.py: not released, lease
# running), `expired` when its lease ran out (the seat is free), `released` when given back.
ACTIVATION_STATUSES = ("active", "expired", "released")


def activation_status(activation: Activation, now: dt.datetime) -> str:
    if activation.released_at is not None:
        return "released"
    return "active" if activation.lease_expires_at > now else "expired"


def activation_status_filter(status: str, now: dt.datetime) -> Q:
    """The activations in `status` (one of ACTIVATION_STATUSES) at `now`."""
    if status == "active":
        return rules.holding(now)
    if status == "expired":
        return Q(released_at__isnull=True, lease_expires_at__lte=now)
    return Q(released_at__isnull=False)


def activations_with_clones(queryset: QuerySet[Activation], now: dt.datetime) -> QuerySet:
    """`queryset` with `clone_suspected`: the activation holds its seat and another of the
    same license holds one with the same database uuid on another domain."""
    peers = (
        Activation.objects.filter(license_id=OuterRef("license_id"), db_uuid=OuterRef("db_uuid"))
        .filter(rules.holding(now))
        .exclude(domain=OuterRef("domain"))
    )
    suspected = ExpressionWrapper(Exists(peers) & rules.holding(now), output_field=BooleanField())
    return queryset.annotate(clone_suspected=suspected)


def activation_list(
    *, license_id: uuid.UUID | str, status: str | None = None, now: dt.datetime | None = None
) -> QuerySet[Activation] | None:
    """A license's activations, newest check-in first, with `clone_suspected`; None when
    there is no such license."""
    now = now or timezone.now()
    try:
        pk = uuid.UUID(str(license_id))
    except ValueError:
        return None
    if not License.objects.filter(pk=pk).exists():
        return None
    queryset = Activation.objects.filter(license_id=pk)
    if status is not None:
        queryset = queryset.filter(activation_status_filter(status, now))
    return activations_with_clones(queryset, now).order_by("-last_seen_at", "-id")


def seats_in_use(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Seats held now, per environment (every environment, zero included)."""
    now = now or timezone.now()
    held = (
        Activation.objects.filter(rules.holding(now))
        .order_by()
        .values_list("environment")
        .annotate(n=Count("*"))
    )
    return dict.fromkeys(Environment.values, 0) | dict(held)


def activations_per_day(*, days: int = 30) -> list[tuple[dt.date, int]]:
    """New activations (seats first taken) per UTC day over the last `days` days, oldest
    first, zero-filled."""
    today = timezone.now().astimezone(dt.UTC).date()
    start = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    counts = dict(
        Activation.objects.filter(first_seen_at__gte=since)
        .annotate(day=TruncDate("first_seen_at", tzinfo=dt.UTC))
        .order_by()
        .values_list("day")
        .annotate(n=Count("*"))
    )
    return [
        (start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0))
        for i in range(days)
    ]
