"""Production hardening: `check --deploy` is clean with production settings, every page
carries a Content-Security-Policy without inline-script exceptions, and the pages that
run scripts (admin, Swagger UI) need none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from licensing import signing

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "kq3V-8zNw_T1pL6yRr0sXe4uB7mJc2HdFg9aYo5iZt-QnWbKvU_lM"
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def production_env(keys_dir: Path, **extra) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEBUG", "API_SECRET", "ENVIRONMENT", "SECURE_", "ALLOWED_HOSTS"))
    }
    return env | {
        "ENVIRONMENT": "production",
        "API_SECRET_KEY": STRONG_SECRET,
        "ALLOWED_HOSTS": "license.example.com",
        "KEYS_DIR": str(keys_dir),
        "KEY_ID": "prod-01",
        **extra,
    }


def check_deploy(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    signing.write_keypair(tmp_path, "prod-01")
    proc = check_deploy(production_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout


def test_check_deploy_fails_when_hardening_is_turned_off(tmp_path):
    """The check is a real gate: switching a protection off makes it fail."""
    signing.write_keypair(tmp_path, "prod-01")
    proc = check_deploy(production_env(tmp_path, SECURE_HSTS_SECONDS="0"))
    assert proc.returncode != 0
    assert "security.W004" in proc.stdout + proc.stderr


def csp_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_scripts_allowed(response):
    """Every script is a same-origin file, a JSON data block, or carries the nonce."""
    policy = csp_of(response)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    nonces = {v[len("'nonce-") : -1] for v in policy["script-src"] if v.startswith("'nonce-")}
    html = response.content.decode()
    scripts = SCRIPT_TAG.findall(html)
    assert scripts, "the page runs no script: nothing was checked"
    for attributes, body in scripts:
        src = re.search(r'src="([^"]+)"', attributes)
        if src:
            assert src.group(1).startswith("/") and not src.group(1).startswith("//"), src
            assert not body.strip()
            continue
        if re.search(r'type="application/json"', attributes):
            continue
        nonce = re.search(r'nonce="([^"]+)"', attributes)
        assert nonce and nonce.group(1) in nonces, f"inline script without nonce: {body[:80]}"


@pytest.mark.django_db
def test_every_response_carries_the_policy():
    client = Client()
    for path in ("/health", "/admin/login/", "/api/v1/licenses", "/docs", "/redoc"):
        policy = csp_of(client.get(path))
        assert policy["default-src"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_swagger_ui_runs_no_inline_script():
    client = Client()
    page = client.get("/docs")
    assert page.status_code == 200
    assert_scripts_allowed(page)
    script = client.get("/docs?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


@pytest.mark.django_db
def test_admin_pages_run_no_inline_script():
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456!")
    client = Client()
    assert_scripts_allowed(client.get("/admin/login/"))
    client.force_login(user)
    for path in ("/admin/", "/admin/licensing/license/", "/admin/licensing/license/add/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_scripts_allowed(response)
