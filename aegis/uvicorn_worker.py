"""The gunicorn worker class of `gunicorn.conf.py`: uvicorn's, set for this server.

- uvloop and httptools (C event loop and HTTP parser);
- no proxy headers: the client address is the peer's, never a client-supplied
  X-Forwarded-For (as with gunicorn's own workers; HTTPS behind a proxy is Django's
  SECURE_PROXY_SSL_HEADER);
- no uvicorn access line: `aegis.asgi` writes one per request in the shape gunicorn's
  workers do (event "access", aegis/gunicorn_logging.py);
- the ASGI lifespan on: the validate path's connection pool is closed on shutdown;
- no `Server` header.
"""

from __future__ import annotations

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": False,
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
    }
