"""LOG_FORMAT=json: one JSON object per line with the request fields, one request id shared
with the response and the audit row, and no token or key anywhere in the output."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from rest_framework.test import APIClient

from aegis.logging import build_logging, formatter
from aegis.models import Scope
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
