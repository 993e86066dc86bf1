"""Seats (CONTRACT §9) on `/api/v1/licenses`: activate, deactivate, a license's activations.

`SeatActions` is mixed into `licensing.api.LicenseViewSet`; its actions call the services of
licensing/seats.py. Activate and deactivate are public (the token is the credential) and
throttled per client IP like validate; they answer 200 with a code for any well-formed
request, as validate does.
"""

from __future__ import annotations

import datetime as dt

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from aegis.core.api.authentication import actor_of
from aegis.core.api.schema import BODY_ERRORS, PROTECTED, PUBLIC, errors
from aegis.core.api.serializers import StrictCharField, instant
from licensing import rules, seats
from licensing.api_answers import (
    ValidateRequestSerializer,
    ValidateResponseSerializer,
    code_choices,
    outcome_body,
)
from licensing.models import Activation, Environment
from licensing.selectors import ACTIVATION_STATUSES, activation_list, activation_status
from licensing.services import LicenseNotFound
from licensing.verification import MESSAGES, Code

# --- Serializers ------------------------------------------------------------------------


def _db_uuid() -> StrictCharField:
    return StrictCharField(
        max_length=255, trim_whitespace=False, help_text="Odoo's `database.uuid`."
    )


def _domain() -> StrictCharField:
    return StrictCharField(
        max_length=2048,
        trim_whitespace=False,
        help_text="The host of `web.base.url` (or the full URL).",
    )


class ActivateRequestSerializer(ValidateRequestSerializer):
    """Validate's body with the instance details required (no precomputed fingerprint: the
    server stores the database uuid and the domain), plus the environment and a nonce."""

    fingerprint = None
    instance_db_uuid = _db_uuid()
    instance_domain = _domain()
    environment = serializers.ChoiceField(
        choices=Environment.choices,
        default=Environment.PRODUCTION,
        help_text="`staging`: an Odoo database copy or a neutralized one (seats counted apart).",
    )
    nonce = StrictCharField(
        required=False,
        allow_null=True,
        max_length=seats.NONCE_MAX,
        trim_whitespace=False,
        validators=[RegexValidator(r"^[ -~]{1,128}\Z", "1 to 128 printable ASCII characters.")],
        help_text="For signed answers (CONTRACT §10).",
    )


class DeactivateRequestSerializer(serializers.Serializer):
    """Lenient about extra fields, as validate and activate are."""

    token = StrictCharField(trim_whitespace=False, help_text="The license token (compact JWS).")
    instance_db_uuid = _db_uuid()
    instance_domain = _domain()


class ActivateResponseSerializer(ValidateResponseSerializer):
    code = serializers.ChoiceField(choices=code_choices(rules.ACTIVATE))
    activation_id = serializers.UUIDField(
        allow_null=True, help_text="The seat (and the lease's `jti`); null unless VALID."
    )
    lease = serializers.CharField(
        allow_null=True,
        help_text="Compact JWS, header `typ: aegis-lease+jwt`: what the instance verifies "
        "offline until `lease_expires_at`. Null unless VALID.",
    )
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    successor_token = serializers.CharField(
        allow_null=True,
        help_text="The token of a newer license of the chain (a renewal, a re-issue) valid "
        "for this instance: adopt it. Null when there is none.",
    )


class DeactivateResponseSerializer(serializers.Serializer):
    deactivated = serializers.BooleanField(help_text="True when a seat was given back.")
    code = serializers.ChoiceField(
        choices=[
            c.value
            for c in (
                Code.MALFORMED,
                Code.UNKNOWN_KEY,
                Code.BAD_SIGNATURE,
                Code.WRONG_ISSUER,
                Code.UNKNOWN_LICENSE,
                Code.NOT_ACTIVATED,
                Code.VALID,
            )
        ]
    )
    error = serializers.CharField(allow_null=True, help_text="null when deactivated.")
    license_id = serializers.CharField(allow_null=True)
    activation_id = serializers.UUIDField(allow_null=True)


class ActivationSerializer(serializers.ModelSerializer):
    license_id = serializers.UUIDField(read_only=True)
    status = serializers.ChoiceField(
        choices=[(s, s) for s in ACTIVATION_STATUSES],
        read_only=True,
        help_text="`active` holds a seat; `expired`: its lease ran out (the seat is free); "
        "`released`: given back.",
    )
    clone_suspected = serializers.BooleanField(
        read_only=True,
        help_text="Another active activation of this license has the same database uuid "
        "on another domain.",
    )

    class Meta:
        model = Activation
        fields = [
            "id",
            "license_id",
            "fingerprint",
            "db_uuid",
            "domain",
            "environment",
            "odoo_version",
            "status",
            "clone_suspected",
            "first_seen_at",
            "last_seen_at",
            "lease_expires_at",
            "released_at",
        ]
        read_only_fields = fields

    def to_representation(self, activation: Activation) -> dict:
        now = self.context.get("now") or timezone.now()
        tz = timezone.get_current_timezone()
        return {
            "id": str(activation.pk),
            "license_id": str(activation.license_id),
            "fingerprint": activation.fingerprint,
            "db_uuid": activation.db_uuid,
            "domain": activation.domain,
            "environment": activation.environment,
            "odoo_version": activation.odoo_version,
            "status": activation_status(activation, now),
            "clone_suspected": bool(getattr(activation, "clone_suspected", False)),
            "first_seen_at": instant(activation.first_seen_at, tz),
            "last_seen_at": instant(activation.last_seen_at, tz),
            "lease_expires_at": instant(activation.lease_expires_at, tz),
            "released_at": instant(activation.released_at, tz),
        }


