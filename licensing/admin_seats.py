"""Seats in the back-office (CONTRACT §9): a license's activations on its page, every
activation in a list, and *Release*.

Who may do what follows the license permissions (the staff roles of
aegis/migrations/0002_staff_groups.py know licenses, not activations): whoever may view a
license sees its activations, whoever may change it releases them. A release is
licensing.seats.activation_release with actor `user:<username>`; nothing else is written
from here, and activations are never added, edited or deleted.

A suspected clone (the same database uuid active on two domains of one license) is flagged
on both rows; the `activation.clone_suspected` audit rows say when it was seen.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from aegis.core.adminkit import actor_for
from aegis.core.exceptions import DomainError
from licensing.models import Activation
from licensing.seats import activation_release
from licensing.selectors import (
    ACTIVATION_STATUSES,
    activation_status,
    activation_status_filter,
    activations_with_clones,
)

VIEW, CHANGE = "licensing.view_license", "licensing.change_license"
# A bulk release works on at most this many activations per confirmation.
MAX_BULK_RELEASE = 500


def _status(activation: Activation) -> str:
    status = activation_status(activation, timezone.now())
    tone = {"active": "active", "expired": "expired", "released": "revoked"}[status]
    return format_html('<span class="aegis-badge aegis-badge-{}">{}</span>', tone, status)


def _clone(activation: Activation) -> str:
    if not getattr(activation, "clone_suspected", False):
        return ""
    return format_html(
        '<span class="aegis-badge aegis-badge-revoked" title="{}">{}</span>',
        "Another active activation of this license has the same database uuid on another "
        "domain: a copy of the database?",
        "clone?",
    )


class _SeatPermissions:
    """Activations are seen with the license's view permission, released with its change
    permission, and never added, changed or deleted."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(VIEW) or request.user.has_perm(CHANGE)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_release_permission(self, request, obj=None):
        return request.user.has_perm(CHANGE)


class ReadOnlyFormSet(BaseInlineFormSet):
    """Shown, never saved (the license's admin saves no formset: its service saved all):
    what Django's change message reads of a saved formset, empty."""

    new_objects: tuple = ()
    changed_objects: tuple = ()
    deleted_objects: tuple = ()


class ActivationInline(_SeatPermissions, admin.TabularInline):
    """The activations on a license's page, those holding a seat first."""

    model = Activation
    formset = ReadOnlyFormSet
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "Activations (seats)"
    fields = readonly_fields = (
        "domain_display",
        "environment",
        "fingerprint_display",
        "odoo_version",
        "first_seen_at",
        "last_seen_at",
        "lease_expires_at",
        "status_display",
        "released_at",
        "release_link",
    )

    def has_view_permission(self, request, obj=None):
        # Not on the issue form: a license has activations once it exists.
        return obj is not None and super().has_view_permission(request, obj)

    def get_queryset(self, request):
        # Django's asks has_view_permission without the license, which says no above.
        queryset = Activation.objects.all()
        if not _SeatPermissions.has_view_permission(self, request):
            queryset = queryset.none()
        queryset = activations_with_clones(queryset, timezone.now())
        return queryset.order_by("released_at", "-lease_expires_at", "-id")

    @admin.display(description="Domain")
    def domain_display(self, obj: Activation) -> str:
        return format_html(
            '<span class="aegis-nowrap">{}</span> {}<br><span class="aegis-mono aegis-muted">{}</span>',
            obj.domain,
            _clone(obj),
            obj.db_uuid,
        )

    @admin.display(description="Fingerprint")
    def fingerprint_display(self, obj: Activation) -> str:
        return format_html(
            '<span class="aegis-mono" title="{}">{}…</span>', obj.fingerprint, obj.fingerprint[:19]
        )

    @admin.display(description="Status")
    def status_display(self, obj: Activation) -> str:
        return _status(obj)

    @admin.display(description="")
    def release_link(self, obj: Activation) -> str:
        if obj.released_at is not None:
            return ""
        url = reverse("admin:licensing_activation_release", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, "Release…")


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(status, status.capitalize()) for status in ACTIVATION_STATUSES]

    def queryset(self, request, queryset):
        if self.value() in ACTIVATION_STATUSES:
            return queryset.filter(activation_status_filter(self.value(), timezone.now()))
        return queryset


