"""`GET /api/v1/admin/stats`: the seed's counters plus validations per code and seats
(admin keys)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aegis.core.api.schema import PROTECTED, errors
from aegis.core.api.scopes import Scope
from audit.selectors import audit_log_total, validation_counts
from customers.models import Customer
from licensing.models import LicenseType
from licensing.selectors import activations_per_day, license_counts, seats_in_use
from licensing.verification import Code

ACTIVATION_DAYS = 30


def _per_code(counts: dict[str, int]) -> dict[str, int]:
    return {code.value: counts.get(code.value, 0) for code in Code}


def stats_summary(*, now: dt.datetime | None = None) -> dict:
    """Counts over the whole database; a fixed number of aggregate queries."""
    now = now or timezone.now()
    customers = Customer.objects.aggregate(
        total=Count("pk"), active=Count("pk", filter=Q(is_active=True))
    )
    licenses = license_counts(now=now)
    return {
        "customers": {
            "total": customers["total"],
            "active": customers["active"],
            "inactive": customers["total"] - customers["active"],
        },
        "licenses": {
            "total": licenses.total,
            "active": licenses.active,
            "revoked": licenses.revoked,
            "expired": licenses.expired,
            "by_type": {t: licenses.by_type.get(t, 0) for t in LicenseType.values},
            "by_module": dict(sorted(licenses.by_module.items())),
        },
        "audit_logs": {"total": audit_log_total()},
        "validations": {
            "last_24h": _per_code(validation_counts(since=now - dt.timedelta(hours=24))),
            "last_30d": _per_code(validation_counts(since=now - dt.timedelta(days=30))),
        },
        "activations": {
            "seats_in_use": seats_in_use(now=now),
            "per_day": [
                {"date": day.isoformat(), "count": n}
                for day, n in activations_per_day(days=ACTIVATION_DAYS)
            ],
        },
    }


class _CustomerStats(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    inactive = serializers.IntegerField()


class _LicenseStats(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    revoked = serializers.IntegerField()
    expired = serializers.IntegerField()
    by_type = serializers.DictField(child=serializers.IntegerField())
    by_module = serializers.DictField(child=serializers.IntegerField())


class _AuditStats(serializers.Serializer):
    total = serializers.IntegerField()


class _ValidationStats(serializers.Serializer):
    last_24h = serializers.DictField(
        child=serializers.IntegerField(), help_text="Validations per code (every contract code)."
    )
    last_30d = serializers.DictField(child=serializers.IntegerField())


class _ActivationsPerDay(serializers.Serializer):
    date = serializers.DateField()
    count = serializers.IntegerField()


class _ActivationStats(serializers.Serializer):
    seats_in_use = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Seats held now (activations not released, lease running), per environment.",
    )
    per_day = _ActivationsPerDay(
        many=True, help_text="New activations per UTC day, the last 30 days, oldest first."
    )


class StatsSerializer(serializers.Serializer):
    customers = _CustomerStats()
    licenses = _LicenseStats()
    audit_logs = _AuditStats()
    validations = _ValidationStats()
    activations = _ActivationStats()


class AdminStatsView(APIView):
    read_scope = Scope.ADMIN
    write_scope = Scope.ADMIN

    @extend_schema(
        summary="Server statistics",
        responses={200: StatsSerializer, **errors(*PROTECTED)},
    )
    def get(self, request):
        return Response(stats_summary())
