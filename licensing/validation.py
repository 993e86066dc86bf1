"""Online validation of a license token (CONTRACT §2) — the server's hot path.

The order of the checks is the contract's, and the first failure sets the code:

1. `signing.verifier().verify_token()`: MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER,
   EXPIRED — pure computation with the process's cached keys, no database;
2. one query for the license and its customer: UNKNOWN_LICENSE, REVOKED, SUSPENDED;
3. `verifier.check_usage()`: MODULE_MISMATCH, VERSION_NOT_ALLOWED, FINGERPRINT_REQUIRED,
   FINGERPRINT_MISMATCH, else VALID.

Every call appends exactly one `license.validated` audit row (the statistics count codes
from these rows): two queries in all for a verified token, one for a token that fails
before the lookup. The lookup is plain SQL written once: compiling the equivalent ORM
query cost more CPU than PostgreSQL spends answering it.

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

import datetime as dt
import functools
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


def _server_state(jti: str) -> Code | None:
    """UNKNOWN_LICENSE, REVOKED or SUSPENDED from one query, or None when the license may be used."""
    # Always the primary (a POST never reads the replica): a revocation is seen at once.
    alias = router.db_for_write(License)
    license_id = License._meta.pk.get_db_prep_value(uuid.UUID(jti), connections[alias])
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


def license_validate(
    *,
    token: str,
    module_name: str,
    odoo_version: str,
    fingerprint: str | None = None,
    instance_db_uuid: str | None = None,
    instance_domain: str | None = None,
    actor: str = "public",
) -> ValidationOutcome:
    """Validate `token` for use of `module_name` on `odoo_version` by the instance given by
    `fingerprint` (precomputed) or `instance_db_uuid` + `instance_domain`.

    Never raises for a bad token: every outcome is a code. Side effect: one audit row
    `license.validated` with `event_data = {"code", "fingerprint", "odoo_version"}`, the
    license id when such a license exists, and the customer and module of the token when
    its signature verified (else the module asked for).
    """
    presented = fingerprint or None
    if presented is None and instance_db_uuid and instance_domain:
        presented = compute_fingerprint(instance_db_uuid, instance_domain)

    verifier = current_verifier()
    result: Result = verify_token(verifier, token)
    license_exists = False
    if result.valid:
        jti = result.claims["jti"]
        state = _server_state(jti)
        license_exists = state is not Code.UNKNOWN_LICENSE
        if state is not None:
            result = Result(state, result.claims, result.header)
        else:
            result = verifier.check_usage(
                result.claims,
                module_name=module_name,
                odoo_version=odoo_version,
                fingerprint=presented,
            )
    outcome = ValidationOutcome.from_claims(result.code, result.claims)

    audit_record(
        event_type=EVENT_TYPE,
        actor=actor,
        # The audit column is a plain UUID; an id that names no license is not stored.
        license_id=outcome.license_id if license_exists else None,
        # Clipped to the columns: a token from an imported older key may carry longer values.
        customer_id=outcome.customer_id[:50] if outcome.customer_id else None,
        module_name=(outcome.module_name or module_name)[:128],
        event_data={
            "code": outcome.code.value,
            "fingerprint": presented,
            "odoo_version": odoo_version,
        },
    )
    metrics.validation_recorded(outcome.code)
    return outcome