@admin.register(Activation)
class ActivationAdmin(_SeatPermissions, admin.ModelAdmin):
    """Every activation: find an instance by its domain or database uuid, release seats."""

    list_display = (
        "domain_column",
        "license_link",
        "environment",
        "status_column",
        "odoo_version",
        "last_seen_at",
        "lease_expires_at",
    )
    list_filter = (StatusFilter, "environment")
    search_fields = ("domain", "=db_uuid", "=fingerprint", "=license__id")
    search_help_text = "A domain (or part of one), a database uuid, a fingerprint, a license id."
    list_select_related = ("license",)
    list_per_page = 50
    actions = ["release_selected"]
    readonly_fields = (
        "id",
        "license_link",
        "fingerprint",
        "db_uuid",
        "domain",
        "environment",
        "odoo_version",
        "status_column",
        "first_seen_at",
        "last_seen_at",
        "lease_expires_at",
        "released_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return activations_with_clones(super().get_queryset(request), timezone.now())

    @admin.display(description="Domain", ordering="domain")
    def domain_column(self, obj: Activation) -> str:
        return format_html("{} {}", obj.domain, _clone(obj))

    @admin.display(description="License", ordering="license")
    def license_link(self, obj: Activation) -> str:
        url = reverse("admin:licensing_license_change", args=[obj.license_id])
        return format_html(
            '<a class="aegis-mono" href="{}">{}</a> <span class="aegis-muted">{}</span>',
            url,
            str(obj.license_id)[:8],
            obj.license.module_name,
        )

    @admin.display(description="Status")
    def status_column(self, obj: Activation) -> str:
        return _status(obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/release/",
                view(self.release_view),
                name="licensing_activation_release",
            ),
            *super().get_urls(),
        ]

    def release_view(self, request, object_id):
        if not self.has_release_permission(request):
            raise PermissionDenied
        activation = self.get_object(request, unquote(object_id))
        if activation is None:
            raise Http404("No activation with this id.")
        back = reverse("admin:licensing_license_change", args=[activation.license_id])
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            self._release(request, [activation])
            return HttpResponseRedirect(back)
        return self._confirm(request, [activation], cancel_url=back)

    @admin.action(description="Release selected activations…", permissions=["release"])
    def release_selected(self, request, queryset):
        activations = list(queryset.select_related("license")[: MAX_BULK_RELEASE + 1])
        if len(activations) > MAX_BULK_RELEASE:
            messages.error(request, f"Select at most {MAX_BULK_RELEASE} activations at once.")
            return None
        if request.POST.get("confirm") == "yes":
            self._release(request, activations)
            return None
        return self._confirm(request, activations, bulk=True, cancel_url=request.get_full_path())

    def _release(self, request, activations: list[Activation]) -> None:
        actor = actor_for(request)
        released = 0
        for activation in activations:
            try:
                activation_release(
                    actor=actor, license_id=activation.license_id, activation_id=activation.pk
                )
            except DomainError as exc:
                messages.warning(request, f"{activation.domain}: {exc.detail}")
            else:
                released += 1
        if released:
            messages.success(
                request,
                f"Released {released} activation{'s' if released != 1 else ''}: "
                "the seats are free and the leases go on the revocation list.",
            )

    def _confirm(self, request, activations, *, cancel_url: str, bulk: bool = False):
        context = {
            **self.admin_site.each_context(request),
            "title": "Release activations" if bulk else "Release this activation?",
            "opts": self.opts,
            "activations": activations,
            "bulk": bulk,
            "action_name": "release_selected",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
        }
        return TemplateResponse(
            request, "admin/licensing/activation/release_confirmation.html", context
        )
