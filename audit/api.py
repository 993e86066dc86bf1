"""`/api/v1/admin/audit-logs`: the audit trail, newest first, cursor-paginated (admin keys)."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from aegis.core.api.filters import InstantFilter
from aegis.core.api.pagination import NewestFirstCursorPagination
from aegis.core.api.schema import PROTECTED, errors
from aegis.core.api.scopes import Scope
from aegis.core.api.serializers import instant
from audit.models import AuditLog
from audit.selectors import audit_log_list


class AuditLogSerializer(serializers.ModelSerializer):
    event_data = serializers.DictField(help_text="Event details; secrets are masked.")

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "created_at",
            "event_type",
            "actor",
            "license_id",
            "customer_id",
            "module_name",
            "ip",
            "request_id",
            "event_data",
        ]
        read_only_fields = fields

    def to_representation(self, row: AuditLog) -> dict:
        """What the declared fields give (tests/perf/test_serializers.py compares the two),
        written out: DRF's per-field machinery was most of a page's CPU
        (docs/performance.md)."""
        return {
            "id": row.id,
            "created_at": instant(row.created_at),
            "event_type": row.event_type,
            "actor": row.actor,
            "license_id": str(row.license_id) if row.license_id is not None else None,
            "customer_id": row.customer_id,
            "module_name": row.module_name,
            "ip": row.ip,
            "request_id": row.request_id,
            "event_data": {str(key): value for key, value in row.event_data.items()},
        }


class AuditLogFilter(filters.FilterSet):
    event_type = filters.CharFilter(max_length=64, help_text="e.g. `license.revoked`")
    license_id = filters.UUIDFilter()
    customer_id = filters.CharFilter(max_length=50)
    actor = filters.CharFilter(max_length=200, help_text="e.g. `api_key:erp`, `user:alice`")
    since = InstantFilter(
        field_name="created_at", lookup_expr="gte", help_text="At or after (ISO 8601)."
    )
    until = InstantFilter(field_name="created_at", lookup_expr="lt", help_text="Before (ISO 8601).")

    class Meta:
        model = AuditLog
        fields = []


@extend_schema_view(
    list=extend_schema(
        summary="List audit log entries",
        description="Newest first. Follow `next` for older entries (cursor pagination).",
        responses={200: AuditLogSerializer(many=True), **errors(400, *PROTECTED)},
    )
)
class AuditLogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = AuditLog.objects.all()
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilter
    pagination_class = NewestFirstCursorPagination
    read_scope = Scope.ADMIN
    write_scope = Scope.ADMIN

    def get_queryset(self):
        return audit_log_list()
