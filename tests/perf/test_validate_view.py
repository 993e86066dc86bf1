"""The validate hot path (licensing/validate_view.py, aegis/hotpath.py) answers exactly what
the documented DRF action answers: same fields accepted, same body, same headers, same
audit row, same throttle, same errors."""

from __future__ import annotations

import itertools
import json

import pytest
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIRequestFactory

from aegis.hotpath import SELF, short_chain
from audit.models import AuditLog
from licensing import validate_view
from licensing.api import ValidateRequestSerializer
from tests.perf.conftest import last_audit

URL = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
pytestmark = pytest.mark.django_db

# Values each field may take in a request body, the awkward ones included: missing, null,
# wrong types, blank, padded, and strings at and past each field's length limit.
MISSING = object()
STRINGS = ["", " ", "x", " x ", "\tx\n", "a.b.c", "é" * 3]
VALUES = {
    "token": [MISSING, None, 1, ["x"], *STRINGS, "t" * 5000],
    "module_name": [MISSING, None, True, *STRINGS, "m" * 128, " " + "m" * 128, "m" * 129],
    "odoo_version": [MISSING, 17, 17.0, *STRINGS, "1" * 32, "1" * 33, " 17.0 "],
    "fingerprint": [MISSING, None, 1, {}, *STRINGS, "f" * 128, "f" * 129],
    "instance_db_uuid": [MISSING, None, False, *STRINGS, "u" * 255, "u" * 256],
    "instance_domain": [MISSING, None, [], *STRINGS, "d" * 2048, "d" * 2049],
}


def bodies():
    """Every value of each field with the other fields valid, plus a few combinations."""
    base = {"token": "a.b.c", "module_name": MODULE, "odoo_version": "17.0"}
    for name, values in VALUES.items():
        for value in values:
            body = dict(base)
            if value is MISSING:
                body.pop(name, None)
            else:
                body[name] = value
            yield body
    optional = ["fingerprint", "instance_db_uuid", "instance_domain"]
    for a, b in itertools.product([None, "", " x "], repeat=2):
        yield base | dict(zip(optional[1:], (a, b), strict=True))
    yield base | {"extra": "ignored", "nested": {"a": [1, 2]}}
    yield [base]
    yield "token"
    yield None


@pytest.mark.parametrize("body", list(bodies()), ids=lambda b: json.dumps(b)[:60])
def test_the_fast_checks_accept_exactly_what_the_serializer_accepts(body):
    serializer = ValidateRequestSerializer(data=body)
    fast = validate_view.clean(body)
    if fast is None:
        # Left to the action; it must be something the serializer refuses, or reshapes.
        assert not serializer.is_valid() or serializer.validated_data != body
    else:
        assert serializer.is_valid(), serializer.errors
        assert fast == dict(serializer.validated_data)


