"""Licenses in the back-office: issue, read the token, revoke, renew, transfer, export.

Every write is a licensing.services call with actor `user:<username>`; a license cannot be
edited after issue (only its notes) nor deleted. The list stays fast on millions of rows:
one joined query per page, no COUNT(*) of the table, filter choices from index probes.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from aegis.core.adminkit import (
    LargeTablePaginator,
    ServiceAdmin,
    actor_for,
    add_domain_error,
    distinct_values,
    uuid_lookup,
)
from aegis.core.exceptions import DomainError
from customers.models import Customer
from licensing import signing, successors
from licensing.admin_seats import ActivationInline
from licensing.forms import (
    LicenseIssueForm,
    LicenseNotesForm,
    RenewForm,
    RevokeForm,
    TransferForm,
)
from licensing.models import License, LicenseStatus
from licensing.services import LicenseAlreadyRevoked, license_revoke

# A bulk revoke works on at most this many licenses per confirmation.
MAX_BULK_REVOKE = 500
# A search by customer name considers at most this many matching customers.
MAX_SEARCH_CUSTOMERS = 1000


# --- List filters ----------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    """The status clients see; "expired" is computed from the expiry, not stored."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in {"active", "expired", "revoked"}:
            return queryset.with_status(self.value())
        return queryset


class ExpiringFilter(admin.SimpleListFilter):
    title = "expiring"
    parameter_name = "expiring"

    def lookups(self, request, model_admin):
        return [("7", "Within 7 days"), ("30", "Within 30 days"), ("90", "Within 90 days")]

    def queryset(self, request, queryset):
        if self.value() in {"7", "30", "90"}:
            now = timezone.now()
            return queryset.active(now).filter(
                expires_at__lte=now + dt.timedelta(days=int(self.value()))
            )
        return queryset


class ModuleFilter(admin.SimpleListFilter):
    title = "module"
    parameter_name = "module"

    def lookups(self, request, model_admin):
        return [(name, name) for name in distinct_values(License, "module_name")]

    def queryset(self, request, queryset):
        return queryset.filter(module_name=self.value()) if self.value() else queryset


# --- Display helpers -----------------------------------------------------------------------


def status_badge(license: License) -> str:
    status = license.effective_status
    return format_html('<span class="aegis-badge aegis-badge-{}">{}</span>', status, status)


def _b64_json(segment: str) -> dict[str, Any] | None:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def decode_token(token: str) -> tuple[dict | None, dict | None, str]:
    """(header, claims, verification code) of a stored token, for display.

    The signer's verifier decides the code; when it yields no claims (e.g. the key that
    signed it is no longer in the keys folder) the payload is base64-decoded for display.
    """
    result = signing.verifier().verify_token(token)
    header, claims = result.header, result.claims
    if claims is None:
        parts = token.split(".")
        if len(parts) == 3:
            header, claims = _b64_json(parts[0]), _b64_json(parts[1])
    return header, claims, result.code.value


def _timestamp(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        when = dt.datetime.fromtimestamp(value, tz=dt.UTC)
        return f"{value} ({when:%Y-%m-%d %H:%M:%S} UTC)"
    return json.dumps(value)


def claim_rows(claims: dict[str, Any]) -> list[dict[str, str]]:
    """The claims as labelled rows, in the order a reader expects."""
    labels = {
        "jti": "License id",
        "iss": "Issuer",
        "iat": "Issued at",
        "exp": "Expires at",
        "customer": "Customer",
        "module": "Module",
        "license_type": "License type",
        "instance_fingerprint": "Instance fingerprint",
    }
    rows = []
    for key in [*labels, *sorted(set(claims) - set(labels))]:
        if key not in claims:
            if key == "exp":
                rows.append({"key": key, "label": labels[key], "value": "— none: never expires"})
            continue
        value = claims[key]
        if key in {"iat", "exp"}:
            text = _timestamp(value)
        elif key == "customer" and isinstance(value, dict):
            text = f"{value.get('id')} — {value.get('name')}"
        elif key == "module" and isinstance(value, dict):
            versions = value.get("allowed_major_versions") or []
            text = f"{value.get('technical_name')} · Odoo {', '.join(map(str, versions))}"
        else:
            text = value if isinstance(value, str) else json.dumps(value)
        rows.append({"key": key, "label": labels.get(key, key), "value": text})
    return rows


_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: str) -> str:
    """Free text a spreadsheet would run as a formula is prefixed with a quote."""
    return f"'{value}" if value and value.startswith(_CSV_FORMULA_START) else value


