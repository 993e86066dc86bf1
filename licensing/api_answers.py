"""The requests and answers of the public license endpoints that answer with a code.

Validate's request and its flat answer (CONTRACT §2), shared by the DRF actions
(licensing/api.py, licensing/api_seats.py: activate answers validate's shape and more) and
the event-loop transport (licensing/validate_asgi.py).
"""

from __future__ import annotations

from rest_framework import serializers

from aegis.core.api.serializers import StrictCharField
from licensing import rules
from licensing.models import LicenseType
from licensing.validation import ValidationOutcome


class ValidateRequestSerializer(serializers.Serializer):
    """Lenient about extra fields: deployed Odoo clients may send more than these."""

    token = StrictCharField(trim_whitespace=False, help_text="The license token (compact JWS).")
    module_name = StrictCharField(max_length=128, help_text="The module asking.")
    odoo_version = StrictCharField(
        max_length=32, help_text='`"17"`, `"17.0"`, `"17.0+e"` or `"saas~17.2"`.'
    )
    fingerprint = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=128,
        trim_whitespace=False,
        help_text="The instance fingerprint, precomputed by the client.",
    )
    instance_db_uuid = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=255, trim_whitespace=False
    )
    instance_domain = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=2048,
        trim_whitespace=False,
        help_text="The host of `web.base.url` (or the full URL).",
    )


def code_choices(action: str) -> list[str]:
    return [code.value for code in rules.codes(action)]


class ValidateResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    code = serializers.ChoiceField(choices=code_choices(rules.VALIDATE))
    error = serializers.CharField(allow_null=True, help_text="null when valid.")
    license_id = serializers.CharField(allow_null=True)
    license_type = serializers.ChoiceField(choices=LicenseType.choices, allow_null=True)
    customer_id = serializers.CharField(allow_null=True)
    customer_name = serializers.CharField(allow_null=True)
    module_name = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


def outcome_body(outcome: ValidationOutcome) -> dict:
    """The flat response of validate (built by hand: it is the hot path)."""
    expires_at = outcome.expires_at
    return {
        "valid": outcome.valid,
        "code": outcome.code.value,
        "error": outcome.error,
        "license_id": outcome.license_id,
        "license_type": outcome.license_type,
        "customer_id": outcome.customer_id,
        "customer_name": outcome.customer_name,
        "module_name": outcome.module_name,
        "expires_at": expires_at.isoformat().replace("+00:00", "Z") if expires_at else None,
    }
