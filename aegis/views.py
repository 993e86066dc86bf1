"""`/health` and `/info` (CONTRACT §4): public, throttled per client IP, never a 500."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from aegis.core.api.schema import errors
from licensing import signing
from licensing.models import LicenseType

APP_NAME = "AEGIS License Server"


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded"])
    version = serializers.CharField()
    environment = serializers.CharField()
    database = serializers.ChoiceField(choices=["ok", "unavailable"])
    signing_key = serializers.ChoiceField(choices=["ok", "unavailable"])


class InfoSerializer(serializers.Serializer):
    app_name = serializers.CharField()
    version = serializers.CharField()
    environment = serializers.CharField()
    issuer = serializers.CharField()
    key_id = serializers.CharField(help_text="The kid new licenses are signed with.")
    verification_key_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Every kid whose tokens verify here."
    )
    api_version = serializers.CharField()
    license_types = serializers.ListField(child=serializers.CharField())


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True


class _PublicView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]


class HealthView(_PublicView):
    @extend_schema(
        summary="Health check",
        description="503 with `status: degraded` names the failing part.",
        responses={200: HealthSerializer, 503: HealthSerializer, **errors(429)},
        auth=[],
    )
    def get(self, request):
        parts = {
            "database": "ok" if _database_ok() else "unavailable",
            # Only whether it is usable: the reason (a file path) is for the operator's logs.
            "signing_key": "ok" if signing.signing_key_status() is None else "unavailable",
        }
        healthy = all(value == "ok" for value in parts.values())
        body = {
            "status": "healthy" if healthy else "degraded",
            "version": settings.AEGIS_VERSION,
            "environment": settings.ENVIRONMENT,
            **parts,
        }
        return Response(body, status=200 if healthy else 503)


class InfoView(_PublicView):
    @extend_schema(
        summary="Server information",
        responses={200: InfoSerializer, **errors(429)},
        auth=[],
    )
    def get(self, request):
        return Response(
            {
                "app_name": APP_NAME,
                "version": settings.AEGIS_VERSION,
                "environment": settings.ENVIRONMENT,
                "issuer": settings.LICENSE_ISSUER,
                "key_id": settings.KEY_ID,
                "verification_key_ids": sorted(signing.keyring().public_keys),
                "api_version": settings.API_VERSION,
                "license_types": list(LicenseType.values),
            }
        )
