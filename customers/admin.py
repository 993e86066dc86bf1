"""Customers in the back-office: every write is a call to customers.services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from aegis.core.adminkit import ServiceAdmin, ServiceForm, actor_for
from aegis.core.exceptions import DomainError
from customers.models import Customer
from customers.services import (
    UPDATABLE_FIELDS,
    customer_create,
    customer_delete,
    customer_update,
)
from licensing.models import License

RECENT_LICENSES = 20


class ActiveFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "active"

    def lookups(self, request, model_admin):
        return [("yes", "Active"), ("no", "Inactive")]

    def queryset(self, request, queryset):
        if self.value() in {"yes", "no"}:
            return queryset.filter(is_active=self.value() == "yes")
        return queryset


class CustomerForm(ServiceForm):
    id = forms.CharField(
        label="Customer id",
        required=False,
        max_length=50,
        help_text="Letters, digits, '_' or '-'. Leave empty to number it automatically "
        "(CUST-000123).",
    )

    error_fields = {"customer_exists": "id"}

    class Meta:
        model = Customer
        fields = ["id", "name", "email", "company", "phone", "address", "notes", "is_active"]
        labels = {"is_active": "Active"}
        widgets = {
            "address": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def perform(self, actor: str) -> Customer:
        data = self.cleaned_data
        if self.instance._state.adding:
            return customer_create(
                actor=actor,
                id=data.get("id") or None,
                **{f: data[f] for f in UPDATABLE_FIELDS if f in data},
            )
        changes = {f: data[f] for f in self.changed_data if f in UPDATABLE_FIELDS}
        return customer_update(actor=actor, customer_id=self.instance.pk, **changes)


@admin.register(Customer)
class CustomerAdmin(ServiceAdmin):
    form = CustomerForm
    list_display = ("id", "name", "email", "company", "status", "license_count", "created")
    list_display_links = ("id", "name")
    list_filter = (ActiveFilter,)
    search_fields = ("id", "name", "email", "company")
    list_per_page = 50
    actions = ["activate", "deactivate"]
    readonly_fields = ("created_at", "updated_at")

    def get_fieldsets(self, request, obj=None):
        identity = ("id", "name") if obj is None else ("name",)
        return [
            (None, {"fields": (*identity, "email", "company", "phone")}),
            ("Address and notes", {"fields": ("address", "notes")}),
            (
                "Status",
                {
                    "fields": ("is_active",)
                    + (() if obj is None else ("created_at", "updated_at")),
                    "description": "An inactive customer's licenses answer SUSPENDED and no "
                    "new license can be issued to it.",
                },
            ),
        ]

    def get_queryset(self, request):
        counts = (
            License.objects.filter(customer=OuterRef("pk"))
            .order_by()
            .values("customer")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(n_licenses=Coalesce(Subquery(counts), 0))

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # The license issue form's customer picker offers only customers who can hold one.
        if (
            request.resolver_match
            and request.resolver_match.url_name == "autocomplete"
            and request.GET.get("model_name") == "license"
        ):
            queryset = queryset.filter(is_active=True)
        return queryset, may_have_duplicates

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through customer_delete
        return actions

    @admin.display(description="Status", ordering="is_active")
    def status(self, obj: Customer) -> str:
        if obj.is_active:
            return format_html(
                '<span class="aegis-badge aegis-badge-{}">{}</span>', "active", "Active"
            )
        return format_html(
            '<span class="aegis-badge aegis-badge-{}">{}</span>', "revoked", "Inactive"
        )

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: Customer) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d")

    @admin.display(description="Licenses", ordering="n_licenses")
    def license_count(self, obj: Customer) -> str:
        if not obj.n_licenses:
            return "0"
        url = reverse("admin:licensing_license_changelist") + f"?customer__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.n_licenses)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Customers"} | (extra_context or {}))

    # --- actions ---------------------------------------------------------------------------

    def _set_active(self, request, queryset, active: bool) -> None:
        actor = actor_for(request)
        changed = 0
        for customer in queryset:
            if customer.is_active == active:
                continue
            try:
                customer_update(actor=actor, customer_id=customer.pk, is_active=active)
            except DomainError as exc:
                messages.error(request, f"{customer}: {exc.detail}")
                continue
            changed += 1
        verb = "Activated" if active else "Deactivated"
        unchanged = queryset.count() - changed
        text = f"{verb} {changed} customer{'s' if changed != 1 else ''}."
        if unchanged:
            text += f" {unchanged} already {'active' if active else 'inactive'}, left unchanged."
        messages.success(request, text)

    @admin.action(description="Activate selected customers", permissions=["change"])
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate selected customers", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    # --- delete: refused while the customer holds licenses -----------------------------------

    def delete_view(self, request, object_id, extra_context=None):
        customer = self.get_object(request, unquote(object_id))
        if customer is not None and self.has_delete_permission(request, customer):
            held = customer.licenses.count()
            if held:
                messages.error(
                    request,
                    f"{customer} holds {held} license{'s' if held != 1 else ''} and cannot be "
                    "deleted: licenses are never deleted. Deactivate the customer instead.",
                )
                return HttpResponseRedirect(self._change_url(customer))
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:  # e.g. a license issued between the page and the click
            messages.error(request, exc.detail)
            return HttpResponseRedirect(self._change_url(customer))

    def delete_model(self, request, obj):
        customer_delete(actor=actor_for(request), customer_id=obj.pk)

    def _change_url(self, customer: Customer) -> str:
        return reverse("admin:customers_customer_change", args=[customer.pk])

    # --- change page: the customer's licenses, read-only and linked ---------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        customer = self.get_object(request, unquote(object_id))
        if customer is not None:
            licenses = License.objects.filter(customer=customer)
            extra_context.update(
                title=f"Customer {customer.pk}",
                subtitle=customer.name,
                customer_licenses=list(licenses.order_by("-issued_at", "-id")[:RECENT_LICENSES]),
                customer_license_total=customer.n_licenses,
                customer_licenses_url=reverse("admin:licensing_license_changelist")
                + f"?customer__id__exact={customer.pk}",
                customer_audit_url=reverse("admin:audit_auditlog_changelist")
                + f"?customer_id={customer.pk}",
                can_issue_license=request.user.has_perm("licensing.add_license"),
                can_view_audit=request.user.has_perm("audit.view_auditlog"),
                can_view_licenses=request.user.has_perm("licensing.view_license"),
            )
        return super().change_view(request, object_id, form_url, extra_context)
