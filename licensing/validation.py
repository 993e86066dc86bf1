"""Online validation of a license token (CONTRACT §2) — the server's hot path.

The order of the checks is the contract's, and the first failure sets the code:

1. `signing.verifier().verify_token()`: MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER,
   EXPIRED — pure computation with the process's cached keys, no database;
2. one query for the license and its customer: UNKNOWN_LICENSE, REVOKED, SUSPENDED;
3. `verifier.check_usage()`: MODULE_MISMATCH, VERSION_NOT_ALLOWED, FINGERPRINT_REQUIRED,
   FINGERPRINT_MISMATCH, else VALID.

Every call appends exactly one `license.validated` audit row (the statistics count codes
from these rows): two queries in all for a verified token, one for a token that fails
before the lookup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aegis import metrics
from audit.services import audit_record
from licensing import signing
from licensing.models import License, LicenseStatus
from licensing.verification import MESSAGES, Code, Result, compute_fingerprint

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


def _server_state(jti: str) -> Code | None:
    """UNKNOWN_LICENSE, REVOKED or SUSPENDED from one query, or None when the license may be used."""
    row = License.objects.filter(pk=jti).values_list("status", "customer__is_active").first()
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

    verifier = signing.verifier()
    result: Result = verifier.verify_token(token)
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