class _Echo:
    def write(self, value: str) -> str:
        return value


def _refusal(check, license: License) -> str | None:
    """Why `check` (a licensing.successors check) refuses the change, or None."""
    try:
        check(license)
    except DomainError as exc:
        return exc.detail
    return None


def _allowed(check, license: License) -> bool:
    return _refusal(check, license) is None


def _chain_link(license_id, none: str) -> str:
    if license_id is None:
        return format_html('<span class="aegis-muted">{}</span>', none)
    url = reverse("admin:licensing_license_change", args=[license_id])
    return format_html('<a class="aegis-mono" href="{}">{}</a>', url, license_id)


# Links followed at most to find the newest license of a chain (a chain is a handful).
MAX_CHAIN = 100


def _newest_in_chain(license: License):
    """The id of the newest license of `license`'s chain (CONTRACT §9), or None when it has
    no successor."""
    newest = license.replaced_by_id
    for _ in range(MAX_CHAIN):
        following = (
            License.objects.filter(pk=newest).values_list("replaced_by_id", flat=True).first()
            if newest
            else None
        )
        if following is None:
            break
        newest = following
    return newest


# --- The admin -----------------------------------------------------------------------------


@admin.register(License)
class LicenseAdmin(ServiceAdmin):
    list_display = (
        "short_id",
        "customer_display",
        "module_name",
        "versions",
        "type_column",
        "status_column",
        "expires",
        "issued",
    )
    list_display_links = ("short_id",)
    list_select_related = ("customer",)
    list_filter = (
        StatusFilter,
        ExpiringFilter,
        "license_type",
        ModuleFilter,
        ("revoked_at", admin.DateFieldListFilter),
    )
    search_fields = ("=customer__id", "customer__name", "^module_name")
    search_help_text = (
        "A license id (or its first 8 characters), a customer id, name or company, "
        "or the start of a module name."
    )
    list_per_page = 50
    paginator = LargeTablePaginator
    show_full_result_count = False
    autocomplete_fields = ("customer",)
    radio_fields = {"license_type": admin.HORIZONTAL}
    actions = ["revoke_selected"]
    inlines = [ActivationInline]
    change_form_template = "admin/licensing/license/change_form.html"

    # --- permissions: never deleted; revoke is its own permission ---------------------------

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request, obj=None):
        return request.user.has_perm("licensing.revoke_license")

    # A renewal issues a license; a transfer issues one and revokes one.
    def has_renew_permission(self, request, obj=None):
        return self.has_add_permission(request)

    def has_transfer_permission(self, request, obj=None):
        return self.has_add_permission(request) and self.has_revoke_permission(request)

    # --- list ------------------------------------------------------------------------------

    @admin.display(description="License", ordering="id")
    def short_id(self, obj: License) -> str:
        return format_html('<span class="aegis-mono" title="{}">{}</span>', obj.pk, str(obj.pk)[:8])

    @admin.display(description="Customer", ordering="customer")
    def customer_display(self, obj: License) -> str:
        return format_html(
            '<span class="aegis-mono aegis-nowrap">{}</span><br><span class="aegis-muted">{}</span>',
            obj.customer_id,
            obj.customer.name,
        )

    @admin.display(description="Versions")
    def versions(self, obj: License) -> str:
        return ", ".join(obj.allowed_major_versions)

    # Not named "status": a model field of that name would win over this method.
    @admin.display(description="Status")
    def status_column(self, obj: License) -> str:
        return status_badge(obj)

    @admin.display(description="Type", ordering="license_type")
    def type_column(self, obj: License) -> str:
        return obj.get_license_type_display()

    @admin.display(description="Expires", ordering="expires_at")
    def expires(self, obj: License) -> str:
        if obj.expires_at is None:
            return format_html('<span class="aegis-muted">{}</span>', "never")
        return format_html(
            '<span class="aegis-nowrap">{}</span>',
            timezone.localtime(obj.expires_at).strftime("%Y-%m-%d"),
        )

    @admin.display(description="Issued", ordering="issued_at")
    def issued(self, obj: License) -> str:
        return format_html(
            '<span class="aegis-nowrap">{}</span>',
            timezone.localtime(obj.issued_at).strftime("%Y-%m-%d %H:%M"),
        )

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Licenses"} | (extra_context or {}))

    def get_search_results(self, request, queryset, search_term):
        """A license id (or its first 8+ hex digits), else the customers whose id, name or
        company match and the modules starting with the term. Each branch is answered from
        an index (primary key, license_customer_idx, license_module_idx), so a search costs
        the same on a million licenses as on a thousand."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_id = uuid_lookup(term)
        if by_id is not None:
            return queryset.filter(by_id), False
        customer_ids = list(
            Customer.objects.filter(
                Q(pk__iexact=term) | Q(name__icontains=term) | Q(company__icontains=term)
            ).values_list("pk", flat=True)[:MAX_SEARCH_CUSTOMERS]
        )
        modules = [
            name
            for name in distinct_values(License, "module_name", limit=1000)
            if name.startswith(term.lower())
        ]
        return queryset.filter(Q(customer_id__in=customer_ids) | Q(module_name__in=modules)), False

    def get_changeform_initial_data(self, request):
        return {"license_type": "subscription", **super().get_changeform_initial_data(request)}

    # --- add (the issue form) and change (read-only but notes) ------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = LicenseNotesForm if obj is not None else LicenseIssueForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (
                    "Customer and module",
                    {
                        "fields": (
                            "customer",
                            "module_name",
                            "allowed_major_versions",
                            "other_versions",
                        )
                    },
                ),
                ("Term", {"fields": ("license_type", "duration_days", "expires_on")}),
                (
                    "Instance binding (optional)",
                    {
                        "fields": ("instance_fingerprint", "odoo_db_uuid", "odoo_domain"),
                        "description": "Bind the license to one Odoo instance: paste the "
                        "fingerprint, or the database UUID and domain to compute it.",
                    },
                ),
                (
                    "Seats",
                    {
                        "fields": ("max_instances", "max_staging_instances"),
                        "description": "How many Odoo instances may use the license at once.",
                    },
                ),
                ("Notes", {"fields": ("notes",)}),
            ]
        fieldsets = [
            (
                None,
                {
                    "fields": (
                        "license_id",
                        "customer_link",
                        "module_name",
                        "versions",
                        "license_type",
                        "status_display",
                        "issued_at_display",
                        "expires_at_display",
                        "fingerprint_display",
                        "seats_display",
                        "key_id",
                    )
                },
            ),
        ]
        if obj.replaces_id or obj.replaced_by_id:
            fieldsets.append(("Chain", {"fields": ("replaces_link", "replaced_by_link")}))
        if obj.status == LicenseStatus.REVOKED:
            fieldsets.append(("Revocation", {"fields": ("revoked_at", "revoked_reason")}))
        fieldsets += [
            ("Token", {"fields": ("token_display",)}),
            ("Decoded claims", {"fields": ("claims_display",)}),
            ("Notes", {"fields": ("notes",)}),
        ]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "license_id",
            "customer_link",
            "module_name",
            "versions",
            "license_type",
            "status_display",
            "issued_at_display",
            "expires_at_display",
            "fingerprint_display",
            "seats_display",
            "key_id",
            "replaces_link",
            "replaced_by_link",
            "revoked_at",
            "revoked_reason",
            "token_display",
            "claims_display",
        )

    @admin.display(description="License id")
    def license_id(self, obj: License) -> str:
        return format_html('<span class="aegis-mono">{}</span>', obj.pk)

    @admin.display(description="Customer")
    def customer_link(self, obj: License) -> str:
        url = reverse("admin:customers_customer_change", args=[obj.customer_id])
        suffix = (
            ""
            if obj.customer.is_active
            else format_html(' <span class="aegis-badge aegis-badge-revoked">{}</span>', "inactive")
        )
        return format_html('<a href="{}">{}</a>{}', url, obj.customer, suffix)

    @admin.display(description="Status")
    def status_display(self, obj: License) -> str:
        status = obj.effective_status
        when = ""
        if status == "revoked" and obj.revoked_at:
            when = f"on {timezone.localtime(obj.revoked_at):%Y-%m-%d %H:%M} UTC"
        elif status == "expired":
            when = f"since {timezone.localtime(obj.expires_at):%Y-%m-%d %H:%M} UTC"
        return format_html('{} <span class="aegis-muted">{}</span>', status_badge(obj), when)

    @admin.display(description="Issued")
    def issued_at_display(self, obj: License) -> str:
        return f"{timezone.localtime(obj.issued_at):%Y-%m-%d %H:%M:%S} UTC"

    @admin.display(description="Expires")
    def expires_at_display(self, obj: License) -> str:
        if obj.expires_at is None:
            return "Never (perpetual: the token has no exp claim)"
        return f"{timezone.localtime(obj.expires_at):%Y-%m-%d %H:%M:%S} UTC"

    @admin.display(description="Instance fingerprint")
    def fingerprint_display(self, obj: License) -> str:
        if not obj.instance_fingerprint:
            return format_html('<span class="aegis-muted">{}</span>', "Not bound: any instance")
        return format_html('<span class="aegis-mono">{}</span>', obj.instance_fingerprint)

    @admin.display(description="Seats")
    def seats_display(self, obj: License) -> str:
        production = "no limit" if obj.max_instances is None else f"{obj.max_instances} production"
        return f"{production} · {obj.max_staging_instances} staging"

    @admin.display(description="Replaces")
    def replaces_link(self, obj: License) -> str:
        return _chain_link(obj.replaces_id, "— the first of its chain")

    @admin.display(description="Replaced by")
    def replaced_by_link(self, obj: License) -> str:
        link = _chain_link(obj.replaced_by_id, "— the newest of its chain")
        newest = _newest_in_chain(obj)
        if newest is None or newest == obj.replaced_by_id:
            return link
        return format_html("{} · newest: {}", link, _chain_link(newest, ""))

    @admin.display(description="Token")
    def token_display(self, obj: License) -> str:
        return render_to_string(
            "admin/licensing/license/token.html",
            {
                "token": obj.token,
                "download_url": reverse("admin:licensing_license_token", args=[obj.pk]),
            },
        )

    @admin.display(description="Claims")
    def claims_display(self, obj: License) -> str:
        header, claims, code = decode_token(obj.token)
        return render_to_string(
            "admin/licensing/license/claims.html",
            {
                "header": header or {},
                "rows": claim_rows(claims or {}),
                "code": code,
                "verified": code in {"VALID", "EXPIRED"},
            },
        )

    def response_add(self, request, obj, post_url_continue=None):
        messages.success(
            request,
            f"License issued to {obj.customer}. Copy the token below or download it as a .jwt file.",
        )
        return HttpResponseRedirect(reverse("admin:licensing_license_change", args=[obj.pk]))

    def response_change(self, request, obj):
        messages.success(request, "Notes saved.")
        return HttpResponseRedirect(reverse("admin:licensing_license_change", args=[obj.pk]))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "customer" and formfield is not None:
            # Offer "add a customer" (a caller on the phone may be new), not edit or delete.
            widget = formfield.widget
            widget.can_change_related = widget.can_delete_related = False
            widget.can_view_related = False
        return formfield

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {
            "title": "Issue a license",
            "known_modules": distinct_values(License, "module_name"),
        } | (extra_context or {})
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        license = self.get_object(request, unquote(object_id))
        if license is not None:
            customer = license.customer
            extra_context = {
                "title": f"License {str(license.pk)[:8]}",
                "subtitle": f"{license.module_name} for {customer.name} ({customer.pk})",
                "can_revoke": self.has_revoke_permission(request)
                and license.status != LicenseStatus.REVOKED,
                "revoke_url": reverse("admin:licensing_license_revoke", args=[license.pk]),
                "can_renew": self.has_renew_permission(request)
                and _allowed(successors.check_renewable, license),
                "renew_url": reverse("admin:licensing_license_renew", args=[license.pk]),
                "can_transfer": self.has_transfer_permission(request)
                and _allowed(successors.check_transferable, license),
                "transfer_url": reverse("admin:licensing_license_transfer", args=[license.pk]),
                "download_url": reverse("admin:licensing_license_token", args=[license.pk]),
                "can_view_audit": request.user.has_perm("audit.view_auditlog"),
                "audit_url": reverse("admin:audit_auditlog_changelist")
                + f"?license_id={license.pk}",
                "show_save_and_add_another": False,
                "show_save_and_continue": False,
            } | (extra_context or {})
        return super().change_view(request, object_id, form_url, extra_context)

    # --- extra views: token download, revoke, CSV export ------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("export.csv", view(self.export_view), name="licensing_license_export"),
            path(
                "<path:object_id>/token.jwt",
                view(self.token_view),
                name="licensing_license_token",
            ),
            path(
                "<path:object_id>/revoke/",
                view(self.revoke_view),
                name="licensing_license_revoke",
            ),
            path(
                "<path:object_id>/renew/",
                view(self.renew_view),
                name="licensing_license_renew",
            ),
            path(
                "<path:object_id>/transfer/",
                view(self.transfer_view),
                name="licensing_license_transfer",
            ),
            *super().get_urls(),
        ]

    def _get_or_404(self, request, object_id: str) -> License:
        license = self.get_object(request, unquote(object_id))
        if license is None:
            raise Http404("No license with this id.")
        return license

    def token_view(self, request, object_id):
        license = self._get_or_404(request, object_id)
        if not self.has_view_permission(request, license):
            raise PermissionDenied
        response = HttpResponse(license.token, content_type="application/jwt")
        filename = f"{license.module_name}-{license.pk}.jwt"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response

    def revoke_view(self, request, object_id):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        license = self._get_or_404(request, object_id)
        done, form = self._revoke_flow(request, [license])
        if done:
            return HttpResponseRedirect(
                reverse("admin:licensing_license_change", args=[license.pk])
            )
        return self._render_revoke(request, [license], form, bulk=False)

    @admin.action(description="Revoke selected licenses…", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        licenses = list(queryset.select_related("customer")[: MAX_BULK_REVOKE + 1])
        if len(licenses) > MAX_BULK_REVOKE:
            messages.error(
                request,
                f"Select at most {MAX_BULK_REVOKE} licenses to revoke at once "
                "(narrow the list with its filters).",
            )
            return None
        done, form = self._revoke_flow(request, licenses)
        if done:
            return None  # back to the list, its filters kept
        return self._render_revoke(request, licenses, form, bulk=True)

    def _revoke_flow(self, request, licenses) -> tuple[bool, RevokeForm]:
        """Revoke each license through the service once the confirmation page was posted
        with a reason. Returns (done, form): done when messages say what happened."""
        if request.method != "POST" or request.POST.get("confirm") != "yes":
            return False, RevokeForm()
        form = RevokeForm(request.POST)
        if not form.is_valid():
            return False, form
        actor = actor_for(request)
        revoked, already = [], []
        for license in licenses:
            try:
                license_revoke(
                    actor=actor, license_id=license.pk, reason=form.cleaned_data["reason"]
                )
            except LicenseAlreadyRevoked:
                already.append(license)
            except DomainError as exc:
                messages.error(request, f"License {license.pk}: {exc.detail}")
            else:
                revoked.append(license)
        if revoked:
            what = f"License {revoked[0].pk}" if len(revoked) == 1 else f"{len(revoked)} licenses"
            messages.success(request, f"{what} revoked. Clients see REVOKED from now on.")
        if already:
            what = f"License {already[0].pk} was" if len(already) == 1 else f"{len(already)} were"
            messages.warning(request, f"{what} already revoked: nothing changed.")
        return True, form

    def _render_revoke(self, request, licenses, form: RevokeForm, *, bulk: bool):
        to_revoke = [lic for lic in licenses if lic.status != LicenseStatus.REVOKED]
        already = [lic for lic in licenses if lic.status == LicenseStatus.REVOKED]
        single = licenses[0] if len(licenses) == 1 else None
        title = "Revoke license" if single else f"Revoke {len(to_revoke)} licenses"
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "licenses": licenses,
            "to_revoke": to_revoke,
            "already": already,
            "form": form,
            "bulk": bulk,
            "single": single,
            "action_name": "revoke_selected",
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": (
                reverse("admin:licensing_license_change", args=[single.pk])
                if single and not bulk
                else request.get_full_path()
            ),
        }
        return TemplateResponse(
            request, "admin/licensing/license/revoke_confirmation.html", context
        )

    # --- successors: renew, transfer (licensing.successors) ---------------------------------

    def renew_view(self, request, object_id):
        if not self.has_renew_permission(request):
            raise PermissionDenied
        license = self._get_or_404(request, object_id)
        return self._successor_flow(
            request,
            license,
            form_class=RenewForm,
            service=successors.license_renew,
            check=successors.check_renewable,
            title="Renew license",
            note="A new license with a later expiry is issued; this one stays valid until "
            "its own expiry, so the customer has no gap.",
            submit="Issue the renewal",
            done=lambda new: (
                f"License {license.pk} renewed: license {new.pk} expires on "
                f"{timezone.localtime(new.expires_at):%Y-%m-%d %H:%M} UTC. Send the customer "
                "its token."
            ),
        )

    def transfer_view(self, request, object_id):
        if not self.has_transfer_permission(request):
            raise PermissionDenied
        license = self._get_or_404(request, object_id)
        return self._successor_flow(
            request,
            license,
            form_class=TransferForm,
            service=successors.license_transfer,
            check=successors.check_transferable,
            title="Transfer license",
            note="A new license bound to the new instance is issued and this one is revoked "
            "at once: the old instance sees REVOKED from now on.",
            submit="Transfer and revoke this license",
            done=lambda new: (
                f"License {license.pk} transferred and revoked: license "
                f"{new.pk} is bound to {new.instance_fingerprint}. Send the customer its token."
            ),
        )

    def _successor_flow(
        self, request, license, *, form_class, service, check, title, note, submit, done
    ):
        """The page of a change that issues a successor: the form, then the service; on
        success the new license's page. `check` says why the change is not possible."""
        refusal = _refusal(check, license)
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and refusal is None and form.is_valid():
            try:
                new = service(
                    actor=actor_for(request), license_id=license.pk, **form.service_arguments()
                )
            except DomainError as exc:
                add_domain_error(form, exc, form.error_fields)
            else:
                messages.success(request, done(new))
                return HttpResponseRedirect(
                    reverse("admin:licensing_license_change", args=[new.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "license": license,
            "form": form,
            "refusal": refusal,
            "note": note,
            "submit": submit,
            "media": self.media + form.media,
            "cancel_url": reverse("admin:licensing_license_change", args=[license.pk]),
        }
        return TemplateResponse(request, "admin/licensing/license/successor_form.html", context)

    def export_view(self, request):
        """The list as CSV, with the list's current filters, search and ordering."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:licensing_license_changelist") + "?e=1")
        queryset = changelist.get_queryset(request).select_related("customer")
        writer = csv.writer(_Echo())
        columns = [
            "license_id",
            "customer_id",
            "customer_name",
            "module_name",
            "allowed_major_versions",
            "license_type",
            "status",
            "issued_at",
            "expires_at",
            "revoked_at",
            "revoked_reason",
            "instance_fingerprint",
            "key_id",
        ]

        def iso(value: dt.datetime | None) -> str:
            return value.isoformat() if value else ""

        def rows():
            yield writer.writerow(columns)
            for lic in queryset.iterator(chunk_size=2000):
                yield writer.writerow(
                    [
                        lic.pk,
                        lic.customer_id,
                        _csv_text(lic.customer.name),
                        lic.module_name,
                        " ".join(lic.allowed_major_versions),
                        lic.license_type,
                        lic.effective_status,
                        iso(lic.issued_at),
                        iso(lic.expires_at),
                        iso(lic.revoked_at),
                        _csv_text(lic.revoked_reason),
                        lic.instance_fingerprint or "",
                        lic.key_id,
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="licenses-{stamp}.csv"'
        return response
