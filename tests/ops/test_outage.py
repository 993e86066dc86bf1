"""A database outage under a running server: /health and validate answer 503 JSON naming
the failure (never `valid: true`, never a traceback), and the same server process answers
200 again as soon as the database is back, without a restart."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from tests.ops.servers import Server, TcpRelay, free_port, manage
from tests.ops.test_deploy import HTTPS, production_env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ISSUE = """
from customers.services import customer_create
from licensing.services import license_issue
customer_create(actor="cli:test", id="CUST-OUTAGE", name="Outage Ltd", email="o@x.example")
print(license_issue(actor="cli:test", customer_id="CUST-OUTAGE", module_name="biz4a_payroll_drc",
                    allowed_major_versions=["17"], license_type="perpetual").token)
"""


@pytest.fixture
def relay():
    relay = TcpRelay(int(connection.settings_dict["PORT"] or 5432))
    yield relay
    relay.close()


@pytest.fixture
def token(tmp_path, server_database, server_keys, static_root):
    """A license issued on the (reachable) database before the server starts."""
    env = production_env(tmp_path, server_database, server_keys, 0, static_root)
    manage(env, "migrate_safely")
    return manage(env, "shell", "-c", ISSUE).strip().splitlines()[-1]


def assert_json_without_traceback(response):
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    text = response.body.decode()
    assert "Traceback" not in text and 'File "' not in text
    return json.loads(text)


def test_health_and_validate_through_an_outage_and_back(
    tmp_path, server_db_name, server_keys, static_root, relay, token
):
    from tests.ops.conftest import postgres_url

    port = free_port()
    env = production_env(
        tmp_path,
        postgres_url(server_db_name, port=relay.port),  # the relay: closed for now
        server_keys,
        port,
        static_root,
        RUN_MIGRATIONS="false",
        DB_CONNECT_TIMEOUT="2",
    )
    server = Server(["deploy/entrypoint.sh"], env, port).start()
    try:
        validate_body = {"token": token, "module_name": "biz4a_payroll_drc", "odoo_version": "17"}

        def check_down():
            health = server.request("GET", "/health")
            assert health.status == 503
            body = assert_json_without_traceback(health)
            assert body["status"] == "degraded"
            assert body["database"] != "ok" and body["signing_key"] == "ok"
            answer = server.request("POST", "/api/v1/licenses/validate", validate_body, HTTPS)
            assert answer.status == 503, answer.body
            body = assert_json_without_traceback(answer)
            assert body.get("valid") is not True
            assert set(body) >= {"detail", "code"}

        def check_up():
            health = server.request("GET", "/health")
            assert health.status == 200, health.body
            assert assert_json_without_traceback(health)["status"] == "healthy"
            answer = server.request("POST", "/api/v1/licenses/validate", validate_body, HTTPS)
            assert answer.status == 200, answer.body
            assert assert_json_without_traceback(answer)["code"] == "VALID"

        check_down()
        relay.open()  # the database comes back
        check_up()
        relay.close()  # and goes away again, under established connections
        check_down()
        relay.open()
        check_up()
        assert server.alive  # one process throughout: no restart
    finally:
        server.stop()
    # The failures were logged as structured lines, like everything else.
    for line in server.stderr:
        if line.strip():
            json.loads(line)
