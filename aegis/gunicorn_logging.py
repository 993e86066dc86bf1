"""gunicorn's logger with the application's log format (`logger_class` in gunicorn.conf.py).

The master's and workers' lines, and one access line per request (`event: "access"`), come
out in the same shape as the application's (`LOG_FORMAT`, json by default here).
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger

from aegis.core.logging import formatter


class GunicornLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        fmt = formatter(os.environ.get("LOG_FORMAT", "json"))
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(fmt)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = {k.lower(): v for k, v in (resp.headers or [])}
        fields = {
            "remote_ip": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),  # never the query string
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "request_id": headers.get("x-request-id"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        self.access_log.info("access", extra=fields)
