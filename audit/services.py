"""The one way to write an audit row.

Callers are services that already hold a transaction: the row is part of the same
transaction as the change it records, so a change whose audit row cannot be written does
not happen (CONTRACT §7).

State-change rows are appended to the hash chain (audit/chain.py) under a lock that
serialises chained inserts. Validation rows (the hot path) are not chained: their code is
decided by the statement that records them (`record_validations`, with the rules of
licensing/rules.py), one statement for a whole batch on PostgreSQL.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router, transaction
from django.utils import timezone

from aegis.core import context
from aegis.core.db import cast_type, prepared_cursor
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


# The columns of an unchained row, in INSERT order (chain_seq, prev_hash and hash stay NULL):
# what `audit_record`, `record_validations` and bulk loaders (aegis/demo_data.py) write.
UNCHAINED_COLUMNS = (
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


# --- Validation rows: each decided and recorded by one statement ------------------------------


@dataclass(frozen=True)
class Decision:
    """How the statement that records validation rows decides each row's code, in SQL.

    `inputs`: the caller's values per row, by name, each typed by a model field; with the
    row's own columns they form the relation `validation`. `joins`: what follows
    `FROM validation`. `code`: the expression of the row's code (written to
    `event_data.code`); `license_id`: of its license id (NULL: no such license)."""

    inputs: tuple[tuple[str, models.Field], ...]
    joins: str
    code: str
    license_id: str


def _given_columns() -> list[models.Field]:
    return [AuditLog._meta.get_field(name) for name in UNCHAINED_COLUMNS if name != "license_id"]


@functools.cache
def _validations_sql(alias: str, decision: Decision) -> str:
    """PostgreSQL: the rows arrive as one array per column (`unnest`), any number in one
    statement, their codes returned in order. Elsewhere: one row per statement. No value is
    written into the SQL: names come from the models, conditions from the caller's code."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    given = _given_columns()
    types = [cast_type(c, connection) for c in [*given, *(f for _, f in decision.inputs)]]
    names = ", ".join([c.column for c in given] + [name for name, _ in decision.inputs])
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        source = f"SELECT * FROM unnest({arrays}) WITH ORDINALITY"
        data = "jsonb_set(event_data, '{code}', to_jsonb(code))"
    else:
        source = f"SELECT {', '.join(['%s'] * len(types))}, 1"
        data = "json_set(event_data, '$.code', code)"
    decided = (
        f"validation ({names}, ord) AS ({source}), decided AS (SELECT validation.*, "
        f"{decision.code} AS code, {decision.license_id} AS decided_license_id "
        f"FROM validation {decision.joins})"
    )
    columns = ", ".join(quote(c.column) for c in [*given, AuditLog._meta.get_field("license_id")])
    values = ", ".join(data if c.attname == "event_data" else c.column for c in given)
    insert = (
        f"INSERT INTO {quote(AuditLog._meta.db_table)} ({columns}) "
        f"SELECT {values}, decided_license_id FROM decided ORDER BY ord"
    )
    if postgresql:
        return f"WITH {decided}, recorded AS ({insert}) SELECT code FROM decided ORDER BY ord"
    return f"WITH {decided} {insert} RETURNING json_extract(event_data, '$.code')"


def validation_row(
    decision: Decision, connection, inputs: Mapping[str, Any], **row: Any
) -> list[Any]:
    """One validation for `record_validations`: the row's fields (`audit_record`'s
    arguments, without `license_id`, with the request context of now) and the decision's
    inputs, prepared for `connection`."""
    fields = _row_fields(row)
    return [c.get_db_prep_save(fields[c.attname], connection) for c in _given_columns()] + [
        field.get_db_prep_value(inputs[name], connection) for name, field in decision.inputs
    ]


def record_validations(decision: Decision, rows: list[list[Any]]) -> list[str]:
    """Record validation rows (`validation_row`), each with the code `decision` gives it,
    and return the codes in order: on PostgreSQL one statement for all, elsewhere one each."""
    alias = router.db_for_write(AuditLog)
    sql = _validations_sql(alias, decision)
    with prepared_cursor(alias) as cursor:
        if connections[alias].vendor == "postgresql":
            cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
            return [code for (code,) in cursor.fetchall()]
        codes = []
        for row in rows:
            cursor.execute(sql, row)
            codes.append(cursor.fetchone()[0])
        return codes


async def arecord_validations(connection, alias: str, decision: Decision, rows) -> list[str]:
    """`record_validations` on an asynchronous psycopg `connection` to PostgreSQL."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    cursor = await connection.execute(_validations_sql(alias, decision), columns)
    return [code for (code,) in await cursor.fetchall()]


@functools.cache
def _unchained_sql(alias: str) -> str:
    """One prepared INSERT of an unchained row (the rows of the hot paths), its id returned."""
    quote = connections[alias].ops.quote_name
    columns = ", ".join(quote(AuditLog._meta.get_field(name).column) for name in UNCHAINED_COLUMNS)
    values = ", ".join(["%s"] * len(UNCHAINED_COLUMNS))
    return (
        f"INSERT INTO {quote(AuditLog._meta.db_table)} ({columns}) VALUES ({values}) "
        f"RETURNING {quote(AuditLog._meta.pk.column)}"
    )


def _append_unchained(fields: dict[str, Any]) -> AuditLog:
    """INSERT an unchained row without the ORM's query building: a heartbeat's row costs a
    tenth of `objects.create` (docs/performance.md)."""
    alias = router.db_for_write(AuditLog)
    connection = connections[alias]
    values = [
        AuditLog._meta.get_field(name).get_db_prep_save(fields[name], connection)
        for name in UNCHAINED_COLUMNS
    ]
    with prepared_cursor(alias) as cursor:
        cursor.execute(_unchained_sql(alias), values)
        (pk,) = cursor.fetchone()
    row = AuditLog(id=pk, **fields)
    row._state.adding, row._state.db = False, alias
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
    fields = _row_fields(row)
    if not chain.is_chained(event_type):
        return _append_unchained(fields)
    # savepoint=False: no extra round trips inside the service's transaction, and a
    # transaction of its own when called outside one (the lock must outlive the INSERT).
    with transaction.atomic(savepoint=False):
        chain.lock()
        seq, prev_hash = chain.head()
        seq += 1
        digest = chain.compute_hash(prev_hash=prev_hash, chain_seq=seq, **fields)
        return AuditLog.objects.create(chain_seq=seq, prev_hash=prev_hash, hash=digest, **fields)
