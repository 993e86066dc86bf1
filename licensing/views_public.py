"""Public, cacheable documents for offline clients: the JWKS and the signed revocation list.

No authentication (an Odoo instance holds no API key); the API's default throttles apply.
Both answer with `Cache-Control: public, max-age=300` and a strong ETag, and a matching
`If-None-Match` gets a 304 with no body.
"""

from __future__ import annotations

import hashlib
import json

from django.utils.cache import get_conditional_response
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from aegis.core.api.schema import errors
from licensing import revocations, signing

MAX_AGE = 300


def _cacheable(request, payload: dict, etag: str):
    response = Response(payload)
    response["Cache-Control"] = f"public, max-age={MAX_AGE}"
    response["ETag"] = f'"{etag}"'
    return get_conditional_response(request, etag=f'"{etag}"', response=response)


_JWK_FIELDS = {
    "kty": serializers.CharField(help_text="OKP"),
    "crv": serializers.CharField(help_text="Ed25519"),
    "x": serializers.CharField(help_text="The public key, base64url (RFC 8037)."),
    "kid": serializers.CharField(),
    "use": serializers.CharField(help_text="sig"),
    "alg": serializers.CharField(help_text="EdDSA"),
}


class JWKSView(APIView):
    """Every key that verifies licenses (never a private part, never a compromised key)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="jwks",
        summary="The public keys that verify licenses (JWKS)",
        tags=["keys"],
        auth=[],
        responses={
            200: inline_serializer(
                "JWKS", {"keys": inline_serializer("JWK", _JWK_FIELDS, many=True)}
            ),
            304: OpenApiResponse(description="Unchanged since the `If-None-Match` ETag."),
            **errors(429),
        },
    )
    def get(self, request):
        payload = signing.jwks()
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return _cacheable(request, payload, digest[:32])


class RevocationListView(APIView):
    """The signed list of revoked license ids, for clients that verify offline."""

    authentication_classes = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="licenses_revocations",
        summary="The signed revocation list",
        description=(
            "`token` is a compact JWS (header `alg: EdDSA`, `typ: aegis-rl+jwt`, `kid`) signed "
            "by the current key, with claims `iss`, `iat`, `exp`, `seq` (grows with every "
            "revocation), `revoked` (sorted license ids) and `module` when narrowed. Keep the "
            "list with the highest `seq`; refuse an older one."
        ),
        tags=["licenses"],
        auth=[],
        parameters=[
            OpenApiParameter(
                "module",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="Only the licenses of this module (an Odoo technical name).",
                pattern=r"^[a-z][a-z0-9_]{1,127}$",
            )
        ],
        responses={
            200: inline_serializer(
                "RevocationList",
                {
                    "token": serializers.CharField(),
                    "seq": serializers.IntegerField(),
                    "expires_at": serializers.DateTimeField(),
                },
            ),
            304: OpenApiResponse(description="Unchanged since the `If-None-Match` ETag."),
            **errors(
                400,
                429,
                503,
                e400="`module` is not an Odoo technical name.",
                e503="No usable signing key to sign the list.",
            ),
        },
    )
    def get(self, request):
        signed = revocations.revocation_list_get(module=request.query_params.get("module"))
        payload = {
            "token": signed.token,
            "seq": signed.seq,
            "expires_at": serializers.DateTimeField().to_representation(signed.expires_at),
        }
        return _cacheable(request, payload, signed.etag)
