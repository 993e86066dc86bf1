"""`/api/v1/licenses`: issue, read, list, revoke, renew, transfer, and the public validate
and fingerprint.

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

from aegis.core.api.authentication import actor_of
from aegis.core.api.filters import InstantFilter, StableOrderingFilter
from aegis.core.api.schema import BODY_ERRORS, PROTECTED, PUBLIC, errors
from aegis.core.api.scopes import Scope
from aegis.core.api.serializers import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    instant,
)
from customers.models import Customer
from licensing import rules, services, successors
from licensing.api_answers import (
    ValidateRequestSerializer,
    ValidateResponseSerializer,
    outcome_body,
)
from licensing.api_seats import SeatActions
from licensing.models import License, LicenseType, effective_status
from licensing.selectors import license_get, license_list, license_rows
from licensing.validation import license_validate
from licensing.verification import FINGERPRINT_ALGORITHM, Code, compute_fingerprint, instance_domain

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
STATUS_CHOICES = (("active", "active"), ("revoked", "revoked"), ("expired", "expired"))
# A search matching at most this many customers looks their licenses up by customer id.
SEARCH_CUSTOMER_IDS = 500


# --- Serializers ------------------------------------------------------------------------


# The fields of a license as the API shows it, in order: the one list of them.
LICENSE_FIELDS = [
    "id",
    "customer_id",
    "customer_name",
    "module_name",
    "allowed_major_versions",
    "license_type",
    "status",
    "instance_fingerprint",
    "max_instances",
    "max_staging_instances",
    "issued_at",
    "expires_at",
    "revoked_at",
    "revoked_reason",
    "replaces",
    "replaced_by",
    "notes",
    "key_id",
    "token",
    "created_at",
    "updated_at",
]
_INSTANTS = ("issued_at", "expires_at", "revoked_at", "created_at", "updated_at")
# Fields shown under another name than the column's attribute (a row of license_rows holds
# the attributes): the chain's links are ids, never a fetched license.
_SOURCES = {"replaces": "replaces_id", "replaced_by": "replaced_by_id"}


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
    max_instances = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Production seats (CONTRACT §9); null: no limit.",
    )
    max_staging_instances = serializers.IntegerField(read_only=True, help_text="Staging seats.")
    replaces = serializers.UUIDField(
        source="replaces_id",
        read_only=True,
        allow_null=True,
        help_text="The license this one succeeds (its token's `replaces`), or null.",
    )
    replaced_by = serializers.UUIDField(
        source="replaced_by_id",
        read_only=True,
        allow_null=True,
        help_text="The license that succeeded this one (renewal, transfer, re-issue), or null.",
    )

    class Meta:
        model = License
        fields = LICENSE_FIELDS
        read_only_fields = fields

    def to_representation(self, license: License | dict) -> dict:
        """What the declared fields give (tests/perf/test_serializers.py compares the two),
        without DRF's per-field machinery, the costliest part of a page. List pages pass
        rows of `licensing.selectors.license_rows` (dictionaries); a license is read as one."""
        if not isinstance(license, dict):
            row = {
                source: getattr(license, source)
                for source in (_SOURCES.get(name, name) for name in LICENSE_FIELDS)
                if source != "customer_name"
            }
            license = row | {"customer_name": license.customer.name}
        tz = timezone.get_current_timezone()
        out = {name: license[_SOURCES.get(name, name)] for name in LICENSE_FIELDS}
        out["id"] = str(out["id"])
        for name in _SOURCES:
            out[name] = str(out[name]) if out[name] is not None else None
        out["allowed_major_versions"] = [str(v) for v in out["allowed_major_versions"]]
        out["status"] = effective_status(out["status"], out["expires_at"])
        for name in _INSTANTS:
            out[name] = instant(out[name], tz)
        return out


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
    max_instances = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=services.MAX_SEATS,
        help_text="Production instances that may hold a seat at once; null or absent: no limit.",
    )
    max_staging_instances = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=services.MAX_SEATS,
        help_text="Staging instances (database copies) that may hold a seat at once; "
        "default `DEFAULT_MAX_STAGING_INSTANCES` (2).",
    )


class LicenseRevokeSerializer(StrictSerializer):
    reason = StrictCharField(max_length=services.MAX_REASON, help_text="Why (required).")


class LicenseRenewSerializer(StrictSerializer):
    duration_days = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=36500,
        help_text="Days added to the current expiry (to now when it has passed); demo: default 30.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="The new expiry (ISO 8601), later than the current one.",
    )


class LicenseTransferSerializer(StrictSerializer):
    instance_fingerprint = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=71,
        help_text="The new instance: `sha256:` + 64 hex digits, or give the two fields below.",
    )
    instance_db_uuid = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=255,
        trim_whitespace=False,
        help_text="The new instance's `database.uuid` (with `instance_domain`).",
    )
    instance_domain = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=2048,
        trim_whitespace=False,
        help_text="The new instance's `web.base.url` or its host[:port].",
    )
    reason = StrictCharField(max_length=services.MAX_REASON, help_text="Why (required).")


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
class LicenseViewSet(
    SeatActions, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Licenses: readonly keys read, issuer keys also issue and revoke."""

    queryset = License.objects.all()
    serializer_class = LicenseSerializer
    filterset_class = LicenseFilter
    lookup_value_regex = UUID_PATTERN
    read_scope = Scope.READONLY
    write_scope = Scope.ISSUER

    def get_queryset(self):
        return license_list()

    # How the paginator reads the rows of a list page (aegis/core/api/pagination.py).
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
        return _created(license)

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
        summary="Renew a license",
        description=(
            "Issues the successor of a subscription or demo license (CONTRACT §9): a new "
            "license and token (new id, `replaces` = this id) expiring `duration_days` after "
            "the current expiry (after now when it has passed), or at `expires_at`, later "
            "than the current expiry. This license stays valid until its own expiry."
        ),
        request=LicenseRenewSerializer,
        responses={
            201: LicenseSerializer,
            **errors(
                *BODY_ERRORS,
                404,
                409,
                *PROTECTED,
                e400="A shorter, too long or malformed term (`validation_error`).",
                e409="Perpetual or revoked (`not_renewable`), already renewed, transferred or "
                "re-issued (`already_replaced`), or the customer is inactive "
                "(`customer_inactive`).",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        serializer = LicenseRenewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        license = successors.license_renew(
            actor=actor_of(request), license_id=pk, **serializer.validated_data
        )
        return _created(license)

    @extend_schema(
        summary="Transfer a license to another instance",
        description=(
            "Issues the successor of this license bound to another Odoo instance "
            "(`instance_fingerprint`, or `instance_db_uuid` and `instance_domain`), and revokes "
            "this license with `reason`, in one transaction (CONTRACT §9)."
        ),
        request=LicenseTransferSerializer,
        responses={
            201: LicenseSerializer,
            **errors(
                *BODY_ERRORS,
                404,
                409,
                *PROTECTED,
                e400="No instance, both forms, the same instance, or no reason "
                "(`validation_error`).",
                e409="Revoked (`already_revoked`), expired (`license_expired`), already "
                "replaced (`already_replaced`), or the customer is inactive "
                "(`customer_inactive`).",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def transfer(self, request, pk=None):
        serializer = LicenseTransferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        license = successors.license_transfer(
            actor=actor_of(request), license_id=pk, **serializer.validated_data
        )
        return _created(license)

    @extend_schema(
        summary="Validate a license token (public)",
        operation_id="licenses_validate",
        description=(
            "A well-formed request always answers 200; `code` names the first failing check "
            f"({', '.join(c for c in rules.codes(rules.VALIDATE) if c is not Code.VALID)}), "
            "`valid` is true "
            "only for `VALID`. The license fields are filled whenever the token's signature "
            "verified."
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


def _created(license: License) -> Response:
    """201 with the new license and its Location."""
    location = reverse("license-detail", kwargs={"pk": license.pk})
    return Response(
        LicenseSerializer(license).data,
        status=status.HTTP_201_CREATED,
        headers={"Location": location},
    )
