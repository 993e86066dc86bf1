"""The one way to write an audit row.

Callers are services that already hold a transaction: the row is part of the same
transaction as the change it records, so a change whose audit row cannot be written does
not happen (CONTRACT §7).

State-change rows are appended to the hash chain (audit/chain.py) under a lock that
serialises chained inserts; validation rows (the hot path) are a single plain INSERT,
written once rather than compiled by the ORM on every call.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from aegis import context
from aegis.db import prepared_cursor
from audit import chain
from audit.models import AuditLog

# Keys whose values never reach the audit trail, however a caller names them.
_SECRET_KEYS = frozenset(
    {"token", "key", "api_key", "raw_key", "password", "secret", "private_key", "passphrase"}
)
MASK = "***"


def mask_secrets(data: Any) -> Any:
    """A copy of `data` with the value of every secret-looking key replaced by a mask."""
    if isinstance(data, Mapping):
        return {
            k: (MASK if str(k).lower() in _SECRET_KEYS else mask_secrets(v))
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [mask_secrets(v) for v in data]
    return data


# The columns of an unchained row, in INSERT order (chain_seq, prev_hash and hash stay NULL).
_UNCHAINED_COLUMNS = (
    "event_type",
    "license_id",
    "customer_id",
    "module_name",
    "actor",
    "ip",
    "request_id",
    "event_data",
    "created_at",
)


@functools.cache
def unchained_columns(alias: str) -> tuple[list, str, str]:
    """(fields, quoted table, quoted column list) of an unchained row on a database alias."""
    quote = connections[alias].ops.quote_name
    fields = [AuditLog._meta.get_field(name) for name in _UNCHAINED_COLUMNS]
    return fields, quote(AuditLog._meta.db_table), ", ".join(quote(f.column) for f in fields)


@functools.cache
def _unchained_insert(alias: str) -> tuple[list, str, bool]:
    """(fields, SQL, returns id) of the unchained INSERT on a database alias, written once."""
    connection = connections[alias]
    fields, table, columns = unchained_columns(alias)
    returning = connection.features.can_return_columns_from_insert
    sql = "INSERT INTO {} ({}) VALUES ({}){}".format(  # noqa: S608 - names from the model
        table,
        columns,
        ", ".join(["%s"] * len(fields)),
        f" RETURNING {connection.ops.quote_name(AuditLog._meta.pk.column)}" if returning else "",
    )
    return fields, sql, returning


# What a row may be given: audit_record's keyword arguments.
_GIVEN = {"license_id": None, "customer_id": None, "module_name": None, "event_data": None}


def _row_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's fields: the given ones (`event_type`, `actor` and those of `_GIVEN`), the
    request context (client IP, request id), the masked data and the time — as the database
    will give them back (JSON-normalised data, microsecond UTC time), since the chain hash
    is computed over exactly these values."""
    unknown = set(row) - set(_GIVEN) - {"event_type", "actor"}
    if unknown:
        raise TypeError(f"unknown audit fields: {sorted(unknown)}")
    ctx = context.current()
    fields = _GIVEN | dict(row)
    fields.update(
        ip=ctx.ip,
        request_id=ctx.request_id,
        event_data=json.loads(json.dumps(mask_secrets(dict(fields["event_data"] or {})))),
        created_at=timezone.now(),
    )
    return fields


def unchained_values(alias: str, connection=None, **row: Any) -> tuple[dict[str, Any], list[Any]]:
    """The fields of an unchained row (`_row_fields`) and their database values in the
    order of `unchained_columns`: what `audit_record` inserts, for a statement that inserts
    the row together with other work (the validate path, licensing.validation). The values
    are prepared for `connection` (default: this thread's connection to `alias`)."""
    fields = _row_fields(row)
    connection = connection or connections[alias]
    columns = unchained_columns(alias)[0]
    return fields, [c.get_db_prep_save(fields[c.attname], connection) for c in columns]


def _insert_unchained(alias: str, fields: dict[str, Any], params: list[Any]) -> AuditLog:
    """One INSERT statement, as the ORM would send it, without compiling it each time: on
    the validate path the ORM's INSERT compiler cost more CPU than the row itself."""
    _columns, sql, returning = _unchained_insert(alias)
    with prepared_cursor(alias) as cursor:
        cursor.execute(sql, params)
        row_id = cursor.fetchone()[0] if returning else cursor.lastrowid
    row = AuditLog(id=row_id, **fields)
    row._state.adding = False
    row._state.db = alias
    return row


def audit_record(
    *,
    event_type: str,
    actor: str,
    license_id: uuid.UUID | str | None = None,
    customer_id: str | None = None,
    module_name: str | None = None,
    event_data: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Append one audit row. Call it inside the transaction of the change it records.

    The client IP and request id come from the current request context (empty for commands).
    A state-change row takes the chain lock until the caller's transaction ends, so callers
    write their audit row last (after their own row locks), as every service does.
    """
    row = {
        "event_type": event_type,
        "actor": actor,
        "license_id": license_id,
        "customer_id": customer_id,
        "module_name": module_name,
        "event_data": event_data,
    }
    if not chain.is_chained(event_type):
        alias = router.db_for_write(AuditLog)
        return _insert_unchained(alias, *unchained_values(alias, **row))
    fields = _row_fields(row)
    # savepoint=False: no extra round trips inside the service's transaction, and a
    # transaction of its own when called outside one (the lock must outlive the INSERT).
    with transaction.atomic(savepoint=False):
        chain.lock()
        seq, prev_hash = chain.head()
        seq += 1
        digest = chain.compute_hash(prev_hash=prev_hash, chain_seq=seq, **fields)
        return AuditLog.objects.create(chain_seq=seq, prev_hash=prev_hash, hash=digest, **fields)
