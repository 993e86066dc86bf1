"""Bad input never yields HTML, a traceback or a 500 under /api (CONTRACT §6): each case
answers its status with the JSON error body."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db
VALIDATE = "/api/v1/licenses/validate"
GOOD = '{"token": "a.b.c", "module_name": "m", "odoo_version": "17"}'


@pytest.fixture
def raw():
    """Django's test client: bodies and headers exactly as given."""
    return Client()


def test_malformed_json_is_400(raw):
    response = raw.post(VALIDATE, '{"token": ', content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_invalid_utf8_is_400(raw):
    response = raw.post(VALIDATE, b'{"token": "\xff\xfe"}', content_type="application/json")
    assert_error(response, 400, "parse_error")


@pytest.mark.parametrize("depth", [25, 10_000])
def test_deeply_nested_json_is_400(raw, depth):
    body = '{"token": ' + "[" * depth + "]" * depth + "}"
    assert_error(raw.post(VALIDATE, body, content_type="application/json"), 400, "parse_error")


def test_body_over_64_kib_is_413(raw):
    body = '{"token": "' + "a" * (64 * 1024) + '"}'
    assert_error(
        raw.post(VALIDATE, body, content_type="application/json"), 413, "request_too_large"
    )


def test_declared_length_over_64_kib_is_413_before_reading(raw):
    response = raw.post(
        VALIDATE, GOOD, content_type="application/json", CONTENT_LENGTH=str(10 * 1024 * 1024)
    )
    assert_error(response, 413, "request_too_large")


def test_body_just_under_the_limit_is_read(raw):
    token = "a" * (64 * 1024 - 100)
    body = f'{{"token": "{token}", "module_name": "m", "odoo_version": "17"}}'
    response = raw.post(VALIDATE, body, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["code"] == "MALFORMED"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_415(raw, content_type):
    response = raw.post(VALIDATE, GOOD, content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_missing_content_type_is_415(raw):
    response = raw.generic("POST", VALIDATE, GOOD.encode(), content_type="")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "body",
    [
        '{"token": "a\\u0000b", "module_name": "m", "odoo_version": "17"}',
        '{"token": "a.b.c", "module_name": "m\\u0000", "odoo_version": "17"}',
        '{"token\\u0000": "a.b.c", "module_name": "m", "odoo_version": "17"}',
    ],
)
def test_nul_characters_are_400(raw, body):
    assert_error(raw.post(VALIDATE, body, content_type="application/json"), 400, "parse_error")


def test_raw_nul_byte_is_400(raw):
    body = b'{"token": "a\x00b", "module_name": "m", "odoo_version": "17"}'
    assert_error(raw.post(VALIDATE, body, content_type="application/json"), 400, "parse_error")


def test_lone_surrogate_is_400(raw):
    body = '{"token": "\\ud800", "module_name": "m", "odoo_version": "17"}'
    assert_error(raw.post(VALIDATE, body, content_type="application/json"), 400, "parse_error")


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "9" * 5000])
def test_huge_or_special_numbers_are_400(raw, number):
    body = f'{{"token": {number}, "module_name": "m", "odoo_version": "17"}}'
    response = raw.post(VALIDATE, body, content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_huge_integer_in_a_numeric_field_is_400(issuer, customer):
    response = issuer.post(
        "/api/v1/licenses",
        {
            "customer_id": "CUST-001",
            "module_name": "biz4a_payroll_drc",
            "allowed_major_versions": ["17"],
            "license_type": "subscription",
            "duration_days": 10**300,
        },
        format="json",
    )
    assert "duration_days" in assert_error(response, 400, "validation_error")["errors"]


def test_unicode_is_fine(issuer):
    response = issuer.post(
        "/api/v1/customers",
        {"name": "Société Générale 株式会社 🚀", "email": "it@example.com"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["name"] == "Société Générale 株式会社 🚀"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v1/licenses/not-a-uuid",
        "/api/v1/licenses/00000000-0000-0000-0000-00000000000g",
        "/api/v1/customers/a%00b",
        "/api/v1/",
        "/api/v2/licenses",
        "/api/",
    ],
)
def test_unknown_routes_are_json_404(raw, path):
    assert_error(raw.get(path), 404, "not_found")
    assert_error(raw.post(path, "{}", content_type="application/json"), 404, "not_found")


def test_unknown_route_is_json_404_even_with_debug(raw, settings):
    settings.DEBUG = True
    assert_error(raw.get("/api/v1/nothing-here"), 404, "not_found")


def test_browser_accept_header_still_gets_json_errors(raw):
    response = raw.get("/api/v1/licenses", HTTP_ACCEPT="text/html")
    assert_error(response, 401, "not_authenticated")


def test_method_not_allowed_is_json_405(raw):
    assert_error(raw.get(VALIDATE), 405, "method_not_allowed")


def test_chunked_body_without_length_is_411(raw):
    response = raw.generic(
        "POST",
        VALIDATE,
        b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert_error(response, 411, "length_required")


def test_invalid_content_length_is_400(raw):
    response = raw.post(VALIDATE, GOOD, content_type="application/json", CONTENT_LENGTH="abc")
    assert_error(response, 400, "bad_request")


def test_api_key_in_query_string_or_body_is_ignored(raw, make_key):
    key = make_key("admin")
    assert_error(raw.get(f"/api/v1/licenses?api_key={key}"), 401, "not_authenticated")
    assert_error(raw.get(f"/api/v1/licenses?X-API-Key={key}"), 401, "not_authenticated")


@pytest.mark.parametrize(
    "header", ["garbage", "a" * 5000, "abc.def\x00", "Abcd1234.", "Api-Key Abcd1234.xyz"]
)
def test_malformed_api_key_is_401_without_a_lookup(raw, header, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = raw.get("/api/v1/licenses", HTTP_X_API_KEY=header)
    assert_error(response, 401, "invalid_api_key")


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_is_503_json(raw, make_license, closed_database):
    license = make_license()
    body = f'{{"token": "{license.token}", "module_name": "m", "odoo_version": "17"}}'
    with closed_database():
        response = raw.post(VALIDATE, body, content_type="application/json")
    assert_error(response, 503, "database_unavailable")


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_on_an_authenticated_route_is_503_json(raw, make_key, closed_database):
    key = make_key("admin")
    with closed_database():
        response = raw.get("/api/v1/licenses", HTTP_X_API_KEY=key)
    assert_error(response, 503, "database_unavailable")


def test_unexpected_error_is_json_500_without_traceback(raw, make_key, monkeypatch):
    """A bug anywhere below DRF still answers the JSON body (simulated by a broken selector)."""

    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr("licensing.api.license_list", broken)
    response = raw.get("/api/v1/licenses", HTTP_X_API_KEY=make_key("admin"))
    body = assert_error(response, 500, "server_error")
    assert "secret" not in response.content.decode()
    assert "Traceback" not in body["detail"]
    assert connection.is_usable()


def test_django_error_handlers_answer_json_under_api_only(rf):
    from aegis.core.api.exceptions import handler404, handler500

    api = handler500(rf.get("/api/v1/licenses"))
    assert api.status_code == 500
    assert json.loads(api.content) == {"detail": "Internal server error.", "code": "server_error"}
    missing = handler404(rf.get("/api/v1/x"), None)
    assert json.loads(missing.content) == {"detail": "Not found.", "code": "not_found"}
    page = handler500(rf.get("/admin/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_pages_outside_api_keep_django_errors(raw):
    response = raw.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
