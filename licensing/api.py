"""`/api/v1/licenses`: issue, read, list, revoke, and the public validate and fingerprint.

Serializers check the shape of requests; the services (`licensing.services`,
`licensing.validation`) apply the rules and write the audit rows.
"""

from __future__ import annotations

import contextlib
import uuid

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from aegis.api.authentication import actor_of
from aegis.api.filters import InstantFilter, StableOrderingFilter
from aegis.api.schema import BODY_ERRORS, PROTECTED, PUBLIC, errors
from aegis.api.serializers import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    instant,
)
from aegis.models import Scope
from customers.models import Customer
from licensing import services
from licensing.models import License, LicenseType, effective_status
from licensing.selectors import license_get, license_list, license_rows
from licensing.validation import ValidationOutcome, license_validate
from licensing.verification import FINGERPRINT_ALGORITHM, Code, compute_fingerprint, instance_domain

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
STATUS_CHOICES = (("active", "active"), ("revoked", "revoked"), ("expired", "expired"))
# A search matching at most this many customers looks their licenses up by customer id.
SEARCH_CUSTOMER_IDS = 500


# --- Serializers ------------------------------------------------------------------------


class LicenseSerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(read_only=True)
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    status = serializers.ChoiceField(
        source="effective_status",
        choices=STATUS_CHOICES,
        read_only=True,
        help_text="`expired` when an active license is past `expires_at`.",
    )
    allowed_major_versions = serializers.ListField(child=serializers.CharField(), read_only=True)
    token = serializers.CharField(read_only=True, help_text="The signed license (compact JWS).")

    class Meta:
        model = License
        fields = [
            "id",
            "customer_id",
            "customer_name",
            "module_name",
            "allowed_major_versions",
            "license_type",
            "status",
            "instance_fingerprint",
            "issued_at",
            "expires_at",
            "revoked_at",
            "revoked_reason",
            "notes",
            "key_id",
            "token",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, license: License | dict) -> dict:
        """What the declared fields give (tests/perf/test_serializers.py compares the two),
        written out: DRF's per-field machinery was half the CPU of a page of 50. List pages
        pass rows of `licensing.selectors.license_rows` (dictionaries)."""
        tz = timezone.get_current_timezone()
        if isinstance(license, dict):
            return _row(license, tz)
        return {
            "id": str(license.id),
            "customer_id": license.customer_id,
            "customer_name": license.customer.name,
            "module_name": license.module_name,
            "allowed_major_versions": [str(v) for v in license.allowed_major_versions],
            "license_type": license.license_type,
            "status": license.effective_status,
            "instance_fingerprint": license.instance_fingerprint,
            "issued_at": instant(license.issued_at, tz),
            "expires_at": instant(license.expires_at, tz),
            "revoked_at": instant(license.revoked_at, tz),
            "revoked_reason": license.revoked_reason,
            "notes": license.notes,
            "key_id": license.key_id,
            "token": license.token,
            "created_at": instant(license.created_at, tz),
            "updated_at": instant(license.updated_at, tz),
        }


def _row(row: dict, tz) -> dict:
    return {
        "id": str(row["id"]),
        "customer_id": row["customer_id"],
        "customer_name": row["customer_name"],
        "module_name": row["module_name"],
        "allowed_major_versions": [str(v) for v in row["allowed_major_versions"]],
        "license_type": row["license_type"],
        "status": effective_status(row["status"], row["expires_at"]),
        "instance_fingerprint": row["instance_fingerprint"],
        "issued_at": instant(row["issued_at"], tz),
        "expires_at": instant(row["expires_at"], tz),
        "revoked_at": instant(row["revoked_at"], tz),
        "revoked_reason": row["revoked_reason"],
        "notes": row["notes"],
        "key_id": row["key_id"],
        "token": row["token"],
        "created_at": instant(row["created_at"], tz),
        "updated_at": instant(row["updated_at"], tz),
    }


