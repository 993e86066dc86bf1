"""gunicorn settings for AEGIS License Server (`gunicorn -c gunicorn.conf.py`).

The application follows the worker class: `aegis.asgi:application` for the default
uvicorn workers, `aegis.wsgi:application` for gunicorn's own (gthread, sync).

Every value comes from the environment, with a production default:

  PORT / GUNICORN_BIND      listen address (default 0.0.0.0:$PORT, PORT 8000)
  WEB_CONCURRENCY           worker processes (default: one per CPU)
  GUNICORN_WORKER_CLASS     aegis.uvicorn_worker.Worker (default), gthread or sync
  GUNICORN_THREADS          threads per worker for Django's requests (default 4)
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

import gc
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_env_int('PORT', 8000)}"
# One worker per CPU, each an event loop (uvloop, httptools) that answers validations itself
# and runs the rest of Django in 4 threads. Measured on 2 cores under `make bench`: 2,058 -
# 2,488 validations/s against 1,335 - 1,556 for gthread workers with the same fast path
# (README, Performance); with gthread, CPU per validation grew with every worker past the
# core count, and sync workers cannot keep a connection alive.
workers = _env_int("WEB_CONCURRENCY", multiprocessing.cpu_count())
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "aegis.uvicorn_worker.Worker"
threads = _env_int("GUNICORN_THREADS", 4)
_WSGI_WORKERS = ("sync", "gthread", "gunicorn.workers.sync.SyncWorker")
wsgi_app = (
    "aegis.wsgi:application"
    if worker_class in _WSGI_WORKERS or worker_class.startswith("gunicorn.workers.gthread")
    else "aegis.asgi:application"
)
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# A bound on slow leaks, not a routine: at validate rates 2000 recycled every worker every few
# seconds, and each recycle reconnects to PostgreSQL and empties the verified-token cache.
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
# disk-backed /tmp each touch is a journaled metadata write that stalled the loop ~80 µs.
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
    # fork: 70-100 ms each, measured, the tail of single-client list latency (p99 44-68 ms
    # for a page that takes 6-10 ms). Objects created before the fork are moved out of the
    # collector's reach, as CPython's documentation advises for pre-forking servers
    # (gc.freeze); the worker's own garbage is collected as before: p99 14-19 ms.
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
