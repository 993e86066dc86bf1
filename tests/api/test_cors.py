"""CORS (django-cors-headers): only the origins in CORS_ORIGINS, none by default."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
ORIGIN = "https://portal.example.com"


def preflight(client: Client):
    return client.options(
        "/api/v1/licenses",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key",
    )


def test_no_origin_is_allowed_by_default():
    response = preflight(Client())
    assert "access-control-allow-origin" not in response.headers


def test_a_listed_origin_may_send_the_api_key_header(settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    response = preflight(Client())
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in response.headers["access-control-allow-headers"]
    other = Client().get("/info", HTTP_ORIGIN="https://evil.example")
    assert "access-control-allow-origin" not in other.headers