def _answer(view, body, **extra):
    request = APIRequestFactory().post(URL, body, format="json", **extra)
    response = view(request)
    if hasattr(response, "render"):
        response.render()
    return response


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"odoo_version": "16.0"},
        {"module_name": "  biz4a_payroll_drc  "},
        {"module_name": "other"},
        {"fingerprint": None, "instance_db_uuid": "", "instance_domain": None},
        {"instance_db_uuid": "abc", "instance_domain": "https://erp.example.com/web"},
        {"fingerprint": "sha256:" + "0" * 64},
        {"token": "not-a-token"},
        {"extra": 1},
    ],
)
def test_body_headers_and_audit_row_are_the_actions(make_license, fields):
    license = make_license(license_type="subscription", duration_days=30)
    body = {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"} | fields
    action = _answer(validate_view.action_view(), body)
    action_audit = last_audit()
    fast = _answer(validate_view.validate, body)
    assert AuditLog.objects.latest("id").id > 0
    assert last_audit() == action_audit
    assert fast.status_code == action.status_code == 200
    assert fast.content == action.content
    for header in ("Content-Type", "Allow", "Vary"):
        assert fast[header] == action[header]


@pytest.mark.parametrize(
    ("make_request", "status"),
    [
        (lambda c: c.get(URL), 405),
        (lambda c: c.post(URL, "token=x", content_type="text/plain"), 415),
        (lambda c: c.post(URL, "{", content_type="application/json"), 400),
        (lambda c: c.post(URL, {"token": 1}, content_type="application/json"), 400),
        (
            lambda c: c.post(
                URL + "?format=json",
                {"token": "a.b.c", "module_name": MODULE, "odoo_version": "17"},
                content_type="application/json",
            ),
            200,
        ),
    ],
    ids=["get", "text-plain", "bad-json", "wrong-type", "query-string"],
)
def test_unusual_requests_get_the_actions_answer(make_request, status):
    response = make_request(Client())
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    if status >= 400:
        assert set(response.json()) >= {"detail", "code"}


def test_a_request_counts_once_against_the_throttle(settings, make_license):
    settings.THROTTLE_RATE_PUBLIC = "2/min"
    client = Client()
    license = make_license()
    body = {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"}
    assert client.post(URL, {"token": 1}, content_type="application/json").status_code == 400
    assert client.post(URL, body, content_type="application/json").status_code == 200
    rows = AuditLog.objects.count()
    refused = client.post(URL, body, content_type="application/json")
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert AuditLog.objects.count() == rows  # refused before any database work


def test_a_refused_audit_insert_is_the_actions_503(make_license, request):
    license = make_license()
    request.getfixturevalue("audit_insert_fails")
    response = Client().post(
        URL,
        {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"},
        content_type="application/json",
    )
    assert response.status_code == 503
    assert response.json() == {
        "detail": "The request could not be completed and nothing was changed; try again shortly.",
        "code": "service_unavailable",
    }


# --- The shorter middleware chain ---------------------------------------------------------


def _validate(client: Client, token: str):
    return client.post(
        URL,
        {"token": token, "module_name": MODULE, "odoo_version": "17.0"},
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-123",
        HTTP_ORIGIN="https://erp.example.com",
    )


@override_settings(CORS_ALLOWED_ORIGINS=["https://erp.example.com"])
def test_the_short_chain_answers_with_the_headers_of_the_full_one(make_license, settings):
    license = make_license()
    short = _validate(Client(), license.token)
    with override_settings(HOT_PATH_SKIP_MIDDLEWARE={}):
        full = _validate(Client(), license.token)
    assert short.status_code == full.status_code == 200
    assert dict(short.headers) == dict(full.headers)
    assert short["X-Request-ID"] == "req-123"
    assert short["Access-Control-Allow-Origin"] == "https://erp.example.com"
    row = AuditLog.objects.latest("id")
    assert (row.request_id, row.ip) == ("req-123", "127.0.0.1")


def test_the_short_chain_is_the_full_one_minus_the_skipped_middleware(settings):
    (skip,) = settings.HOT_PATH_SKIP_MIDDLEWARE.values()
    kept, _ = short_chain(skip)
    assert kept == [m for m in settings.MIDDLEWARE if m not in skip and m != SELF]
    assert "aegis.api.middleware.APIBoundaryMiddleware" in kept
    assert "aegis.middleware.RequestContextMiddleware" in kept


def test_other_routes_keep_the_full_chain(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies  # CsrfViewMiddleware ran


def test_a_validation_is_one_statement_outside_the_hash_chain(
    make_license, django_assert_num_queries
):
    """PostgreSQL: lookup and audit INSERT in one statement; elsewhere one after the other."""
    license = make_license()
    body = {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"}
    statements = 1 if connection.vendor == "postgresql" else 2
    with django_assert_num_queries(statements) as captured:
        assert Client().post(URL, body, content_type="application/json").status_code == 200
    sql = " ".join(q["sql"] for q in captured.captured_queries)
    assert "SELECT" in sql and "INSERT" in sql
    assert "advisory" not in sql  # no chain lock on the hot path
    row = AuditLog.objects.latest("id")
    assert (row.event_type, row.chain_seq, row.prev_hash, row.hash) == (
        "license.validated",
        None,
        None,
        None,
    )