class LicenseIssueSerializer(StrictSerializer):
    customer_id = StrictCharField(max_length=50)
    module_name = StrictCharField(
        max_length=128, help_text="Odoo technical name, `^[a-z][a-z0-9_]{1,127}$`."
    )
    allowed_major_versions = serializers.ListField(
        child=StrictCharField(max_length=8),
        allow_empty=False,
        max_length=50,
        help_text='Major versions such as `["17", "18"]`; de-duplicated and sorted.',
    )
    license_type = serializers.ChoiceField(choices=LicenseType.choices)
    duration_days = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=36500,
        help_text="subscription: this or `expires_at`; demo: default 30, at most 90; perpetual: none.",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="A future instant (ISO 8601)."
    )
    instance_fingerprint = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=71,
        help_text="Bind to one Odoo instance: `sha256:` + 64 hex digits.",
    )
    notes = StrictCharField(
        required=False, allow_blank=True, max_length=services.MAX_NOTES, trim_whitespace=False
    )


class LicenseRevokeSerializer(StrictSerializer):
    reason = StrictCharField(max_length=services.MAX_REASON, help_text="Why (required).")


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


class ValidateResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    code = serializers.ChoiceField(choices=[c.value for c in Code])
    error = serializers.CharField(allow_null=True, help_text="null when valid.")
    license_id = serializers.CharField(allow_null=True)
    license_type = serializers.ChoiceField(choices=LicenseType.choices, allow_null=True)
    customer_id = serializers.CharField(allow_null=True)
    customer_name = serializers.CharField(allow_null=True)
    module_name = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class FingerprintRequestSerializer(serializers.Serializer):
    db_uuid = StrictCharField(
        max_length=255, trim_whitespace=False, help_text="Odoo's `database.uuid`."
    )
    domain = StrictCharField(
        max_length=2048,
        trim_whitespace=False,
        help_text="The host[:port] of `web.base.url`, or the full URL.",
    )


class FingerprintResponseSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    db_uuid = serializers.CharField()
    domain = serializers.CharField(help_text="The host[:port] that was hashed.")
    algorithm = serializers.CharField()


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


# --- Filters ----------------------------------------------------------------------------


class LicenseFilter(filters.FilterSet):
    customer_id = filters.CharFilter(field_name="customer_id", max_length=50)
    module_name = filters.CharFilter(max_length=128)
    license_type = filters.ChoiceFilter(choices=LicenseType.choices)
    status = filters.ChoiceFilter(choices=STATUS_CHOICES, method="filter_status")
    expires_before = InstantFilter(field_name="expires_at", lookup_expr="lt")
    expires_after = InstantFilter(field_name="expires_at", lookup_expr="gt")
    search = filters.CharFilter(
        method="filter_search",
        max_length=200,
        label="Search license id, module, customer id or name, notes",
    )
    ordering = StableOrderingFilter(
        fields=("issued_at", "expires_at", "module_name", "customer_id", "license_type")
    )

    class Meta:
        model = License
        fields = []

    def filter_status(self, queryset, name, value):
        return queryset.with_status(value)

    def filter_search(self, queryset, name, value):
        # Matching customers first (thousands of rows, not a million): a few ids join the OR
        # as an indexed IN, so PostgreSQL ORs index scans (the trigram indexes of migration
        # 0004 for module and notes) instead of reading every license. When many customers
        # match, so do many licenses: the plain join fills a page at once.
        customers = Customer.objects.filter(Q(id__icontains=value) | Q(name__icontains=value))
        ids = list(customers.values_list("id", flat=True)[: SEARCH_CUSTOMER_IDS + 1])
        if len(ids) > SEARCH_CUSTOMER_IDS:
            by_customer = Q(customer__id__icontains=value) | Q(customer__name__icontains=value)
        else:
            by_customer = Q(customer_id__in=ids)
        match = Q(module_name__icontains=value) | by_customer | Q(notes__icontains=value)
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(value))
        return queryset.filter(match)


