"""PostgreSQL through psycopg 3: Django's backend, pinging a connection at most once per
`DB_HEALTH_CHECK_INTERVAL` seconds.

With `CONN_HEALTH_CHECKS`, Django pings a persistent connection (`SELECT 1`) before the
first query of every request, so that a connection the server dropped while it sat idle is
replaced instead of failing the request. On the validate path that ping was one of the two
round trips of a request. Here a connection that passed a check (or was opened) less than
`DB_HEALTH_CHECK_INTERVAL` seconds ago (default 1; 0 checks every request, as Django does)
is not pinged again: a busy connection is checked about once a second, an idle one before
its next use as before. A connection the server drops within that second fails one query;
Django closes it at the end of that request and the next request opens a new one.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base

_NEVER = float("-inf")


class DatabaseWrapper(base.DatabaseWrapper):
    _checked_at: float = _NEVER

    def connect(self):
        super().connect()
        self._checked_at = time.monotonic()  # a connection just opened needs no ping

    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        now = time.monotonic()
        if now - self._checked_at < settings.DB_HEALTH_CHECK_INTERVAL:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
        self._checked_at = now if self.connection is not None else _NEVER
