"""License counts maintained by PostgreSQL, so the statistics do not read a million licenses.

Triggers on `licensing_license` (migration 0007) append, for every statement that inserts,
updates or deletes licenses, the change it made to the count of each key (module, type,
stored status, month of expiry in UTC) to `LicenseCountDelta`, in the writer's own
transaction: the counts commit or roll back with the licenses, and writers never wait on
one another (append only, no counter row to lock). `fold()` moves the deltas into
`LicenseCount`, one row per key; it runs before the statistics are read and from the
per-minute cron (`manage.py rollup_validations`). Readers add the deltas not folded yet, so
every answer is exact whatever the lag.

"Expired" moves with the clock, not with writes: whole months before the current one come
from the counts, and the current month from the licenses themselves, through
`license_expires_idx` — the part of the month already past, or, after mid-month, the
month's count less the part still to come, whichever reads fewer rows.

SQLite has no such triggers: there the statistics count the licenses themselves
(`licensing.selectors.license_counts`).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

# The conflict target is the key of the unique index of migration 0007.
FOLD_SQL = """
WITH moved AS (
    DELETE FROM licensing_licensecountdelta
    RETURNING module_name, license_type, status, expires_month, n
)
INSERT INTO licensing_licensecount AS c (module_name, license_type, status, expires_month, n)
SELECT module_name, license_type, status, expires_month, sum(n) FROM moved
GROUP BY module_name, license_type, status, expires_month
ORDER BY module_name, license_type, status, expires_month
ON CONFLICT (module_name, license_type, status, COALESCE(expires_month, 'infinity'::date))
DO UPDATE SET n = c.n + EXCLUDED.n
"""

_COUNTED = """
    SELECT module_name, license_type, status, n,
           CASE WHEN expires_month < %(month)s THEN n ELSE 0 END AS past
    FROM {table}
"""

_THIS_MONTH_SO_FAR = """
    SELECT module_name, license_type, status, 0, count(*)
    FROM licensing_license WHERE expires_at >= %(month_start)s AND expires_at <= %(now)s
    GROUP BY module_name, license_type, status
"""

_THIS_MONTH_ALL_BUT_TO_COME = """
    SELECT module_name, license_type, status, 0, n FROM {table} WHERE expires_month = %(month)s
"""

_THIS_MONTH_TO_COME = """
    SELECT module_name, license_type, status, 0, -count(*)
    FROM licensing_license WHERE expires_at > %(now)s AND expires_at < %(next_month)s
    GROUP BY module_name, license_type, status
"""

TABLES = ("licensing_licensecount", "licensing_licensecountdelta")


def fold() -> int:
    """Move the deltas into the folded counts; returns how many keys changed. Safe to run
    concurrently: each delta row is deleted, and so added, once."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FOLD_SQL)
        changed = cursor.rowcount
        if changed:
            cursor.execute("DELETE FROM licensing_licensecount WHERE n = 0")
    return changed


def month_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def rows(now: dt.datetime) -> list[tuple[str, str, str, int, int]]:
    """(module, type, status, licenses, of which expired at `now`) per key present."""
    month_start, next_month = month_bounds(now)
    parts = [_COUNTED.format(table=table) for table in TABLES]
    if now - month_start <= next_month - now:
        parts.append(_THIS_MONTH_SO_FAR)
    else:
        parts += [_THIS_MONTH_ALL_BUT_TO_COME.format(table=table) for table in TABLES]
        parts.append(_THIS_MONTH_TO_COME)
    sql = (
        "SELECT module_name, license_type, status, sum(n)::bigint, sum(past)::bigint FROM ("  # noqa: S608 - fixed parts
        + " UNION ALL ".join(parts)
        + ") AS parts (module_name, license_type, status, n, past)"
        " GROUP BY module_name, license_type, status"
    )
    params = {
        "month": month_start.date(),
        "month_start": month_start,
        "next_month": next_month,
        "now": now,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
