"""Back-office forms for licenses. They check the shape of the input; licensing.services
checks the rules and does the work (see aegis.core.adminkit.ServiceForm)."""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.conf import settings
from django.contrib.admin import widgets
from django.utils import timezone

from aegis.core.adminkit import ServiceForm
from licensing.models import License
from licensing.services import MAX_REASON, MAX_SEATS, license_issue, license_update_notes
from licensing.verification import compute_fingerprint

# Odoo majors offered as checkboxes; any other is typed into "other versions".
KNOWN_MAJORS = [str(v) for v in range(14, 20)]
_SPLIT_RE = re.compile(r"[\s,;]+")
_DB_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def end_of_day(day: dt.date) -> dt.datetime:
    """An expiry date as staff mean it: the license works until the end of that day."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=timezone.get_current_timezone())


class InstanceFields(forms.Form):
    """An Odoo instance, as a fingerprint or as the database UUID and domain it is computed
    from; `clean()` leaves the fingerprint in `instance_fingerprint` (None when no field
    was filled)."""

    instance_fingerprint = forms.CharField(
        label="Instance fingerprint",
        required=False,
        max_length=71,
        widget=widgets.AdminTextInputWidget(attrs={"placeholder": "sha256:…", "size": 80}),
        help_text="As the Odoo client shows it. Leave every binding field empty for a license "
        "any instance may use.",
    )
    odoo_db_uuid = forms.CharField(
        label="or database UUID",
        required=False,
        widget=widgets.AdminTextInputWidget(
            attrs={"placeholder": "Odoo's database.uuid system parameter"}
        ),
    )
    odoo_domain = forms.CharField(
        label="and domain",
        required=False,
        widget=widgets.AdminTextInputWidget(attrs={"placeholder": "erp.example.com"}),
        help_text="web.base.url or its host[:port]; the fingerprint is computed from both.",
    )

    def clean_odoo_db_uuid(self) -> str:
        value = self.cleaned_data["odoo_db_uuid"]
        # The Odoo client fingerprints the value exactly as stored: no case folding here.
        if value and not _DB_UUID_RE.match(value):
            raise forms.ValidationError(
                "Paste database.uuid exactly as Odoo stores it "
                "(lowercase, e.g. 0b1e6c2a-6f5d-11ee-9a4b-0242ac120002)."
            )
        return value

    def clean(self):
        data = super().clean()
        db_uuid, domain = data.get("odoo_db_uuid"), data.get("odoo_domain")
        if "odoo_db_uuid" in data and "odoo_domain" in data and (db_uuid or domain):
            if not db_uuid:
                self.add_error("odoo_db_uuid", "Give the database UUID with the domain.")
            elif not domain:
                self.add_error("odoo_domain", "Give the domain with the database UUID.")
            elif data.get("instance_fingerprint"):
                self.add_error(
                    "instance_fingerprint",
                    "Give the fingerprint or the database UUID and domain, not both.",
                )
            else:
                data["instance_fingerprint"] = compute_fingerprint(db_uuid, domain)
        if "instance_fingerprint" in data:
            data["instance_fingerprint"] = data["instance_fingerprint"] or None
        return data


class LicenseIssueForm(InstanceFields, ServiceForm):
    """The license add page: everything `license_issue` takes, in the words staff use."""

    allowed_major_versions = forms.MultipleChoiceField(
        label="Odoo versions",
        choices=[(v, f"{v}.0") for v in KNOWN_MAJORS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    other_versions = forms.CharField(
        label="Other versions",
        required=False,
        widget=widgets.AdminTextInputWidget(attrs={"placeholder": "e.g. 20 21"}),
        help_text="More major versions, separated by spaces or commas.",
    )
    duration_days = forms.IntegerField(
        label="Duration (days)",
        required=False,
        min_value=1,
        widget=widgets.AdminIntegerFieldWidget,
        help_text="Subscription: a duration or an expiry date. Demo: 30 days unless given, "
        "90 at most. Perpetual: neither.",
    )
    expires_on = forms.DateField(
        label="or expiry date",
        required=False,
        widget=widgets.AdminDateWidget,
        help_text="The license works until the end of this day (server time, UTC).",
    )
    max_instances = forms.IntegerField(
        label="Production instances",
        required=False,
        min_value=1,
        max_value=MAX_SEATS,
        widget=widgets.AdminIntegerFieldWidget,
        help_text="How many Odoo production instances may use the license at once. "
        "Empty: no limit.",
    )
    max_staging_instances = forms.IntegerField(
        label="Staging instances",
        required=False,
        min_value=0,
        max_value=MAX_SEATS,
        widget=widgets.AdminIntegerFieldWidget,
        help_text="Database copies (staging, neutralized) allowed besides production.",
    )

    # Where the service's errors go on this form.
    error_fields = {
        "expires_at": "expires_on",
        "customer_not_found": "customer",
        "customer_inactive": "customer",
    }

    class Meta:
        model = License
        fields = ["customer", "module_name", "license_type", "notes"]
        help_texts = {"module_name": "The Odoo technical name, e.g. biz4a_payroll_drc."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "max_staging_instances" in self.fields:
            self.fields["max_staging_instances"].initial = settings.DEFAULT_MAX_STAGING_INSTANCES
        if "module_name" in self.fields:  # suggest the modules already licensed
            self.fields["module_name"].widget.attrs.update(
                {"list": "aegis-known-modules", "autocomplete": "off", "spellcheck": "false"}
            )

    def clean_other_versions(self) -> list[str]:
        versions = [v for v in _SPLIT_RE.split(self.cleaned_data["other_versions"]) if v]
        bad = [v for v in versions if not v.isdigit()]
        if bad:
            raise forms.ValidationError(
                "Type major versions as numbers, e.g. 20 21 (not %(bad)s).",
                params={"bad": ", ".join(bad)},
            )
        return versions

    def perform(self, actor: str) -> License:
        data = self.cleaned_data
        return license_issue(
            actor=actor,
            customer_id=data["customer"].pk,
            module_name=data["module_name"],
            allowed_major_versions=[*data["allowed_major_versions"], *data["other_versions"]],
            license_type=data["license_type"],
            duration_days=data["duration_days"],
            expires_at=end_of_day(data["expires_on"]) if data["expires_on"] else None,
            instance_fingerprint=data["instance_fingerprint"],
            notes=data["notes"],
            max_instances=data["max_instances"],
            max_staging_instances=data["max_staging_instances"],
        )


class LicenseNotesForm(ServiceForm):
    """The license change page: after issue only the notes can change."""

    class Meta:
        model = License
        fields = ["notes"]

    def perform(self, actor: str) -> License:
        return license_update_notes(
            actor=actor, license_id=self.instance.pk, notes=self.cleaned_data["notes"]
        )


class RevokeForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "e.g. Customer cancelled"}),
        help_text="Recorded on the license and in the audit log.",
    )


class RenewForm(forms.Form):
    """The renewal page: a duration or a new expiry date (`licensing.successors.license_renew`)."""

    duration_days = forms.IntegerField(
        label="Extend by (days)",
        required=False,
        min_value=1,
        widget=widgets.AdminIntegerFieldWidget,
        help_text="Counted from the current expiry, or from today when it has passed.",
    )
    expires_on = forms.DateField(
        label="or new expiry date",
        required=False,
        widget=widgets.AdminDateWidget,
        help_text="Later than the current expiry; the license works until the end of this day "
        "(server time, UTC).",
    )

    # Where the service's errors go on this form.
    error_fields = {"expires_at": "expires_on"}

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "duration_days": data["duration_days"],
            "expires_at": end_of_day(data["expires_on"]) if data["expires_on"] else None,
        }


class TransferForm(InstanceFields):
    """The transfer page: the new instance and a reason
    (`licensing.successors.license_transfer`)."""

    reason = forms.CharField(
        label="Reason",
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "e.g. Moved to a new server"}),
        help_text="Recorded on the revoked license and in the audit log.",
    )

    error_fields = {
        "instance_db_uuid": "odoo_db_uuid",
        "instance_domain": "odoo_domain",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[
            "instance_fingerprint"
        ].help_text = "The new instance's fingerprint, as the Odoo client shows it."

    def service_arguments(self) -> dict:
        return {
            "instance_fingerprint": self.cleaned_data["instance_fingerprint"],
            "reason": self.cleaned_data["reason"],
        }
