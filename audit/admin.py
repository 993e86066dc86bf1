"""The audit log in the back-office: read-only for everyone, superusers included.

Filters and search are answered from the table's indexes (event type, actor, license id,
customer id, date), so the pages stay fast with millions of validation rows.
"""

from __future__ import annotations

import json
import uuid

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from aegis.core.adminkit import CalendarDrilldownChangeList, LargeTablePaginator, distinct_values
from audit.models import AuditLog


class EventTypeFilter(admin.SimpleListFilter):
    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(v, v) for v in distinct_values(AuditLog, "event_type")]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        return [(v, v) for v in distinct_values(AuditLog, "actor", limit=50)]

    def queryset(self, request, queryset):
        return queryset.filter(actor=self.value()) if self.value() else queryset


class _ExactValueFilter(admin.SimpleListFilter):
    """A filter reached through links ("Audit trail" on a license or customer page): shown
    only while active, so the sidebar says what the list is narrowed to."""

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, value)] if value else []

    def has_output(self):
        return bool(self.value())


class LicenseIdFilter(_ExactValueFilter):
    title = "license"
    parameter_name = "license_id"

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            return queryset.filter(license_id=uuid.UUID(self.value()))
        except ValueError:
            return queryset.none()


class CustomerIdFilter(_ExactValueFilter):
    title = "customer"
    parameter_name = "customer_id"

    def queryset(self, request, queryset):
        return queryset.filter(customer_id=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = (
        "when",
        "event",
        "actor",
        "license",
        "customer",
        "module_name",
        "summary",
        "ip",
    )
    list_display_links = ("when",)
    list_filter = (EventTypeFilter, ActorFilter, LicenseIdFilter, CustomerIdFilter)
    date_hierarchy = "created_at"
    search_fields = ("=customer_id",)  # see get_search_results
    search_help_text = "A license id, a customer id or an actor (exact)."
    list_per_page = 100
    paginator = LargeTablePaginator
    show_full_result_count = False
    actions = None
    empty_value_display = "—"
    change_list_template = "admin/audit/auditlog/change_list.html"

    # --- read-only for everyone ----------------------------------------------------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changelist(self, request, **kwargs):
        return CalendarDrilldownChangeList

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(license_id=uuid.UUID(term)), False
        except ValueError:
            # Exact matches only: each is answered from an index.
            return queryset.filter(Q(customer_id=term) | Q(actor=term)), False

    # --- the list ----------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Audit log"} | (extra_context or {}))

    @admin.display(description="When", ordering="created_at")
    def when(self, obj: AuditLog) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Event", ordering="event_type")
    def event(self, obj: AuditLog) -> str:
        return format_html('<span class="aegis-event-type">{}</span>', obj.event_type)

    @admin.display(description="License")
    def license(self, obj: AuditLog) -> str:
        if not obj.license_id:
            return "—"
        url = reverse("admin:licensing_license_change", args=[obj.license_id])
        return format_html(
            '<a class="aegis-mono" href="{}" title="{}">{}</a>',
            url,
            obj.license_id,
            str(obj.license_id)[:8],
        )

    @admin.display(description="Customer", ordering="customer_id")
    def customer(self, obj: AuditLog) -> str:
        if not obj.customer_id:
            return "—"
        # A link to the customer's trail: the customer itself may have been deleted since.
        url = reverse("admin:audit_auditlog_changelist") + f"?customer_id={obj.customer_id}"
        return format_html('<a class="aegis-mono" href="{}">{}</a>', url, obj.customer_id)

    @admin.display(description="Details")
    def summary(self, obj: AuditLog) -> str:
        data = obj.event_data or {}
        if "code" in data:
            ok = " aegis-code-ok" if data["code"] == "VALID" else ""
            return format_html('<span class="aegis-code{}">{}</span>', ok, data["code"])
        if "reason" in data:
            return Truncator(f"reason: {data['reason']}").chars(80)
        text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
        return Truncator(text).chars(80)

    # --- the entry page ----------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {"title": f"Audit entry #{object_id}"} | (extra_context or {})
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fields(self, request, obj=None):
        return [
            "when",
            "event_type",
            "actor",
            "license_link",
            "customer_link",
            "module_name",
            "ip",
            "request_id",
            "event_data_pretty",
            *[name for name in ("chain_seq", "prev_hash", "hash") if hasattr(AuditLog, name)],
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="License")
    def license_link(self, obj: AuditLog) -> str:
        if not obj.license_id:
            return "—"
        return format_html(
            '<a class="aegis-mono" href="{}">{}</a> · <a href="{}">its audit trail</a>',
            reverse("admin:licensing_license_change", args=[obj.license_id]),
            obj.license_id,
            reverse("admin:audit_auditlog_changelist") + f"?license_id={obj.license_id}",
        )

    @admin.display(description="Customer")
    def customer_link(self, obj: AuditLog) -> str:
        if not obj.customer_id:
            return "—"
        return format_html(
            '<a class="aegis-mono" href="{}">{}</a> · <a href="{}">its audit trail</a>',
            reverse("admin:customers_customer_change", args=[obj.customer_id]),
            obj.customer_id,
            reverse("admin:audit_auditlog_changelist") + f"?customer_id={obj.customer_id}",
        )

    @admin.display(description="Event data")
    def event_data_pretty(self, obj: AuditLog) -> str:
        text = json.dumps(obj.event_data, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="aegis-pre">{}</pre>', text)
