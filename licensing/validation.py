"""Online validation of a license token (CONTRACT §2): the service every transport calls.

`begin` does what the token and the request alone decide, with the verifier of
licensing/verification.py: the token step (signature, issuer, expiry) and the usage step
(module, version, fingerprint). What is left — the license row's rules and the audit row —
is one statement of audit.services.record_validations, whose SQL decides the code from
licensing/rules.py (the order of the codes, written once). `license_validate` runs both for
one validation (Django's path, any database); licensing/validate_asgi.py sends the
validations that wait together as one statement.

Every validation appends exactly one `license.validated` audit row (the statistics count
codes from these rows), read and written on the primary: a revocation answers REVOKED on
the very next request.

Cache. A deployed client presents the same token again and again, and the Ed25519 check is
the most expensive step after the database, so the tokens whose signature and issuer
verified are kept per process (`VALIDATION_CACHE_SIZE`, 0: none), keyed by the exact token
string (a token differing by one byte is verified in full) and by the verifier that checked
them (a change of keys, issuer or leeway makes a new verifier and empties the cache). Expiry
is checked against the clock on every call (`Verifier.check_expiry`), and the license row on
every call by the statement above.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import connections, router
from django.utils import timezone

from aegis.core import metrics
from audit import services as audit_services
from audit.models import AuditLog
from licensing import rules, signing
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
    """A thread-safe LRU: exact token string → its `verify_signature` result, VALID only, for
    one verifier at a time (another verifier empties it). At most `maxsize` entries."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.verifier: Verifier | None = None
        self._entries: OrderedDict[str, Result] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def __contains__(self, token: str) -> bool:
        return token in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def verify_signature(self, verifier: Verifier, token: str) -> Result:
        with self._lock:
            if verifier is not self.verifier:
                self.verifier = verifier
                self._entries.clear()
            result = self._entries.get(token)
            if result is not None:
                self._entries.move_to_end(token)
                self.hits += 1
                return result
        result = verifier.verify_signature(token)
        if result.valid and self.maxsize > 0:
            with self._lock:
                if verifier is self.verifier:
                    self._entries[token] = result
                    while len(self._entries) > self.maxsize:
                        self._entries.popitem(last=False)
        return result

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_tokens = VerifiedTokens(settings.VALIDATION_CACHE_SIZE)
_verifier_memo: tuple[signing.KeyRing, tuple, Verifier] | None = None


def current_verifier() -> Verifier:
    """The verifier of this process: a new one only when the public keys (by their bytes:
    signing.keyring re-reads unchanged files too), the issuer or the leeway change."""
    global _verifier_memo
    ring, memo = signing.keyring(), _verifier_memo
    checks = (settings.LICENSE_ISSUER, settings.VALIDATION_LEEWAY_SECONDS)
    if memo is not None and memo[0] is ring and memo[1][:2] == checks:
        return memo[2]
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    identity = (*checks, sorted((k, v.public_bytes(*raw)) for k, v in ring.public_keys.items()))
    verifier = memo[2] if memo is not None and memo[1] == identity else ring.verifier()
    _verifier_memo = (ring, identity, verifier)
    return verifier


@dataclass(frozen=True)
class Pending:
    """A validation decided as far as the token and the request allow: `row` is its audit
    row (audit_record's arguments), `inputs` what licensing/rules.py decides the rest from."""

    outcome: ValidationOutcome
    row: dict[str, Any]
    inputs: dict[str, Any]
    claims: Mapping[str, Any] | None = None  # the token's, when its signature verified


def begin(
    *,
    token: str,
    module_name: str,
    odoo_version: str,
    fingerprint: str | None = None,
    instance_db_uuid: str | None = None,
    instance_domain: str | None = None,
    actor: str = "public",
) -> Pending:
    """The token step and the usage step of a validation (no database), and the inputs
    licensing/rules.py decides the rest from: the license id, the steps' codes, the
    fingerprint presented and the instant of the decision."""
    presented = fingerprint or None
    if presented is None and instance_db_uuid and instance_domain:
        presented = compute_fingerprint(instance_db_uuid, instance_domain)
    now = timezone.now()
    verifier = current_verifier()
    result = verifier.check_expiry(verified_tokens.verify_signature(verifier, token))
    outcome = ValidationOutcome.from_claims(result.code, result.claims)
    row = {
        "event_type": EVENT_TYPE,
        "actor": actor,
        # Clipped to the columns: a token from an imported older key may carry longer values.
        "customer_id": outcome.customer_id[:50] if outcome.customer_id else None,
        "module_name": (outcome.module_name or module_name)[:128],
        "event_data": {"fingerprint": presented, "odoo_version": odoo_version},
    }
    inputs = {
        "jti": None,
        "token_code": None,
        "usage_code": None,
        "fingerprint": presented,
        "now": now,
    }
    if not result.valid:
        return Pending(outcome, row, inputs | {"token_code": result.code}, result.claims)
    usage = verifier.check_usage(
        result.claims, module_name=module_name, odoo_version=odoo_version, fingerprint=presented
    )
    inputs["jti"] = uuid.UUID(result.claims["jti"])
    inputs["usage_code"] = None if usage.valid else usage.code
    return Pending(outcome, row, inputs, result.claims)


def audit_row(pending: Pending, alias: str, connection) -> list[Any]:
    """The values that record `pending` (audit.services.validation_row) on `connection`."""
    return audit_services.validation_row(
        rules.decision(alias), connection, pending.inputs, **pending.row
    )


def finish(pending: Pending, code: str) -> ValidationOutcome:
    return dataclasses.replace(pending.outcome, code=Code(code))


def license_validate(**request: Any) -> ValidationOutcome:
    """Validate `token` for use of `module_name` on `odoo_version` by the instance given by
    `fingerprint` (precomputed) or `instance_db_uuid` + `instance_domain` (keyword
    arguments; `actor` defaults to "public").

    Never raises for a bad token: every outcome is a code. Side effect: one audit row
    `license.validated` with `event_data = {"code", "fingerprint", "odoo_version"}`, the
    license id when such a license exists, and the customer and module of the token when
    its signature verified (else the module asked for).
    """
    pending = begin(**request)
    alias = router.db_for_write(AuditLog)
    (code,) = audit_services.record_validations(
        rules.decision(alias), [audit_row(pending, alias, connections[alias])]
    )
    metrics.validation_recorded(code)
    return finish(pending, code)
