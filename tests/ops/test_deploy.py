"""The production entrypoint outside Docker: it migrates a fresh database, serves /health,
the API and the admin with production settings under gunicorn (2 workers, recycled every
few requests), sums its metrics across worker processes, logs one JSON object per line
and never a token or an API key."""

from __future__ import annotations

import json
import re

import pytest

from tests.ops.servers import STRONG_SECRET, Server, base_env, free_port, manage

pytestmark = pytest.mark.django_db  # for the database names; the server has its own

HTTPS = {"X-Forwarded-Proto": "https"}  # what the TLS proxy in front adds


def production_env(tmp_path, database_url, keys_dir, port, static_root, **extra) -> dict[str, str]:
    return base_env(
        ENVIRONMENT="production",
        DEBUG="false",
        API_SECRET_KEY=STRONG_SECRET,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        KEYS_DIR=str(keys_dir),
        KEY_ID="deploy-01",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        STATIC_ROOT=str(static_root),
        **extra,
    )


def metric(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{wanted}}}" if labels else name) + r" ([0-9.e+]+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"{name} {labels} not in /metrics"
    return float(found.group(1))


@pytest.fixture
def server(tmp_path, server_database, server_keys, static_root):
    port = free_port()
    # Workers are recycled every 4 requests: the requests below are served by several
    # processes, and /metrics must still add them all up.
    env = production_env(
        tmp_path, server_database, server_keys, port, static_root, GUNICORN_MAX_REQUESTS="4"
    )
    srv = Server(["deploy/entrypoint.sh"], env, port)
    srv.start()
    yield srv
    srv.stop()


def test_entrypoint_serves_a_fresh_database_with_production_settings(server, tmp_path):
    assert any("Applying audit.0001_initial" in line for line in server.stdout)
    health = server.request("GET", "/health")
    assert health.status == 200, health.body
    assert health.json()["status"] == "healthy"
    assert health.json()["environment"] == "production"
    # The proxy's scheme header counts: HTTPS pages get HSTS; plain HTTP is redirected.
    assert server.request("GET", "/api/v1/licenses").status == 301
    login = server.request("GET", "/admin/login/", headers=HTTPS)
    assert login.status == 200
    assert "max-age=31536000" in login.headers["Strict-Transport-Security"]
    assert "script-src 'self'" in login.headers["Content-Security-Policy"]
    # Hashed static names from the manifest collected by the entrypoint.
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.body)
    assert css and server.request("GET", css.group(1).decode(), headers=HTTPS).status == 200


def test_metrics_logs_and_secrets_under_two_recycled_workers(server, tmp_path):
    raw_key = manage(
        server.env, "create_api_key", "--name", "deploy-test", "--scope", "admin", "--quiet"
    ).strip()
    auth = {**HTTPS, "X-API-Key": raw_key}
    customer = server.request(
        "POST", "/api/v1/customers", {"name": "Acme", "email": "it@acme.example"}, auth
    )
    assert customer.status == 201, customer.body
    issued = server.request(
        "POST",
        "/api/v1/licenses",
        {
            "customer_id": customer.json()["id"],
            "module_name": "biz4a_payroll_drc",
            "allowed_major_versions": ["17"],
            "license_type": "perpetual",
        },
        auth,
    )
    assert issued.status == 201, issued.body
    token = issued.json()["token"]

    def validate(module="biz4a_payroll_drc", tok=token):
        body = {"token": tok, "module_name": module, "odoo_version": "17.0"}
        return server.request("POST", "/api/v1/licenses/validate", body, HTTPS).json()["code"]

    codes = [validate(), validate(), validate(), validate("other_module")]
    codes += [validate("other_module"), validate(tok="not-a-token")]
    assert codes == ["VALID"] * 3 + ["MODULE_MISMATCH"] * 2 + ["MALFORMED"]

    scraped = server.request("GET", "/metrics")
    assert scraped.status == 200
    text = scraped.body.decode()
    assert metric(text, "aegis_validations_total", code="VALID") == 3
    assert metric(text, "aegis_validations_total", code="MODULE_MISMATCH") == 2
    assert metric(text, "aegis_validations_total", code="MALFORMED") == 1
    assert metric(text, "aegis_licenses_issued_total", license_type="perpetual") == 1
    assert metric(text, "aegis_signing_seconds_count") == 1
    assert "django_http_requests_latency_seconds_by_view_method_bucket" in text
    # 11 requests, workers recycled every 4: at least three processes wrote metrics.
    pids = {p.name.rsplit("_", 1)[1] for p in (tmp_path / "metrics").glob("counter_*.db")}
    assert len(pids) >= 3, pids

    server.stop()
    assert server.proc.returncode == 0, server.output()
    # Every log line is one JSON object: the application's and gunicorn's alike.
    records = [json.loads(line) for line in server.stderr if line.strip()]
    access = [json.loads(line) for line in server.stdout if line.startswith("{")]
    assert {r["event"] for r in access} == {"access"}
    finished = [r for r in records if r["event"] == "request_finished"]
    issue = next(r for r in finished if r["path"] == "/api/v1/licenses" and r["status"] == 201)
    assert issue["actor"] == "api_key:deploy-test" and issue["method"] == "POST"
    assert issue["request_id"] == issued.headers["X-Request-ID"]
    assert isinstance(issue["duration_ms"], float)
    assert {"timestamp", "level", "event", "logger"} <= set(issue)
    everything = "\n".join(server.stdout + server.stderr)
    for secret in (token, token.split(".")[2], raw_key, raw_key.partition(".")[2]):
        assert secret not in everything
