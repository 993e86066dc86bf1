"""Database helpers for the hot path."""

from __future__ import annotations

import datetime as dt
import functools
import re

from django.db import connections
from django.db.backends.utils import CursorWrapper

_LENGTH = re.compile(r"\(\d+\)")


def cast_type(field, connection) -> str:
    """The database type of a model field for a cast of a bound value, without a length: a
    cast to varchar(n) would cut a longer value silently, where the INSERT refuses it."""
    return _LENGTH.sub("", field.db_type(connection))


def prepared_cursor(alias: str) -> CursorWrapper:
    """A Django cursor (health check, query logging, error wrapping as usual) whose
    statements PostgreSQL binds and, from the fifth run on a connection, keeps prepared:
    parsed and planned once per connection instead of on every call. Elsewhere, the usual
    cursor. For statements written once and run thousands of times, nothing else."""
    connection = connections[alias]
    cursor = connection.cursor()
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.base import ServerBindingCursor

        cursor.cursor.close()
        cursor.cursor = ServerBindingCursor(connection.connection)
    return cursor


def fast_timestamptz_loader(sender, connection, **kwargs) -> None:
    """`connection_created`: read `timestamptz` columns with psycopg's C loader.

    Django registers its own loader for them (`BaseTzLoader`, to put values in the
    connection's time zone); as a Python subclass of psycopg's loader it runs psycopg's
    pure-Python parser, a regular expression per value: a sizeable part of a license
    page's CPU, with seven instants a row (docs/performance.md). When the session's time
    zone is UTC, as Django sets it for `TIME_ZONE = "UTC"`, the C loader gives the same
    values with the same `tzinfo` (`datetime.timezone.utc`), so it takes the job back. Any
    other time zone: unchanged.
    """
    if connection.vendor != "postgresql" or connection.timezone is not dt.UTC:
        return
    raw = connection.connection
    if raw.info.parameter_status("TimeZone") != "UTC":
        return
    raw.adapters.register_loader(_TIMESTAMPTZ_OID, _utc_loader())


_TIMESTAMPTZ_OID = 1184


@functools.cache
def _utc_loader() -> type:
    import psycopg
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    # The implementation psycopg itself uses: its C loader where psycopg[binary] is
    # installed. It cannot be subclassed, so each instance lends its `load`; `timezone` is
    # what Django's cursor compares with its own before registering its loader again
    # (DatabaseWrapper.create_cursor).
    implementation = psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)

    class UTCTimestamptzLoader(Loader):
        timezone = dt.UTC

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            # Shadows the method below: the row loader calls the C method directly.
            self.load = implementation(oid, context).load

        def load(self, data):  # required by the abstract base; shadowed per instance
            return implementation(self.oid, self.connection).load(data)

    return UTCTimestamptzLoader
