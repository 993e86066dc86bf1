"""The validate fast path in front of Django (licensing/validate_wsgi.py) answers exactly
what Django answers — status, body, headers, audit row — and leaves every other request to
Django. Requests are WSGI environs handed to the real application, as gunicorn hands them."""

from __future__ import annotations

import copy
import io
import json
import sys

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils.datastructures import CaseInsensitiveMapping
from prometheus_client import REGISTRY

from audit.models import AuditLog
from licensing.services import license_revoke
from licensing.validate_wsgi import ValidateFastPath
from tests.conftest import ACTOR, audit_inserts_refused, cache_unreachable_now
from tests.perf.conftest import last_audit

URL = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
pytestmark = pytest.mark.django_db


class Counted:
    """The Django application, counting the requests it is handed."""

    def __init__(self) -> None:
        self.app = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.app(environ, start_response)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: a request must not close the connection holding the
    test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def django_app() -> Counted:
    return Counted()


@pytest.fixture
def fast(django_app) -> ValidateFastPath:
    return ValidateFastPath(django_app)


def environ(body, **extra) -> dict:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": URL,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "HTTP_HOST": "testserver",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
    }
    env.update(extra)
    return env


def call(app, body, **extra) -> tuple[int, dict[str, str], bytes]:
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = CaseInsensitiveMapping(dict(headers))

    chunks = app(environ(body, **extra), start_response)
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return answer["status"], answer["headers"], content


def body_for(license, **fields) -> dict:
    return {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"} | fields


def without_request_id(headers) -> dict:
    return {k.lower(): v for k, v in headers.items() if k.lower() != "x-request-id"}


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"odoo_version": "16.0"},
        {"module_name": "other_module"},
        {"module_name": f"  {MODULE}  "},
        {"token": "not-a-token"},
        {"fingerprint": "sha256:" + "0" * 64},
        {"instance_db_uuid": "abc", "instance_domain": "https://erp.example.com/web"},
        {"extra": "ignored"},
    ],
    ids=lambda f: json.dumps(f)[:40],
)
def test_answers_as_django_does(make_license, settings, scheme, fields):
    settings.SECURE_HSTS_SECONDS = 3600  # an https answer carries HSTS
    django_app = Counted()  # Django's middleware reads the setting when it is loaded
    fast = ValidateFastPath(django_app)
    license = make_license(license_type="subscription", duration_days=30)
    body = body_for(license, **fields)
    django = call(django_app, body, **{"wsgi.url_scheme": scheme})
    django_audit = last_audit()
    call(fast, body, **{"wsgi.url_scheme": scheme})  # the first one teaches the headers
    calls = django_app.calls
    ours = call(fast, body, **{"wsgi.url_scheme": scheme})
    assert django_app.calls == calls  # answered in front of Django
    assert last_audit() == django_audit
    assert ours[0] == django[0] == 200
    assert ours[2] == django[2]
    assert without_request_id(ours[1]) == without_request_id(django[1])
    assert ("Strict-Transport-Security" in ours[1]) is (scheme == "https")


def test_revocation_is_seen_on_the_next_request(fast, django_app, make_license):
    license = make_license()
    call(fast, body_for(license))
    assert json.loads(call(fast, body_for(license))[2])["code"] == "VALID"
    license_revoke(actor=ACTOR, license_id=license.pk, reason="chargeback")
    calls = django_app.calls
    assert json.loads(call(fast, body_for(license))[2])["code"] == "REVOKED"
    assert django_app.calls == calls


def test_every_request_writes_one_audit_row_with_its_request_id(fast, make_license):
    license = make_license()
    call(fast, body_for(license))
    before = AuditLog.objects.count()
    status, headers, _ = call(fast, body_for(license), HTTP_X_REQUEST_ID="odoo-42.a_b")
    assert status == 200 and headers["X-Request-ID"] == "odoo-42.a_b"
    status, headers, _ = call(fast, body_for(license), HTTP_X_REQUEST_ID="bad id\n")
    assert len(headers["X-Request-ID"]) == 32
    rows = list(AuditLog.objects.order_by("id")[before:])
    assert [r.request_id for r in rows] == ["odoo-42.a_b", headers["X-Request-ID"]]
    assert {str(r.ip) for r in rows} == {"10.1.2.3"}


