"""The tamper-evident hash chain over the audit trail.

Every state-change row (every event type but those of `UNCHAINED_EVENT_TYPES`) carries:

- `chain_seq`: 1, 2, 3, … — its place in the chain, unique and without gaps;
- `prev_hash`: the `hash` of the row with `chain_seq - 1` (`GENESIS` for the first row);
- `hash`: sha256 over the canonical JSON of `prev_hash`, `chain_seq` and the row's content
  (event type, license id, customer id, module, actor, IP, request id, event data, created at).

Changing, removing or re-ordering a chained row behind the application's back breaks the
chain at that row or the next one, and a state-change row inserted without a place in the
chain stands out; `verify()` (and `manage.py verify_audit_chain`) reports the first such row. What it does not catch: the deletion of the newest rows (the head simply moves back)
— hence `verify()` returns the head, which operators record outside the database — and a
rewrite of the whole chain by someone who holds the database and this code.

Validation rows are not chained: the validate endpoint writes one at thousands per second
and must stay a single INSERT without a global lock. Nor are the rows of an instance
checking in on its seat (a heartbeat, or an activation refused with its code: CONTRACT §9),
which come at the same pace; a seat taken or released is a state change, and chained.
Their integrity rests on the append-only trigger alone.

The canonical form below is frozen: changing it invalidates every existing chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections

GENESIS = "0" * 64
# Event types written on the hot paths (validate, an instance's check-in) and therefore left
# out of the chain.
UNCHAINED_EVENT_TYPES = frozenset(
    {"license.validated", "activation.heartbeat", "activation.refused"}
)
# pg_advisory_xact_lock key serialising chained inserts ("AEGISCHN" as a signed 64-bit int).
CHAIN_LOCK_KEY = int.from_bytes(b"AEGISCHN", "big", signed=True)


def is_chained(event_type: str) -> bool:
    return event_type not in UNCHAINED_EVENT_TYPES


def _ip_text(ip: str | None) -> str | None:
    # The database may render an address differently from how it was given (inet on
    # PostgreSQL); Python's rendering is the one both the writer and the verifier use.
    return None if ip in (None, "") else str(ipaddress.ip_address(ip))


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(
    *,
    prev_hash: str,
    chain_seq: int,
    event_type: str,
    license_id: uuid.UUID | str | None,
    customer_id: str | None,
    module_name: str | None,
    actor: str,
    ip: str | None,
    request_id: str,
    event_data: Any,
    created_at: dt.datetime,
) -> bytes:
    """The bytes a row's hash is computed over: sorted-key JSON, no whitespace, UTF-8."""
    document = {
        "prev_hash": prev_hash,
        "seq": chain_seq,
        "event_type": event_type,
        "license_id": None if license_id is None else str(uuid.UUID(str(license_id))),
        "customer_id": None if customer_id is None else str(customer_id),
        "module_name": None if module_name is None else str(module_name),
        "actor": actor,
        "ip": _ip_text(ip),
        "request_id": request_id or "",
        "event_data": event_data,
        "created_at": _timestamp(created_at),
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def compute_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical(**fields)).hexdigest()


def row_hash(row) -> str:
    """The hash `row` (an AuditLog) should carry, recomputed from its stored content."""
    return compute_hash(
        prev_hash=row.prev_hash,
        chain_seq=row.chain_seq,
        event_type=row.event_type,
        license_id=row.license_id,
        customer_id=row.customer_id,
        module_name=row.module_name,
        actor=row.actor,
        ip=row.ip,
        request_id=row.request_id,
        event_data=row.event_data,
        created_at=row.created_at,
    )


def lock(using: str = "default") -> None:
    """Serialise chained inserts until the current transaction ends.

    On PostgreSQL a transaction-level advisory lock; SQLite already serialises writers
    (a write transaction holds the database lock until it ends).
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def head(using: str = "default") -> tuple[int, str]:
    """(chain_seq, hash) of the newest chained row, or (0, GENESIS) for an empty chain."""
    from audit.models import AuditLog

    last = (
        AuditLog.objects.using(using)
        .filter(chain_seq__isnull=False)
        .order_by("-chain_seq")
        .values_list("chain_seq", "hash")
        .first()
    )
    return last if last else (0, GENESIS)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    broken_id: int | None = None
    reason: str = ""


def verify_rows(rows: Iterable) -> Verdict:
    """Walk chained rows in `chain_seq` order and stop at the first broken link."""
    expected_seq, prev = 1, GENESIS
    count = 0
    for row in rows:
        if row.chain_seq != expected_seq:
            reason = (
                f"chain_seq {row.chain_seq} where {expected_seq} was expected "
                f"(row {expected_seq} missing or renumbered)"
            )
            return Verdict(False, count, expected_seq - 1, prev, row.id, reason)
        if row.prev_hash != prev:
            reason = "prev_hash does not match the hash of the previous row"
            return Verdict(False, count, expected_seq - 1, prev, row.id, reason)
        try:
            recomputed = row_hash(row)
        except (TypeError, ValueError) as exc:
            return Verdict(False, count, expected_seq - 1, prev, row.id, f"unreadable ({exc})")
        if row.hash != recomputed:
            reason = "content does not match its hash (the row was altered)"
            return Verdict(False, count, expected_seq - 1, prev, row.id, reason)
        count += 1
        expected_seq, prev = expected_seq + 1, row.hash
    return Verdict(True, count, expected_seq - 1, prev)


def verify(using: str = "default", chunk_size: int = 2000) -> Verdict:
    """Verify the whole chain, streaming it from the database in `chain_seq` order."""
    from audit.models import AuditLog

    rows = (
        AuditLog.objects.using(using)
        .filter(chain_seq__isnull=False)
        .order_by("chain_seq")
        .iterator(chunk_size=chunk_size)
    )
    verdict = verify_rows(rows)
    if not verdict.ok:
        return verdict
    # INSERT is allowed on the table: a state-change row slipped in outside the chain is
    # as much a forgery as an altered one.
    stray = (
        AuditLog.objects.using(using)
        .filter(chain_seq__isnull=True)
        .exclude(event_type__in=UNCHAINED_EVENT_TYPES)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if stray is not None:
        reason = "a state-change row outside the chain (inserted behind the application's back)"
        return Verdict(False, verdict.count, verdict.head_seq, verdict.head_hash, stray, reason)
    return verdict
