"""LOG_FORMAT=json: one JSON object per line with the request fields, one request id shared
with the response and the audit row, and no token or key anywhere in the output."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import sys

import pytest
import structlog
from rest_framework.test import APIClient

from aegis.core import logging as aegis_logging
from aegis.core.api.scopes import Scope
from aegis.core.logging import build_logging, formatter
from aegis.services import api_key_create
from audit.models import AuditLog
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log():
    """Everything the process logs while the test runs, through the json formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def lines(stream) -> list[dict]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is one object


def finished(records, path):
    return [r for r in records if r["event"] == "request_finished" and r["path"] == path]


def test_request_line_has_the_fields_and_the_request_id(json_log):
    response = APIClient().get("/health", HTTP_X_REQUEST_ID="trace-42.a_b")
    assert response["X-Request-ID"] == "trace-42.a_b"
    [line] = finished(lines(json_log), "/health")
    assert line["request_id"] == "trace-42.a_b"
    assert line["method"] == "GET" and line["status"] == response.status_code
    assert line["actor"] == "public" and line["level"] == "info"
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z")
    assert list(line)[:3] == ["timestamp", "level", "event"]


def test_an_unsafe_incoming_request_id_is_replaced_everywhere_by_the_same_one(json_log):
    response = APIClient().get("/health", HTTP_X_REQUEST_ID='x" \n{"forged": 1}')
    generated = response["X-Request-ID"]
    assert len(generated) == 32 and "forged" not in json_log.getvalue()
    [line] = finished(lines(json_log), "/health")
    assert line["request_id"] == generated


def test_no_token_or_api_key_reaches_the_log(json_log, customer):
    _, raw_key = api_key_create(actor=ACTOR, name="log-test", scope=Scope.ADMIN)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    issued = client.post(
        "/api/v1/licenses",
        {
            "customer_id": customer.id,
            "module_name": "biz4a_payroll_drc",
            "allowed_major_versions": ["17"],
            "license_type": "perpetual",
        },
        format="json",
        HTTP_X_REQUEST_ID="issue-1",
    )
    assert issued.status_code == 201, issued.content
    token = issued.json()["token"]
    # The token in a body, a query string and a header; a wrong key; a 404 with a token path.
    client.post(
        "/api/v1/licenses/validate",
        {"token": token, "module_name": "biz4a_payroll_drc", "odoo_version": "17.0"},
        format="json",
    )
    client.get(f"/api/v1/licenses?token={token}&search={raw_key}")
    APIClient().get("/api/v1/licenses", HTTP_X_API_KEY=raw_key[:-1] + "x")
    APIClient().get(f"/api/v1/nowhere/{token}", HTTP_AUTHORIZATION=f"Bearer {token}")
    structlog.get_logger("aegis.test").info("handled", token=token, api_key=raw_key)
    logging.getLogger("aegis.test").warning("stdlib message with %s and %s", token, raw_key)

    output = json_log.getvalue()
    secret_part = raw_key.partition(".")[2]
    for secret in (token, token.split(".")[1], token.split(".")[2], raw_key, secret_part):
        assert secret not in output
    records = lines(json_log)
    [issue_line] = finished(records, "/api/v1/licenses")[:1]
    assert issue_line["actor"] == "api_key:log-test" and issue_line["status"] == 201
    # The same request id in the log, the response header and the audit row.
    assert issue_line["request_id"] == "issue-1" == issued["X-Request-ID"]
    assert AuditLog.objects.get(event_type="license.issued").request_id == "issue-1"
    assert any(r["event"] == "request_finished" and r["status"] == 401 for r in records)


def test_text_format_is_readable_and_masked():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("text"))
    log = logging.getLogger("aegis.text-test")
    log.addHandler(handler)
    try:
        log.warning("key abcdefgh.%s used", "A" * 32)
    finally:
        log.removeHandler(handler)
    line = stream.getvalue()
    assert "[warning" in line and "key [api-key] used" in line and "A" * 32 not in line


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or text"):
        build_logging(log_format="xml", level="INFO")


def _through_the_processors(record) -> str:
    """What structlog's ProcessorFormatter writes for `record` (no direct access line)."""
    fmt = formatter("json")
    return structlog.stdlib.ProcessorFormatter.format(fmt, record)


def _access_record(**extra) -> logging.LogRecord:
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "access", None, None)
    record.__dict__.update(extra)
    return record


ACCESS_FIELDS = [
    {
        "remote_ip": "127.0.0.1",
        "method": "POST",
        "path": "/api/v1/licenses/validate",
        "status": 200,
        "bytes": 412,
        "duration_ms": 1.23,
        "request_id": "0583a718fb264e3ba8a9902cfb0b1e20",
        "user_agent": None,
    },
    {"method": "GET", "path": "/health", "status": 503, "bytes": 0, "duration_ms": 0.5},
    {
        "remote_ip": "2001:db8::1",
        "method": "GET",
        # Token- and key-shaped text wherever it appears is masked on both paths.
        "path": "/api/v1/licenses/eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiIxIn0.c2ln",
        "status": 404,
        "bytes": 61,
        "duration_ms": 2,
        "request_id": None,
        "user_agent": f'curl/8 abcdefgh.{"B" * 32} ünïcode "quoted"',
    },
]


@pytest.mark.parametrize("fields", ACCESS_FIELDS)
def test_the_access_line_is_what_the_processors_write(fields):
    direct = json.loads(formatter("json").format(_access_record(**fields)))
    processed = json.loads(_through_the_processors(_access_record(**fields)))
    assert direct.pop("timestamp").endswith("Z") and processed.pop("timestamp").endswith("Z")
    assert direct == processed
    assert list(direct) == list(processed)  # same key order
    assert "eyJhbGciOiJFZERTQSJ9" not in json.dumps(direct) and "B" * 32 not in json.dumps(direct)


def test_the_access_line_bytes_match_with_a_fixed_clock(monkeypatch):
    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 11, 29, 5, 6, 7, 890123, tzinfo=tz)

    monkeypatch.setattr(aegis_logging.dt, "datetime", Frozen)
    monkeypatch.setattr(structlog.processors.datetime, "datetime", Frozen)
    for fields in ACCESS_FIELDS:
        direct = formatter("json").format(_access_record(**fields))
        assert direct == _through_the_processors(_access_record(**fields))
        assert '"timestamp": "2026-11-29T05:06:07.890123Z"' in direct


def test_access_records_with_context_or_an_exception_take_the_processors():
    structlog.contextvars.bind_contextvars(actor="api_key:ctx")
    try:
        line = json.loads(formatter("json").format(_access_record(**ACCESS_FIELDS[0])))
    finally:
        structlog.contextvars.clear_contextvars()
    assert line["actor"] == "api_key:ctx"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _access_record(**ACCESS_FIELDS[1])
        record.exc_info = sys.exc_info()
    assert "exception" in json.loads(formatter("json").format(record))
