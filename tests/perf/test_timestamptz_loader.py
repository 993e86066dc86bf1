"""`timestamptz` columns are read by psycopg's C loader when the session is in UTC
(aegis/core/db.py): the same values, the same tzinfo, as Django's own loader gives."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import BaseTzLoader

from aegis.core.db import _utc_loader
from customers.models import Customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TIMESTAMPTZ = 1184
SAMPLES = [
    b"2026-11-29 04:28:34.142631+00",
    b"2026-11-29 04:28:34+00",
    b"2024-02-29 23:59:59.999999+00",
    b"0001-01-01 00:00:00+00",
    b"9999-12-31 23:59:59.999999+00",
    b"1970-01-01 00:00:00.000001+00",
]


def _django_loader():
    class Utc(BaseTzLoader):
        timezone = dt.UTC

    return Utc(TIMESTAMPTZ, connection.connection)


def test_connections_use_the_utc_loader():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ, psycopg.pq.Format.TEXT)
    assert loader is _utc_loader()
    # Each instance lends the load method of psycopg's own implementation: the compiled
    # one where psycopg[binary] is installed, not the pure-Python parser Django's runs.
    lender = type(loader(TIMESTAMPTZ, connection.connection).load.__self__)
    assert lender is psycopg.adapters.get_loader(TIMESTAMPTZ, psycopg.pq.Format.TEXT)
    if psycopg.pq.__impl__ == "binary":
        assert lender.__module__.startswith("psycopg_binary")


@pytest.mark.parametrize("text", SAMPLES)
def test_same_value_and_tzinfo_as_djangos_loader(text):
    connection.ensure_connection()
    ours = _utc_loader()(TIMESTAMPTZ, connection.connection).load(text)
    theirs = _django_loader().load(text)
    assert ours == theirs
    assert ours.tzinfo is dt.UTC and theirs.tzinfo is dt.UTC
    assert ours.isoformat() == theirs.isoformat()


def test_instants_read_through_the_orm_are_exact_and_utc():
    written = dt.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    Customer.objects.create(id="TZ-1", name="TZ", email="tz@example.com")
    Customer.objects.filter(pk="TZ-1").update(created_at=written)
    read = Customer.objects.values_list("created_at", flat=True).get(pk="TZ-1")
    assert read == written
    assert read.tzinfo is dt.UTC
    assert read.hour == 12  # 07:08 at -05:00


def test_other_time_zone_keeps_djangos_loader():
    """A database configured with another TIME_ZONE reads values in that zone, as before."""
    wrapper = connections.create_connection("default")
    wrapper.settings_dict = {**wrapper.settings_dict, "TIME_ZONE": "Europe/Paris"}
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT '2026-07-01 10:00:00+00'::timestamptz")
            (value,) = cursor.fetchone()
        loader = wrapper.connection.adapters.get_loader(TIMESTAMPTZ, psycopg.pq.Format.TEXT)
        assert loader is not _utc_loader()
        assert str(value.tzinfo) == "Europe/Paris"
        assert value.hour == 12
    finally:
        wrapper.close()