@pytest.mark.parametrize(
    ("extra", "body", "status"),
    [
        ({"HTTP_ORIGIN": "https://erp.example.com"}, None, 200),
        ({"QUERY_STRING": "format=json"}, None, 200),
        ({"HTTP_ACCEPT": "application/xml"}, None, 406),
        ({"CONTENT_TYPE": "application/json; charset=utf-8"}, None, 200),
        ({"CONTENT_TYPE": "text/plain"}, None, 415),
        ({"HTTP_HOST": "evil.example"}, None, 400),
        ({"REQUEST_METHOD": "GET"}, None, 405),
        ({}, b"{", 400),
        ({}, {"token": 1, "module_name": MODULE, "odoo_version": "17"}, 400),
        ({}, b"x" * (65 * 1024), 413),
    ],
    ids=[
        "origin",
        "query",
        "accept",
        "charset",
        "media-type",
        "host",
        "get",
        "json",
        "type",
        "size",
    ],
)
def test_other_requests_get_djangos_answer(fast, django_app, make_license, extra, body, status):
    license = make_license()
    call(fast, body_for(license))  # headers learned: the fast path is ready
    request = body if body is not None else body_for(license)
    calls = django_app.calls
    answer = call(fast, request, **extra)
    assert django_app.calls == calls + 1
    assert answer[0] == status
    assert answer[1]["Content-Type"] == "application/json"
    assert answer[2] == call(django_app, request, **extra)[2]


def test_cors_headers_come_from_django(fast, make_license, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://erp.example.com"]
    license = make_license()
    call(fast, body_for(license))
    _, headers, _ = call(fast, body_for(license), HTTP_ORIGIN="https://erp.example.com")
    assert headers["Access-Control-Allow-Origin"] == "https://erp.example.com"


def test_plain_http_is_redirected_when_https_is_required(make_license, settings):
    license = make_license()
    settings.SECURE_SSL_REDIRECT = True
    fast = ValidateFastPath(Counted())  # Django's middleware reads the setting when loaded
    call(fast, body_for(license), **{"wsgi.url_scheme": "https"})  # learned for https
    status, headers, _ = call(fast, body_for(license))
    assert status == 301 and headers["Location"].startswith("https://")


def test_throttled_clients_get_djangos_429(fast, django_app, make_license, settings):
    settings.THROTTLE_RATE_PUBLIC = "2/min"
    license = make_license()
    assert call(fast, body_for(license))[0] == 200  # Django, teaching the headers
    calls = django_app.calls
    assert call(fast, body_for(license))[0] == 200  # the fast path
    assert django_app.calls == calls
    status, headers, content = call(fast, body_for(license))
    assert status == 429 and json.loads(content)["code"] == "throttled"
    assert "Retry-After" in headers


def test_a_setting_change_is_learned_again(fast, django_app, make_license, settings):
    license = make_license()
    call(fast, body_for(license))
    assert call(fast, body_for(license))[1]["X-Frame-Options"] == "DENY"
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    calls = django_app.calls
    assert call(fast, body_for(license))[1]["X-Frame-Options"] == "SAMEORIGIN"
    assert django_app.calls == calls + 1  # Django answered, and taught the new headers


def test_turned_off_every_request_goes_to_django(fast, django_app, make_license, settings):
    settings.VALIDATE_FAST_PATH = False
    license = make_license()
    for _ in range(3):
        assert call(fast, body_for(license))[0] == 200
    assert django_app.calls == 3


@pytest.mark.django_db(transaction=True)
def test_a_database_failure_is_answered_by_django_without_a_second_attempt(
    fast, django_app, make_license, service_runs, settings
):
    # Counted once against the throttle: the teaching request and this one fit in 2/min.
    settings.THROTTLE_RATE_PUBLIC = "2/min"
    license = make_license()
    call(fast, body_for(license))
    service_runs.clear()  # the first request, answered by Django, taught the headers
    with audit_inserts_refused("fail_audit_fast_path"):
        status, headers, content = call(fast, body_for(license))
    assert status == 503
    assert json.loads(content)["code"] == "service_unavailable"
    assert headers["Content-Type"] == "application/json"
    assert len(service_runs) == 1  # the service ran in front of Django, and not again


def test_prometheus_counts_the_fast_paths_answers(fast, make_license):
    labels = {"status": "200", "view": "license-validate", "method": "POST"}
    name = "django_http_responses_total_by_status_view_method_total"
    license = make_license()
    call(fast, body_for(license))
    before = REGISTRY.get_sample_value(name, labels) or 0
    call(fast, body_for(license))
    call(fast, body_for(license))
    assert REGISTRY.get_sample_value(name, labels) == before + 2


def test_a_cache_outage_is_answered_by_django_with_503(fast, make_license, settings):
    """The throttles cannot be asked: the request goes to Django, whose answer is the same
    as on every route (503 JSON), never a server error."""
    license = make_license()
    call(fast, body_for(license))
    learned = copy.deepcopy(fast.headers)
    with cache_unreachable_now():
        fast.headers = learned  # ready, as a worker is when its cache goes away
        status, headers, content = call(fast, body_for(license))
    assert status == 503 and headers["Content-Type"] == "application/json"
    assert json.loads(content)["code"] == "service_unavailable"
