"""Connection health checks at most once per DB_HEALTH_CHECK_INTERVAL (aegis/postgresql).

A real server-side disconnect (`pg_terminate_backend`) between two requests shows what the
check does: with checks due, the dropped connection is replaced before the query; within
the interval it is not pinged, the query fails once, and the end of that request closes
it, so the request after it works again.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_the_backend_is_ours():
    assert connection.settings_dict["ENGINE"] == "aegis.postgresql"
    assert connection.health_check_enabled


def test_a_dropped_connection_is_replaced_when_a_check_is_due(settings):
    settings.DB_HEALTH_CHECK_INTERVAL = 0  # every request, as plain Django
    pid = _backend_pid()
    close_old_connections()  # a request ends and the next begins
    _terminate(pid)
    assert _backend_pid() != pid  # pinged, found dead, reconnected: the query worked


def test_within_the_interval_a_busy_connection_is_not_pinged(settings):
    settings.DB_HEALTH_CHECK_INTERVAL = 3600
    pid = _backend_pid()
    close_old_connections()
    _terminate(pid)
    with pytest.raises(OperationalError):
        _backend_pid()  # not pinged: the dead connection fails this one query
    close_old_connections()  # the end of that request closes it
    assert _backend_pid() != pid  # and the next request has a new connection
