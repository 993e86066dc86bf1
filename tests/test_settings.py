"""Production settings refuse to start insecurely, and say which setting is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from licensing import signing

ROOT = Path(__file__).resolve().parents[1]
STRONG_SECRET = "s" * 64


def django_check(tmp_path, **env_vars) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEBUG", "API_SECRET", "ENVIRONMENT"))
    }
    env |= {"KEYS_DIR": str(tmp_path), "KEY_ID": "prod"} | env_vars
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env_vars", "message"),
    [
        ({"DEBUG": "true", "API_SECRET_KEY": STRONG_SECRET}, "DEBUG must be false"),
        ({}, "API_SECRET_KEY"),
        ({"API_SECRET_KEY": "short"}, "API_SECRET_KEY"),
        ({"API_SECRET_KEY": STRONG_SECRET, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
        ({"API_SECRET_KEY": STRONG_SECRET}, "signing key not found"),
    ],
)
def test_production_refuses_insecure_settings(tmp_path, env_vars, message):
    env_vars = {"ENVIRONMENT": "production", "ALLOWED_HOSTS": "license.example.com"} | env_vars
    proc = django_check(tmp_path, **env_vars)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_production_refuses_a_world_readable_private_key(tmp_path):
    private, _ = signing.write_keypair(tmp_path, "prod")
    private.chmod(0o644)
    proc = django_check(
        tmp_path, ENVIRONMENT="production", API_SECRET_KEY=STRONG_SECRET, ALLOWED_HOSTS="x.example"
    )
    assert proc.returncode != 0 and "chmod 600" in proc.stderr
    private.chmod(0o600)
    proc = django_check(
        tmp_path, ENVIRONMENT="production", API_SECRET_KEY=STRONG_SECRET, ALLOWED_HOSTS="x.example"
    )
    assert proc.returncode == 0, proc.stderr


def test_production_server_process_refuses_to_start_without_a_signing_key(tmp_path):
    """What gunicorn loads (aegis.wsgi) refuses to come up; `migrate` still runs before keys exist."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "API_SECRET"))}
    env |= {
        "ENVIRONMENT": "production",
        "API_SECRET_KEY": STRONG_SECRET,
        "ALLOWED_HOSTS": "x.example",
        "KEYS_DIR": str(tmp_path),
        "KEY_ID": "prod",
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import aegis.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Refusing to start with ENVIRONMENT=production: signing key not found" in proc.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REVOCATION_LIST_TTL_HOURS", "0"),
        ("REVOCATION_LIST_TTL_HOURS", "-1"),
        ("VALIDATE_DB_POOL_SIZE", "0"),
        ("VALIDATE_DB_POOL_TIMEOUT", "0"),
    ],
)
def test_numbers_that_break_a_feature_are_refused_in_any_environment(tmp_path, name, value):
    proc = django_check(tmp_path, **{name: value})
    assert proc.returncode != 0
    assert f"{name} must be at least" in proc.stderr
