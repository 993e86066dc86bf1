"""gunicorn settings for AEGIS License Server: `gunicorn` run in the project root reads this
file by itself (as does `gunicorn -c gunicorn.conf.py`).

The worker class follows the application given on the command line, and without one the
application follows the worker class:

  gunicorn                          uvicorn workers serving aegis.asgi:application (default)
  gunicorn aegis.asgi:application   the same
  gunicorn aegis.wsgi:application   gunicorn's gthread workers, GUNICORN_THREADS threads each
                                    (so for any `*.wsgi:*` application given)
  gunicorn -k gthread               gthread workers serving aegis.wsgi:application (so for
                                    -k sync, and GUNICORN_WORKER_CLASS gthread or sync)

A worker class given explicitly (GUNICORN_WORKER_CLASS, or -k, which gunicorn applies over
this file) wins over the application's.

Every value comes from the environment, with a production default:

  PORT / GUNICORN_BIND      listen address (default 0.0.0.0:$PORT, PORT 8000)
  WEB_CONCURRENCY           worker processes (default: one per CPU)
  GUNICORN_WORKER_CLASS     aegis.uvicorn_worker.Worker (default; gthread for a `*.wsgi:*`
                            application on the command line), gthread or sync
  GUNICORN_THREADS          threads per worker for Django's requests (default 4), in either
                            worker class
  GUNICORN_TIMEOUT          seconds before a silent worker is restarted (default 30)
  GUNICORN_GRACEFUL_TIMEOUT seconds to finish requests on restart (default 30)
  GUNICORN_KEEPALIVE        seconds to keep an idle connection (default 5)
  GUNICORN_MAX_REQUESTS     recycle a worker after this many requests (default 100000, 0: never)
  GUNICORN_ACCESS_LOG       "-" (default: stdout) or a file; empty: no access log
  GUNICORN_WORKER_TMP_DIR   where workers touch their heartbeat file (default /dev/shm, a
                            memory file system, when it exists)
  GUNICORN_PROXY_PROTOCOL   off (default) | v1 | v2 | auto: take the client address from
                            the load balancer's PROXY protocol header (gthread and sync
                            workers only)
  FORWARDED_ALLOW_IPS       proxies trusted for X-Forwarded-Proto (default 127.0.0.1)
  PROMETHEUS_MULTIPROC_DIR  where workers keep their metrics (default: a fresh temp dir)

Logs use the application's format (LOG_FORMAT, json by default): see aegis/gunicorn_logging.py.
"""

import argparse
import gc
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _command_line() -> argparse.Namespace | None:
    """What the `gunicorn` command was given: the application argument (`args`) and options
    (`worker_class`, ...), read with gunicorn's own parser from its command line and from
    GUNICORN_CMD_ARGS (options only: gunicorn ignores an application there).

    gunicorn parses its command line before it reads this file, and reads it as the module
    `__config__`; imported any other way (a test), the process's arguments are not
    gunicorn's, and this is None: the defaults below apply.
    """
    if __name__ != "__config__":
        return None
    from gunicorn.config import Config

    config = Config()
    parser = config.parser()
    given, _ = parser.parse_known_args(sys.argv[1:])
    from_env, _ = parser.parse_known_args(config.get_cmd_args_from_env())
    given.worker_class = given.worker_class or from_env.worker_class
    return given


def _is_wsgi_app(uri: str | None) -> bool:
    """`aegis.wsgi:application`, `aegis.wsgi`, any `<package>.wsgi:<name>`."""
    module = (uri or "").partition(":")[0]
    return module == "wsgi" or module.endswith(".wsgi")


def _is_wsgi_worker(worker: str) -> bool:
    return worker in ("sync", "gthread", "gunicorn.workers.sync.SyncWorker") or worker.startswith(
        "gunicorn.workers.gthread"
    )


_given = _command_line()
_given_app = _given.args[0] if _given and _given.args else None

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_env_int('PORT', 8000)}"
# One worker per CPU, each an event loop (uvloop, httptools) that answers validations itself
# and runs the rest of Django in threads: more validations per second and less CPU per
# validation than gthread workers (measured, see docs/performance.md); sync workers cannot
# keep a connection alive.
workers = _env_int("WEB_CONCURRENCY", multiprocessing.cpu_count())
# A WSGI application given on the command line (`gunicorn aegis.wsgi:application`, as
# Django's deployment documentation has it) cannot run in a uvicorn worker: gthread then.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or (
    "gthread" if _is_wsgi_app(_given_app) else "aegis.uvicorn_worker.Worker"
)
threads = _env_int("GUNICORN_THREADS", 4)
# Only a default: an application on the command line wins over it (it is named here so that
# `--print-config` shows the application served). Without one, the application follows the
# worker class, including one given with -k.
wsgi_app = _given_app or (
    "aegis.wsgi:application"
    if _is_wsgi_worker((_given and _given.worker_class) or worker_class)
    else "aegis.asgi:application"
)
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# A bound on slow leaks, not a routine: at validation rates a low bound recycled every worker
# every few seconds (measured, see docs/performance.md), and each recycle reconnects to
# PostgreSQL and empties the verified-token cache.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 100_000)
max_requests_jitter = max_requests // 10
# Django is loaded once in the master and forked: faster starts, and a broken configuration
# (ENVIRONMENT=production refusing an insecure setting) stops the master at once.
preload_app = True

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "aegis.gunicorn_logging.GunicornLogger"
os.environ.setdefault("LOG_FORMAT", "json")

proxy_protocol = os.environ.get("GUNICORN_PROXY_PROTOCOL", "off")
proxy_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The control socket is not used; it would need a writable $HOME.
control_socket_disable = True
# Workers prove they are alive by touching a file on every turn of their loop; on a
# disk-backed /tmp each touch is a journaled metadata write that stalled the loop (measured,
# see docs/performance.md).
_SHM = "/dev/shm"  # noqa: S108 - gunicorn creates its file there with mkstemp
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or (
    _SHM if os.path.isdir(_SHM) else None
)

# --- Prometheus multiprocess mode -------------------------------------------------------------
# Each worker writes its metric values to files in this directory and /metrics adds them up.
# It is set and emptied here, when gunicorn reads this file: before the preloaded app imports
# prometheus_client, and so that counters never carry over from a previous run.
_metrics_dir = Path(
    os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="aegis-metrics-")
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
if _metrics_dir.exists():
    for _entry in _metrics_dir.iterdir():
        if _entry.is_dir():
            shutil.rmtree(_entry)
        else:
            _entry.unlink()
_metrics_dir.mkdir(parents=True, exist_ok=True)


def pre_fork(server, worker):
    # A full garbage collection in a worker walked every object Django had loaded before the
    # fork, and caused the tail of single-client list latency (measured, see
    # docs/performance.md). Objects created before the fork are moved out of the collector's
    # reach, as CPython's documentation advises for pre-forking servers (gc.freeze); the
    # worker's own garbage is collected as before.
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