def activated_body(result: seats.Activated) -> dict:
    activation = result.activation
    return outcome_body(result.outcome) | {
        "activation_id": str(activation.pk) if activation else None,
        "lease": result.lease,
        "lease_expires_at": instant(activation.lease_expires_at, dt.UTC) if activation else None,
        "successor_token": result.successor_token,
    }


def deactivated_body(result: seats.Deactivated) -> dict:
    return {
        "deactivated": result.deactivated,
        "code": result.code.value,
        "error": MESSAGES[result.code],
        "license_id": result.license_id,
        "activation_id": str(result.activation.pk) if result.activation else None,
    }


_ACTIVATION_ID = OpenApiParameter(
    "activation_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The activation."
)


# --- Actions ----------------------------------------------------------------------------


class SeatActions:
    """The seat actions of the license routes."""

    @extend_schema(
        summary="Activate an instance: claim or keep a seat (public)",
        operation_id="licenses_activate",
        description=(
            "Every validation check runs first, in the contract's order, then the seat: the "
            "same instance re-uses its activation (a heartbeat, with a new lease), a new one "
            "takes a free seat of its environment, none free → `SEATS_EXCEEDED`. A "
            "well-formed request always answers 200; `code` is one of "
            f"{', '.join(code_choices(rules.ACTIVATE))}."
        ),
        request=ActivateRequestSerializer,
        responses={200: ActivateResponseSerializer, **errors(*BODY_ERRORS, *PUBLIC)},
        auth=[],
        examples=[
            OpenApiExample(
                "Activated",
                response_only=True,
                value={
                    "valid": True,
                    "code": "VALID",
                    "error": None,
                    "license_id": "0bfb0cef-a864-400f-83d4-e8c6bd41dda5",
                    "license_type": "subscription",
                    "customer_id": "CUST-001",
                    "customer_name": "Acme Corporation",
                    "module_name": "biz4a_payroll_drc",
                    "expires_at": "2027-01-31T00:00:00Z",
                    "activation_id": "5d0c3f4e-2b8a-4d6e-9b41-7a0f6b9c1e22",
                    "lease": "eyJhbGciOiJFZERTQSIsImtpZCI6ImFlZ2lzLTAxIiwidHlwIjoiYWVnaXMtbGVhc2Urand0In0.…",
                    "lease_expires_at": "2026-02-14T09:30:00Z",
                    "successor_token": None,
                },
            )
        ],
    )
    @action(
        detail=False, methods=["post"], permission_classes=[AllowAny], authentication_classes=[]
    )
    def activate(self, request):
        serializer = ActivateRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(activated_body(seats.license_activate(**serializer.validated_data)))

    @extend_schema(
        summary="Deactivate an instance: give its seat back (public)",
        operation_id="licenses_deactivate",
        description=(
            "The token's signature must verify (an expired or revoked license may still give "
            "its seat back). A well-formed request always answers 200: `deactivated` true "
            "with `code: VALID`, or false with why (a token code, `UNKNOWN_LICENSE`, "
            "`NOT_ACTIVATED`: this instance holds no seat)."
        ),
        request=DeactivateRequestSerializer,
        responses={200: DeactivateResponseSerializer, **errors(*BODY_ERRORS, *PUBLIC)},
        auth=[],
    )
    @action(
        detail=False, methods=["post"], permission_classes=[AllowAny], authentication_classes=[]
    )
    def deactivate(self, request):
        serializer = DeactivateRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = seats.license_deactivate(**serializer.validated_data)
        return Response(deactivated_body(result))

    @extend_schema(
        summary="A license's activations",
        operation_id="licenses_activations_list",
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=list(ACTIVATION_STATUSES),
                description="Only the activations in this state.",
            )
        ],
        responses={200: ActivationSerializer(many=True), **errors(400, 404, *PROTECTED)},
    )
    @action(detail=True, methods=["get"], url_path="activations")
    def activations(self, request, pk=None):
        status = request.query_params.get("status")
        if status is not None and status not in ACTIVATION_STATUSES:
            raise ValidationError({"status": [f"One of {', '.join(ACTIVATION_STATUSES)}."]})
        now = timezone.now()
        queryset = activation_list(license_id=pk, status=status, now=now)
        if queryset is None:
            raise LicenseNotFound()
        page = self.paginator.paginate_queryset(queryset, request)
        data = ActivationSerializer(page, many=True, context={"now": now}).data
        return self.paginator.get_paginated_response(data)

    @extend_schema(
        summary="Release an activation (its seat)",
        operation_id="licenses_activations_release",
        description="The seat is free at once and the lease id goes on the revocation list. "
        "Releasing again is a 409 `activation_already_released`.",
        parameters=[_ACTIVATION_ID],
        request=None,
        responses={
            200: ActivationSerializer,
            **errors(
                404,
                409,
                *PROTECTED,
                e404="No such license (`license_not_found`) or activation "
                "(`activation_not_found`).",
                e409="Released already (`activation_already_released`).",
            ),
        },
    )
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"activations/(?P<activation_id>[^/]+)",
        url_name="activation-release",
    )
    def release_activation(self, request, pk=None, activation_id=None):
        activation = seats.activation_release(
            actor=actor_of(request), license_id=pk, activation_id=activation_id
        )
        return Response(ActivationSerializer(activation).data)