# --- Views ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List licenses",
        responses={
            200: LicenseSerializer(many=True),
            **errors(400, 404, *PROTECTED, e404="A page past the last one."),
        },
    ),
    retrieve=extend_schema(
        summary="Get a license",
        responses={200: LicenseSerializer, **errors(404, *PROTECTED)},
    ),
)
class LicenseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Licenses: readonly keys read, issuer keys also issue and revoke."""

    queryset = License.objects.all()
    serializer_class = LicenseSerializer
    filterset_class = LicenseFilter
    lookup_value_regex = UUID_PATTERN
    read_scope = Scope.READONLY
    write_scope = Scope.ISSUER

    def get_queryset(self):
        return license_list()

    # How the paginator reads the rows of a list page (aegis/api/pagination.py).
    page_rows = staticmethod(license_rows)

    def get_object(self):
        license = license_get(self.kwargs["pk"])
        if license is None:
            raise services.LicenseNotFound()
        return license

    @extend_schema(
        summary="Issue a license",
        request=LicenseIssueSerializer,
        responses={
            201: LicenseSerializer,
            **errors(
                *BODY_ERRORS,
                404,
                409,
                *PROTECTED,
                e404="Unknown customer (`customer_not_found`).",
                e409="The customer is inactive (`customer_inactive`).",
                e503="The signing key is unavailable (`signing_key_unavailable`), or the database.",
            ),
        },
    )
    def create(self, request):
        serializer = LicenseIssueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        license = services.license_issue(actor=actor_of(request), **serializer.validated_data)
        location = reverse("license-detail", kwargs={"pk": license.pk})
        return Response(
            LicenseSerializer(license).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )

    @extend_schema(methods=["DELETE"], operation_id="licenses_revoke")
    @extend_schema(methods=["POST"], operation_id="licenses_revoke_post")
    @extend_schema(
        summary="Revoke a license",
        description=(
            '`DELETE` or `POST` with `{"reason"}`. Revoking a revoked license is a 409 '
            "`already_revoked` and changes nothing."
        ),
        request=LicenseRevokeSerializer,
        responses={
            200: LicenseSerializer,
            **errors(
                *BODY_ERRORS,
                404,
                409,
                *PROTECTED,
                e409="Already revoked (`already_revoked`).",
            ),
        },
    )
    @action(detail=True, methods=["post", "delete"])
    def revoke(self, request, pk=None):
        serializer = LicenseRevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        license = services.license_revoke(
            actor=actor_of(request), license_id=pk, reason=serializer.validated_data["reason"]
        )
        return Response(LicenseSerializer(license).data)

    @extend_schema(
        summary="Validate a license token (public)",
        operation_id="licenses_validate",
        description=(
            "A well-formed request always answers 200; `code` names the first failing check "
            "(MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER, EXPIRED, UNKNOWN_LICENSE, "
            "REVOKED, SUSPENDED, MODULE_MISMATCH, VERSION_NOT_ALLOWED, FINGERPRINT_REQUIRED, "
            "FINGERPRINT_MISMATCH), `valid` is true only for `VALID`. The license fields are filled "
            "whenever the token's signature verified."
        ),
        request=ValidateRequestSerializer,
        responses={200: ValidateResponseSerializer, **errors(*BODY_ERRORS, *PUBLIC)},
        auth=[],
        examples=[
            OpenApiExample(
                "Valid",
                response_only=True,
                value={
                    "valid": True,
                    "code": "VALID",
                    "error": None,
                    "license_id": "0bfb0cef-a864-400f-83d4-e8c6bd41dda5",
                    "license_type": "perpetual",
                    "customer_id": "CUST-001",
                    "customer_name": "Acme Corporation",
                    "module_name": "biz4a_payroll_drc",
                    "expires_at": None,
                },
            )
        ],
    )
    @action(
        detail=False, methods=["post"], permission_classes=[AllowAny], authentication_classes=[]
    )
    def validate(self, request):
        serializer = ValidateRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = license_validate(**serializer.validated_data)
        return Response(outcome_body(outcome))

    @extend_schema(
        summary="Compute an instance fingerprint (public)",
        operation_id="licenses_fingerprint",
        description='`"sha256:" + sha256(f"{db_uuid}:{domain}")`, where a full URL is reduced '
        "to its host[:port]; no other normalisation, so the Odoo client computes the same.",
        request=FingerprintRequestSerializer,
        responses={200: FingerprintResponseSerializer, **errors(*BODY_ERRORS, *PUBLIC)},
        auth=[],
    )
    @action(
        detail=False, methods=["post"], permission_classes=[AllowAny], authentication_classes=[]
    )
    def fingerprint(self, request):
        serializer = FingerprintRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        db_uuid, domain = serializer.validated_data["db_uuid"], serializer.validated_data["domain"]
        return Response(
            {
                "fingerprint": compute_fingerprint(db_uuid, domain),
                "db_uuid": db_uuid,
                "domain": instance_domain(domain),
                "algorithm": FINGERPRINT_ALGORITHM,
            }
        )
