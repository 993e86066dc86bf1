"""Online validation of a license token (CONTRACT §2) — the server's hot path.

The order of the checks is the contract's, and the first failure sets the code:

1. `signing.verifier().verify_token()`: MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER,
   EXPIRED — pure computation with the process's cached keys, no database;
2. one query for the license and its customer: UNKNOWN_LICENSE, REVOKED, SUSPENDED;
3. `verifier.check_usage()`: MODULE_MISMATCH, VERSION_NOT_ALLOWED, FINGERPRINT_REQUIRED,
   FINGERPRINT_MISMATCH, else VALID.

Every call appends exactly one `license.validated` audit row (the statistics count codes
from these rows). On PostgreSQL a verified token costs one statement — the lookup, the
decision of step 2 and the audit row together (`_decide_and_record_sql`): one round trip
and one commit instead of two of each, which halved the client CPU and cut PostgreSQL's by
a fifth (measured). A token that fails before the lookup costs the audit INSERT alone;
other databases run the lookup and the INSERT one after the other. The SQL is written
once: compiling the equivalent ORM query cost more CPU than PostgreSQL spends answering it.
On the event loop (licensing/validate_asgi.py) the validations waiting at the same time
share one such statement (`_batch_sql`: arrays in, a code per validation out, in order):
one round trip and one commit for all of them.

Fast path. An Ed25519 verification is the most expensive step after the database, and a
deployed client presents the same token again and again, so the outcome of step 1 is kept
in a bounded per-process LRU (`VALIDATION_CACHE_SIZE` tokens, 0 turns it off):

- keyed by the exact token string — never by `jti` — so a token differing by one byte
  (tampered header, payload or signature) misses and is verified in full;
- only tokens whose signature and issuer verified are kept (VALID or EXPIRED), together
  with the verifier that checked them; a change of keys (rotation, a key compromised),
  issuer or leeway makes a new verifier, and entries of the old one never answer again;
- `exp` is compared with the clock on every call, hit or miss, so a cached token expires
  on time;
- step 2 (the license row: revoked? customer suspended?) is read on every call: a
  revocation answers REVOKED on the very next request, cache or not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import connections, router

from aegis import metrics
from aegis.db import prepared_cursor
from audit import services as audit_services
from audit.models import AuditLog
from audit.services import audit_record
from customers.models import Customer
from licensing import signing
from licensing.models import License, LicenseStatus
from licensing.verification import MESSAGES, Code, Result, Verifier, compute_fingerprint

EVENT_TYPE = "license.validated"


@dataclass(frozen=True)
class ValidationOutcome:
    """The answer of a validation. The license fields come from the token's claims and are
    set whenever its signature verified (even when it is expired or revoked)."""

    code: Code
    license_id: str | None = None
    license_type: str | None = None
    customer_id: str | None = None
    customer_name: str | None = None
    module_name: str | None = None
    expires_at: dt.datetime | None = None

    @property
    def valid(self) -> bool:
        return self.code is Code.VALID

    @property
    def error(self) -> str | None:
        return MESSAGES[self.code]

    @classmethod
    def from_claims(cls, code: Code, claims: Mapping[str, Any] | None) -> ValidationOutcome:
        if claims is None:
            return cls(code)
        return cls(
            code=code,
            license_id=claims["jti"],
            license_type=claims["license_type"],
            customer_id=claims["customer"]["id"],
            customer_name=claims["customer"]["name"],
            module_name=claims["module"]["technical_name"],
            expires_at=_instant(claims.get("exp")),
        )


def _instant(exp: int | None) -> dt.datetime | None:
    # An `exp` beyond the calendar (only a foreign signer could produce one) reads as none.
    if exp is None:
        return None
    try:
        return dt.datetime.fromtimestamp(exp, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


class VerifiedTokens:
    """A thread-safe LRU of tokens whose signature and issuer verified: exact token string →
    (verifier, claims, header). At most `maxsize` entries (0: nothing is kept)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[str, tuple[Verifier, Mapping[str, Any], Mapping[str, Any]]]
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: str) -> bool:
        return token in self._entries

    def get(
        self, token: str, verifier: Verifier
    ) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
        """(claims, header) when `verifier` itself verified `token`, else None."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or entry[0] is not verifier:
                self.misses += 1
                return None
            self._entries.move_to_end(token)
            self.hits += 1
        return entry[1], entry[2]

    def put(
        self, token: str, verifier: Verifier, claims: Mapping[str, Any], header: Mapping[str, Any]
    ) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._entries[token] = (verifier, claims, header)
            self._entries.move_to_end(token)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_tokens = VerifiedTokens(settings.VALIDATION_CACHE_SIZE)

# (key ring, identity, verifier): the verifier is rebuilt only when what it checks changes.
_verifier_memo: tuple[object, tuple, Verifier] | None = None


def _identity(ring: signing.KeyRing) -> tuple:
    """What a verification outcome depends on: the keys (by their bytes), issuer, leeway."""
    keys = tuple(
        sorted(
            (kid, key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
            for kid, key in ring.public_keys.items()
        )
    )
    return keys, settings.LICENSE_ISSUER, settings.VALIDATION_LEEWAY_SECONDS


def current_verifier() -> Verifier:
    """The verifier of this process, the same object for as long as the keys, the issuer
    and the leeway stay the same (the cache recognises its entries by it)."""
    global _verifier_memo
    ring = signing.keyring()
    memo = _verifier_memo
    if (
        memo is not None
        and memo[0] is ring
        and memo[1][1:] == (settings.LICENSE_ISSUER, settings.VALIDATION_LEEWAY_SECONDS)
    ):
        return memo[2]
    identity = _identity(ring)
    if memo is not None and memo[1] == identity:
        verifier = memo[2]  # the same keys reloaded: the entries stay good
    else:
        verifier = ring.verifier()
        verified_tokens.clear()  # entries of the old verifier can never answer again
    _verifier_memo = (ring, identity, verifier)
    return verifier


def verify_token(verifier: Verifier, token: str) -> Result:
    """`verifier.verify_token(token)`, answered from the cache when this verifier already
    verified this exact token; expiry is always decided against the clock, now."""
    cached = verified_tokens.get(token, verifier)
    if cached is not None:
        claims, header = cached
        # The same rule as Verifier.verify_token (leeway, "on or after" exp).
        expired = "exp" in claims and verifier._expired(claims["exp"])
        return Result(Code.EXPIRED if expired else Code.VALID, claims, header)
    result = verifier.verify_token(token)
    if result.code in (Code.VALID, Code.EXPIRED):
        verified_tokens.put(token, verifier, result.claims, result.header)
    return result


@functools.cache
def _state_sql() -> str:
    """The license-and-customer lookup, written once: the ORM would compile the same SQL
    on every call, which costs more than the query itself."""
    license_table = License._meta.db_table
    customer_table = Customer._meta.db_table
    # Table names come from the models, the license id is a bound parameter.
    return (
        f'SELECT l."status", c."is_active" FROM "{license_table}" l '  # noqa: S608
        f'INNER JOIN "{customer_table}" c ON c."id" = l."customer_id" WHERE l."id" = %s'
    )


@functools.cache
def _decide_and_record_sql(alias: str) -> str:
    """PostgreSQL: the lookup of `_state_sql`, the decision of `_server_state` and the
    audit row of `audit_record`, in one statement (one round trip, one commit).

    Parameters: the license id; the codes UNKNOWN_LICENSE, REVOKED, SUSPENDED and the
    usage code (what stands when the license may be used); the revoked status; then the
    audit row's values in `unchained_columns` order. The row's license id is kept only when
    the license exists, and its `event_data.code` is the code decided here.
    """
    fields, table, columns = audit_services.unchained_columns(alias)
    values = []
    for field in fields:
        if field.attname == "license_id":
            values.append('CASE WHEN d."known" THEN %s END')
        elif field.attname == "event_data":
            values.append("jsonb_set(%s, '{code}', to_jsonb(d.\"code\"))")
        else:
            values.append("%s")
    return (
        f"WITH found AS ({_state_sql()}), "  # noqa: S608 - names from the models
        'decided AS (SELECT CASE WHEN f."status" IS NULL THEN %s::text '
        'WHEN f."status" = %s THEN %s::text WHEN NOT f."is_active" THEN %s::text '
        'ELSE %s::text END AS "code", f."status" IS NOT NULL AS "known" '
        "FROM (VALUES (1)) AS one (n) LEFT JOIN found f ON TRUE) "
        f"INSERT INTO {table} ({columns}) SELECT {', '.join(values)} FROM decided d "
        "RETURNING event_data ->> 'code'"
    )


def _server_state(license_id: Any, alias: str) -> Code | None:
    """UNKNOWN_LICENSE, REVOKED or SUSPENDED from one query, or None when the license may be used."""
    with prepared_cursor(alias) as cursor:
        cursor.execute(_state_sql(), [license_id])
        row = cursor.fetchone()
    if row is None:
        return Code.UNKNOWN_LICENSE
    status, customer_active = row
    if status == LicenseStatus.REVOKED:
        return Code.REVOKED
    if not customer_active:
        return Code.SUSPENDED
    return None


@functools.cache
def _record_sql(alias: str) -> str:
    """PostgreSQL: the audit row of a token that failed before the lookup."""
    fields, table, columns = audit_services.unchained_columns(alias)
    placeholders = ", ".join(["%s"] * len(fields))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608 - model names
        "RETURNING event_data ->> 'code'"
    )


def _statement(alias: str, pending: _Pending, connection=None) -> tuple[str, list[Any]]:
    """PostgreSQL: the one statement that finishes `pending` (returning its code), its
    values prepared for `connection` (default: this thread's connection to `alias`)."""
    connection = connection or connections[alias]
    if pending.usage is None:
        # The signature failed: nothing to look up, the audit row alone.
        _fields, values = audit_services.unchained_values(alias, connection, **pending.row)
        return _record_sql(alias), values
    license_id = License._meta.pk.get_db_prep_value(uuid.UUID(pending.jti), connection)
    _fields, values = audit_services.unchained_values(
        alias, connection, license_id=license_id, **pending.row
    )
    decision = [
        Code.UNKNOWN_LICENSE.value,
        LicenseStatus.REVOKED.value,
        Code.REVOKED.value,
        Code.SUSPENDED.value,
        pending.usage.value,
    ]
    return _decide_and_record_sql(alias), [license_id, *decision, *values]


_LENGTH = re.compile(r"\(\d+\)")


@functools.cache
def _batch_sql(alias: str) -> str:
    """PostgreSQL: `_decide_and_record_sql` and `_record_sql` for many validations in one
    statement (one round trip, one commit): one array per input column, a row per
    validation. Parameters: the license ids (NULL where the signature failed: nothing to
    look up, the code given stands), the codes that stand when the license may be used,
    then one array per audit column in `unchained_columns` order. Returns the code of each
    validation, in the order given."""
    connection = connections[alias]
    fields, table, columns = audit_services.unchained_columns(alias)
    license_table = connection.ops.quote_name(License._meta.db_table)
    customer_table = connection.ops.quote_name(Customer._meta.db_table)
    arrays = ["%s::uuid[]", "%s::text[]"]
    names = ["lookup", "usage"]
    values = []
    for i, field in enumerate(fields):
        # No length in the cast: an explicit cast to varchar(n) would cut a longer value
        # silently, where the INSERT refuses it as the single statement does.
        arrays.append(f"%s::{_LENGTH.sub('', field.db_type(connection))}[]")
        names.append(f"c{i}")
        if field.attname == "license_id":
            values.append("CASE WHEN d.known THEN d.lookup END")
        elif field.attname == "event_data":
            values.append(f"jsonb_set(d.c{i}, '{{code}}', to_jsonb(d.code))")
        else:
            values.append(f"d.c{i}")
    return (
        f"WITH input AS (SELECT * FROM unnest({', '.join(arrays)}) WITH ORDINALITY "  # noqa: S608 - names from the models
        f"AS i ({', '.join(names)}, ord)), "
        "decided AS (SELECT i.*, CASE WHEN i.lookup IS NULL THEN i.usage "
        f"WHEN l.status IS NULL THEN '{Code.UNKNOWN_LICENSE.value}' "
        f"WHEN l.status = '{LicenseStatus.REVOKED.value}' THEN '{Code.REVOKED.value}' "
        f"WHEN NOT c.is_active THEN '{Code.SUSPENDED.value}' ELSE i.usage END AS code, "
        "l.status IS NOT NULL AS known "
        f"FROM input i LEFT JOIN {license_table} l ON l.id = i.lookup "
        f"LEFT JOIN {customer_table} c ON c.id = l.customer_id), "
        f"recorded AS (INSERT INTO {table} ({columns}) "
        f"SELECT {', '.join(values)} FROM decided d ORDER BY d.ord) "
        "SELECT code FROM decided ORDER BY ord"
    )


def batch_row(pending: _Pending, alias: str, connection) -> list[Any]:
    """The values of one validation for `_batch_sql`, prepared for `connection`."""
    if pending.usage is None:
        _fields, values = audit_services.unchained_values(alias, connection, **pending.row)
        return [None, pending.outcome.code.value, *values]
    license_id = License._meta.pk.get_db_prep_value(uuid.UUID(pending.jti), connection)
    _fields, values = audit_services.unchained_values(
        alias, connection, license_id=license_id, **pending.row
    )
    return [license_id, pending.usage.value, *values]


async def decide_and_record_batch(connection, alias: str, rows: list[list[Any]]) -> list[Code]:
    """Finish the validations of `rows` (`batch_row`) in one statement on an asynchronous
    psycopg `connection` (autocommit): their codes, in order."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    cursor = await connection.execute(_batch_sql(alias), columns)
    return [Code(code) for (code,) in await cursor.fetchall()]


def _decide_and_record(pending: _Pending) -> Code:
    """The code of a token whose signature verified: the license row decides
    UNKNOWN_LICENSE, REVOKED or SUSPENDED, else the usage code (decided from the claims)
    stands. Records the audit row with that code, and with the license id when it exists."""
    # Always the primary (a POST never reads the replica): a revocation is seen at once.
    alias = router.db_for_write(License)
    connection = connections[alias]
    if connection.vendor == "postgresql" and router.db_for_write(AuditLog) == alias:
        sql, params = _statement(alias, pending, connection)
        with prepared_cursor(alias) as cursor:
            cursor.execute(sql, params)
            return Code(cursor.fetchone()[0])
    license_id = License._meta.pk.get_db_prep_value(uuid.UUID(pending.jti), connection)
    code = _server_state(license_id, alias) or pending.usage
    row = pending.row
    audit_record(
        **row | {"event_data": row["event_data"] | {"code": code.value}},
        license_id=license_id if code is not Code.UNKNOWN_LICENSE else None,
    )
    return code


@dataclass(frozen=True)
class _Pending:
    """A validation decided as far as the token alone allows: what is left is the license
    row (when the signature verified) and the audit row."""

    outcome: ValidationOutcome
    row: dict[str, Any]  # the audit row, for audit_record / unchained_values
    usage: Code | None = None  # the code when the license row allows use; None: decided
    jti: str | None = None


def _begin(
    *,
    token: str,
    module_name: str,
    odoo_version: str,
    fingerprint: str | None = None,
    instance_db_uuid: str | None = None,
    instance_domain: str | None = None,
    actor: str = "public",
) -> _Pending:
    presented = fingerprint or None
    if presented is None and instance_db_uuid and instance_domain:
        presented = compute_fingerprint(instance_db_uuid, instance_domain)
    verifier = current_verifier()
    result: Result = verify_token(verifier, token)
    outcome = ValidationOutcome.from_claims(result.code, result.claims)
    row = {
        "event_type": EVENT_TYPE,
        "actor": actor,
        # Clipped to the columns: a token from an imported older key may carry longer values.
        "customer_id": outcome.customer_id[:50] if outcome.customer_id else None,
        "module_name": (outcome.module_name or module_name)[:128],
        "event_data": {
            "code": outcome.code.value,
            "fingerprint": presented,
            "odoo_version": odoo_version,
        },
    }
    if not result.valid:
        return _Pending(outcome, row)
    # The usage checks need the claims only; the license row, read next, takes precedence
    # over them (the contract's order: UNKNOWN_LICENSE, REVOKED, SUSPENDED before
    # MODULE_MISMATCH and the rest).
    usage = verifier.check_usage(
        result.claims, module_name=module_name, odoo_version=odoo_version, fingerprint=presented
    )
    return _Pending(outcome, row, usage.code, result.claims["jti"])


def license_validate(**request: Any) -> ValidationOutcome:
    """Validate `token` for use of `module_name` on `odoo_version` by the instance given by
    `fingerprint` (precomputed) or `instance_db_uuid` + `instance_domain` (keyword
    arguments; `actor` defaults to "public").

    Never raises for a bad token: every outcome is a code. Side effect: one audit row
    `license.validated` with `event_data = {"code", "fingerprint", "odoo_version"}`, the
    license id when such a license exists, and the customer and module of the token when
    its signature verified (else the module asked for). On PostgreSQL a verified token
    costs one statement: lookup, decision and audit row together.
    """
    pending = _begin(**request)
    if pending.usage is None:
        audit_record(**pending.row)
        code = pending.outcome.code
    else:
        code = _decide_and_record(pending)
    metrics.validation_recorded(code)
    return dataclasses.replace(pending.outcome, code=code)


def begin(**request: Any) -> _Pending:
    """A validation decided as far as the token alone allows (the signature checked)."""
    return _begin(**request)
