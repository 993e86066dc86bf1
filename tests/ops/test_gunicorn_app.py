"""`gunicorn` in the project root reads ./gunicorn.conf.py by itself, and the worker class
follows the application it is given: `gunicorn aegis.wsgi:application` (what Django's
deployment documentation teaches) runs gunicorn's gthread workers, `gunicorn` alone keeps
uvicorn workers serving `aegis.asgi:application`."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.servers import ROOT, Response, Server, base_env, free_port
from tests.ops.test_deploy import HTTPS, production_env

# The console script, as a deployment runs it (argv[0] "gunicorn", not "python -m").
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def hermetic(env: dict[str, str]) -> dict[str, str]:
    """No gunicorn setting from the shell running the tests: the config file decides."""
    return {k: v for k, v in env.items() if not k.startswith(("GUNICORN_", "WEB_"))}


def settings(tmp_path, *args: str, **env: str) -> dict[str, str]:
    """The settings gunicorn arrives at for `gunicorn ARGS` in the project root (no -c: it
    reads ./gunicorn.conf.py), as `--print-config` shows them after loading the app."""
    proc = subprocess.run(
        [GUNICORN, "--print-config", *args],
        cwd=ROOT,
        env=hermetic(base_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))) | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        name.strip(): value.strip()
        for name, _, value in (line.partition("=") for line in proc.stdout.splitlines())
    }


UVICORN = "aegis.uvicorn_worker.Worker"
ASGI, WSGI = "aegis.asgi:application", "aegis.wsgi:application"


@pytest.mark.parametrize(
    ("args", "env", "worker_class", "app"),
    [
        pytest.param((), {}, UVICORN, ASGI, id="no-app"),
        pytest.param((ASGI,), {}, UVICORN, ASGI, id="asgi-app"),
        pytest.param((WSGI,), {}, "gthread", WSGI, id="wsgi-app"),
        pytest.param(("aegis.wsgi",), {}, "gthread", "aegis.wsgi", id="wsgi-module"),
        # An explicit worker class wins over the application's, and the app follows it.
        pytest.param((WSGI,), {"GUNICORN_WORKER_CLASS": "sync"}, "sync", WSGI, id="env-sync"),
        pytest.param((), {"GUNICORN_WORKER_CLASS": "gthread"}, "gthread", WSGI, id="env-gthread"),
        pytest.param(("-k", "gthread"), {}, "gthread", WSGI, id="cli-k"),
        pytest.param((), {"GUNICORN_CMD_ARGS": "-k sync"}, "sync", WSGI, id="cmd-args-k"),
    ],
)
def test_the_worker_class_follows_the_app_given(tmp_path, args, env, worker_class, app):
    config = settings(tmp_path, *args, **env)
    assert config["worker_class"] == worker_class
    assert config["wsgi_app"] == app
    assert config["threads"] == "4"  # GUNICORN_THREADS' default, whichever worker class


def test_the_config_file_imported_elsewhere_ignores_the_process_arguments(tmp_path):
    """Only gunicorn's arguments are read as gunicorn's: a test importing the file keeps the
    defaults, whatever its own command line holds."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['pytest', '-k', 'sync', 'aegis.wsgi:application']\n"
        "config = runpy.run_path('gunicorn.conf.py')\n"
        "print(config['worker_class'], config['wsgi_app'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=hermetic(base_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [UVICORN, ASGI]


def get_health(server: Server, timeout: float = 60) -> Response:
    """GET /health, tried again while the server is alive and the deadline not passed (a
    worker may still be booting when the master listens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return server.request("GET", "/health", headers=HTTPS)
        except OSError as error:  # refused, reset: urllib's URLError is an OSError
            if not server.alive or time.monotonic() > deadline:
                raise AssertionError(
                    f"/health did not answer: {error}\n{server.output()}"
                ) from None
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=0.2)  # returns at once if the server exits


@pytest.mark.django_db  # for the database names; the server has its own
def test_gunicorn_with_the_wsgi_app_serves_health_from_gthread_workers(
    tmp_path, server_database, server_keys, static_root
):
    port = free_port()
    env = hermetic(production_env(tmp_path, server_database, server_keys, port, static_root))
    server = Server([GUNICORN, WSGI, "--bind", f"127.0.0.1:{port}"], env, port).start()
    try:
        response = get_health(server)
        assert response.status == 200, response.body
        assert response.json()["status"] == "healthy"
        assert any("Using worker: gthread" in line for line in server.stderr), server.output()
        assert server.alive, server.output()
    finally:
        server.stop()
