"""The deployment files hold together: the scripts parse, the compose file, the image and
gunicorn's configuration say what the runbook says, and every command, option, file and
setting the runbook quotes exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from licensing.verification import Code

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "deployment-runbook.md"
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


def listed_in_env_example(name: str) -> bool:
    return re.search(rf"^(# )?{re.escape(name)}=", ENV_EXAMPLE, re.M) is not None


@pytest.mark.parametrize("script", ["deploy/deploy.sh", "deploy/entrypoint.sh", ".ci/run"])
def test_shell_scripts_parse_and_are_executable(script):
    path = ROOT / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compose_file_runs_the_api_with_postgres_15_and_redis():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.prod.yml").read_text())
    services = compose["services"]
    assert set(services) == {"api", "db", "redis"}
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis:")
    api = services["api"]
    assert api["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert api["env_file"] == "${AEGIS_ENV_FILE:-../.env}"
    assert api["environment"]["CACHE_URL"].startswith("redis://redis:")
    assert "@db:5432/" in api["environment"]["DATABASE_URL"]
    assert "keys:/app/keys" in api["volumes"]
    assert {d: c["condition"] for d, c in api["depends_on"].items()} == {
        "db": "service_healthy",
        "redis": "service_healthy",
    }
    text = (ROOT / "deploy/docker-compose.prod.yml").read_text()
    # AEGIS_ENV_FILE names the settings file itself (deploy.sh sets it).
    for name in set(re.findall(r"\$\{([A-Z_]+)", text)) - {"AEGIS_ENV_FILE"}:
        assert listed_in_env_example(name), f"{name} (compose) missing from .env.example"


def test_image_is_slim_non_root_with_healthcheck_and_entrypoint():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^USER aegis$", dockerfile, re.M)
    assert "--uid 10001" in dockerfile
    assert "manage.py collectstatic" in dockerfile and "ENVIRONMENT=production" in dockerfile
    assert re.search(
        r"^HEALTHCHECK .*\n\s+CMD \[\"python\", \"deploy/healthcheck.py\"\]", dockerfile, re.M
    )
    assert re.search(r'^ENTRYPOINT \["deploy/entrypoint.sh"\]$', dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "keys/*", ".venv", ".git"} <= set(ignored)


def gunicorn_config(**env) -> dict[str, str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--print-config",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("WEB_", "GUNICORN_"))}
        | {"PROMETHEUS_MULTIPROC_DIR": env.pop("metrics_dir")}
        | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return {
        name.strip(): value.strip()
        for name, _, value in (line.partition("=") for line in proc.stdout.splitlines())
    }


def test_gunicorn_settings_come_from_the_environment(tmp_path):
    default = gunicorn_config(metrics_dir=str(tmp_path / "a"))
    assert default["workers"] == str(os.cpu_count())  # one per CPU, measured (gunicorn.conf.py)
    assert default["worker_class"] == "aegis.uvicorn_worker.Worker"
    assert default["wsgi_app"] == "aegis.asgi:application" and default["preload_app"] == "True"
    assert default["logger_class"] == "aegis.gunicorn_logging.GunicornLogger"
    assert default["bind"] == "['0.0.0.0:8000']"
    tuned = gunicorn_config(
        metrics_dir=str(tmp_path / "b"),
        WEB_CONCURRENCY="3",
        GUNICORN_WORKER_CLASS="sync",
        GUNICORN_TIMEOUT="45",
        PORT="9001",
    )
    assert tuned["workers"] == "3" and tuned["worker_class"] == "sync"
    assert tuned["wsgi_app"] == "aegis.wsgi:application"  # gunicorn's own workers: WSGI
    assert tuned["timeout"] == "45" and tuned["bind"] == "['0.0.0.0:9001']"
    assert (tmp_path / "b").is_dir()


# --- the runbook -----------------------------------------------------------------------------


def runbook_commands() -> list[list[str]]:
    """Every `manage.py <command> [args]` in the runbook's code, as argument lists."""
    text = RUNBOOK.read_text()
    found = []
    for match in re.finditer(r"manage\.py ([a-z_]+)([^\n`\"|>]*)", text):
        args = shlex.split(match.group(2).split("#")[0].replace("...", ""))
        found.append([match.group(1), *args])
    return found


def test_runbook_commands_and_options_exist():
    commands = get_commands()
    quoted = runbook_commands()
    assert len(quoted) > 10
    for name, *args in quoted:
        assert name in commands, f"runbook quotes unknown command {name}"
        if name == "shell":
            continue
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        options = {s for action in parser._actions for s in action.option_strings}
        for arg in args:
            if arg.startswith("--"):
                assert arg.split("=")[0] in options, f"{name} has no option {arg}"


def test_runbook_files_and_settings_exist():
    text = RUNBOOK.read_text()
    for path in set(
        re.findall(
            r"`((?:deploy|docs|audit|aegis)/[\w./-]+|Dockerfile|gunicorn\.conf\.py|\.env\.example|\.ci/run)`",
            text,
        )
    ):
        assert (ROOT / path).exists(), f"runbook names missing file {path}"
    not_settings = {code.value for code in Code} | {
        "SECURE_PROXY_SSL_HEADER",  # a Django setting, set from ENVIRONMENT
        "AEGIS_HOSTNAME",  # an input of deploy/deploy.sh, documented there
        "HEALTHCHECK",  # the Dockerfile instruction
        "INFO",  # a LOG_LEVEL value
    }
    for name in set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text)) - not_settings:
        assert listed_in_env_example(name), f"runbook setting {name} missing from .env.example"
    assert "AEGIS_HOSTNAME" in (ROOT / "deploy/deploy.sh").read_text()
