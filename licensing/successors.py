"""Successors (CONTRACT §9): renew, transfer and re-issue a license.

A token is never re-signed. Each of these issues a NEW license (new `jti`) through the one
issue path (`licensing.services.sign_and_store`) with the same customer, module, versions,
type, binding, seats and notes, the change applied, the token claim
`"replaces": "<old id>"`, and links the rows both ways (`new.replaces`, `old.replaced_by`).

- renewal: a later expiry; the old license stays valid until its own expiry (no gap);
- transfer: another instance; the old license is revoked in the same transaction;
- re-issue: the current signing key (after a key is retired or compromised); the old
  license is revoked in the same transaction.

Audit rows, in the service's transaction: `license.revoked` on the old license where it is
revoked (through `license_revoke`, the one revoke path), `license.issued` on the new one
(with `replaces`), and `license.renewed` / `license.transferred` / `license.reissued` on the
old one naming the successor.

Locks: the old row is locked first (`SELECT … FOR UPDATE`), so of two concurrent changes of
one license the second sees the first's successor and is refused (`already_replaced`); the
unique `replaced_by` column backs this up. Every row is written before the first audit row,
which takes the audit chain's lock until commit (see audit.services.audit_record).

Decisions where the contract is silent:
- a license that already has a successor is refused (409 `already_replaced`, naming it):
  act on the newest license of the chain, so a chain never forks;
- renewing a perpetual or revoked license is 409 `not_renewable`; transferring or
  re-issuing a revoked one is 409 `already_revoked`, an expired one 409 `license_expired`
  (renew it first);
- renewal without a duration: the demo default (DEFAULT_DEMO_DURATION_DAYS), as at issue; a
  subscription needs one. The longest term (DEMO_/SUBSCRIPTION_MAX_DURATION_DAYS) counts
  from now, as at issue: it bounds the new token's lifetime;
- renewing or transferring a suspended customer's license is 409 `customer_inactive`, as
  issuing is; re-issuing is not refused (it grants nothing new, and the successor answers
  SUSPENDED like its predecessor until the customer is reactivated);
- a transfer to the instance the license is already bound to is a 400;
- `licenses_reissue` re-issues each license in its own transaction (a run over many
  licenses commits as it goes and can be run again: what was re-issued is revoked, so it
  is not selected twice). It takes active (unexpired, unrevoked) licenses without a
  successor, and refuses the current signing key.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from aegis.core.exceptions import Conflict, ValidationFailed
from audit.services import audit_record
from customers.services import CustomerInactive
from licensing import keys, services, signing
from licensing.models import License, LicenseStatus, LicenseType
from licensing.verification import compute_fingerprint, is_fingerprint


class LicenseAlreadyReplaced(Conflict):
    code = "already_replaced"
    default_detail = "The license already has a successor; act on the newest license."

    def __init__(self, license: License) -> None:
        self.successor_id = license.replaced_by_id
        super().__init__(
            f"License {license.id} was already replaced by license {license.replaced_by_id}; "
            "act on the newest license of the chain."
        )


class LicenseNotRenewable(Conflict):
    code = "not_renewable"
    default_detail = "This license cannot be renewed."


class LicenseExpired(Conflict):
    code = "license_expired"
    default_detail = "The license has expired; renew it first."


@dataclass
class ReissueReport:
    """What `licenses_reissue` did: how many licenses it found and re-issued, and the ones it
    skipped (id → why: changed by someone else meanwhile)."""

    key_id: str
    signing_key_id: str
    total: int = 0
    reissued: int = 0
    skipped: dict[uuid.UUID, str] = field(default_factory=dict)


# --- The services ------------------------------------------------------------------------


@transaction.atomic
def license_renew(
    *,
    actor: str,
    license_id: uuid.UUID | str,
    duration_days: int | None = None,
    expires_at: dt.datetime | None = None,
) -> License:
    """Issue the renewal of a subscription or demo license: a successor whose expiry is
    `duration_days` after the old expiry (after now when that has passed) or `expires_at`
    (later than the old expiry). The old license stays valid until its own expiry.
    Audits `license.issued` (new) and `license.renewed` (old, naming the successor).

    Raises LicenseNotFound, LicenseAlreadyReplaced, LicenseNotRenewable (perpetual or
    revoked), CustomerInactive, ValidationFailed (a term that is shorter, too long or
    malformed), SigningUnavailable. Nothing is written when any of them is raised.
    """
    old = services.license_for_update(license_id)
    check_renewable(old)
    now = _now()
    expiry = services.license_expiry(
        old.license_type, duration_days, expires_at, now, after=old.expires_at
    )
    new = _successor(actor=actor, old=old, now=now, expires_at=expiry)
    _audit(
        "license.renewed",
        actor,
        old,
        new,
        previous_expires_at=old.expires_at.isoformat(),
        expires_at=expiry.isoformat(),
    )
    return new


@transaction.atomic
def license_transfer(
    *,
    actor: str,
    license_id: uuid.UUID | str,
    reason: str,
    instance_fingerprint: str | None = None,
    instance_db_uuid: str | None = None,
    instance_domain: str | None = None,
) -> License:
    """Move a license to another Odoo instance: a successor bound to `instance_fingerprint`,
    or to the fingerprint of `instance_db_uuid` and `instance_domain` (CONTRACT §1); the old
    license is revoked with `reason`. Audits `license.revoked` (old), `license.issued` (new)
    and `license.transferred` (old, naming the successor and both instances).

    Raises ValidationFailed (no instance, or both forms, a malformed fingerprint, the same
    instance, no reason), LicenseNotFound, LicenseAlreadyReplaced, LicenseAlreadyRevoked,
    LicenseExpired, CustomerInactive, SigningUnavailable. Nothing is written when any of
    them is raised.
    """
    fingerprint = _target_fingerprint(instance_fingerprint, instance_db_uuid, instance_domain)
    reason = services.clean_reason(reason)
    old = services.license_for_update(license_id)
    check_transferable(old)
    if old.instance_fingerprint == fingerprint:
        raise ValidationFailed.field(
            "instance_fingerprint", f"License {old.id} is already bound to this instance."
        )
    new = _successor(
        actor=actor, old=old, now=_now(), instance_fingerprint=fingerprint, revoke_reason=reason
    )
    _audit(
        "license.transferred",
        actor,
        old,
        new,
        reason=reason,
        from_fingerprint=old.instance_fingerprint,
        to_fingerprint=fingerprint,
    )
    return new


@transaction.atomic
def license_reissue(*, actor: str, license_id: uuid.UUID | str, reason: str) -> License:
    """Re-issue a license under the current signing key (its key was retired or
    compromised, or its token leaked): a successor with the same terms; the old license is
    revoked with `reason`. Audits `license.revoked` (old), `license.issued` (new) and
    `license.reissued` (old, naming the successor and both key ids).

    Raises ValidationFailed (no reason), LicenseNotFound, LicenseAlreadyReplaced,
    LicenseAlreadyRevoked, LicenseExpired, SigningUnavailable. Nothing is written when any
    of them is raised.
    """
    reason = services.clean_reason(reason)
    old = services.license_for_update(license_id)
    check_reissuable(old)
    new = _successor(actor=actor, old=old, now=_now(), revoke_reason=reason)
    _audit(
        "license.reissued",
        actor,
        old,
        new,
        reason=reason,
        from_key_id=old.key_id,
        to_key_id=new.key_id,
    )
    return new


# Licenses whose ids are read at once by `licenses_reissue`.
REISSUE_BATCH = 500


def licenses_reissue(
    *,
    actor: str,
    key_id: str,
    reason: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReissueReport:
    """Re-issue every active license signed by `key_id` (`license_reissue`, one transaction
    each), in id order; `progress(done, total)` is called after each. A license revoked,
    replaced or expired meanwhile is skipped and reported. The default reason names both keys.

    Not one transaction on purpose: a run over many licenses commits as it goes, and running
    it again picks up what is left. Raises ValidationFailed (a malformed key id, or the
    current signing key), SigningUnavailable (before any license, or when the key stops
    signing during the run: what was done is committed).
    """
    key_id = keys.validate_key_id(key_id)
    ring = signing.keyring()
    if key_id == ring.signing_kid:
        raise ValidationFailed.field(
            "key_id",
            f"{key_id} is the current signing key (KEY_ID): generate a new key and set "
            "KEY_ID to it first.",
        )
    if ring.signing_key is None:
        raise services.SigningUnavailable(
            f"{services.SigningUnavailable.default_detail} ({ring.signing_error})"
        )
    reason = services.clean_reason(
        reason or f"Re-issued under signing key {ring.signing_kid}: key {key_id} is retired."
    )
    report = ReissueReport(key_id=key_id, signing_key_id=ring.signing_kid)
    candidates = License.objects.active().filter(key_id=key_id, replaced_by__isnull=True)
    report.total = candidates.count()
    done = 0
    last: uuid.UUID | None = None
    while True:
        page = candidates.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:REISSUE_BATCH])
        if not ids:
            break
        for pk in ids:
            try:
                license_reissue(actor=actor, license_id=pk, reason=reason)
            except (
                LicenseAlreadyReplaced,
                services.LicenseAlreadyRevoked,
                LicenseExpired,
                services.LicenseNotFound,
            ) as exc:
                report.skipped[pk] = exc.detail
            else:
                report.reissued += 1
            done += 1
            if progress is not None:
                progress(done, max(report.total, done))
        last = ids[-1]
    return report


# --- What each change needs of the license ----------------------------------------------
# The services call these on the locked row; the admin calls them to offer an action and
# to say why it is not offered.


def check_renewable(license: License) -> None:
    """Raise what renewing `license` meets: LicenseAlreadyReplaced, LicenseNotRenewable
    (revoked, perpetual), CustomerInactive."""
    _require_no_successor(license)
    if license.status == LicenseStatus.REVOKED:
        raise LicenseNotRenewable(
            f"License {license.id} is revoked; a revoked license is not renewed."
        )
    if license.license_type == LicenseType.PERPETUAL or license.expires_at is None:
        raise LicenseNotRenewable(f"License {license.id} is perpetual; it never expires.")
    _require_active_customer(license)


def check_transferable(license: License) -> None:
    """Raise what transferring `license` meets: LicenseAlreadyReplaced,
    LicenseAlreadyRevoked, LicenseExpired, CustomerInactive."""
    _require_no_successor(license)
    _require_usable(license, "transferred")
    _require_active_customer(license)


def check_reissuable(license: License) -> None:
    """Raise what re-issuing `license` meets: LicenseAlreadyReplaced,
    LicenseAlreadyRevoked, LicenseExpired."""
    _require_no_successor(license)
    _require_usable(license, "re-issued")


# --- Shared steps ------------------------------------------------------------------------


def _now() -> dt.datetime:
    # Whole seconds: the token's iat/exp and the row hold the very same instants.
    return timezone.now().replace(microsecond=0)


def _require_no_successor(license: License) -> None:
    if license.replaced_by_id is not None:
        raise LicenseAlreadyReplaced(license)


def _require_usable(license: License, done: str) -> None:
    if license.status == LicenseStatus.REVOKED:
        raise services.LicenseAlreadyRevoked(
            f"License {license.id} is revoked; a revoked license is not {done}."
        )
    if license.is_expired:
        raise LicenseExpired(
            f"License {license.id} expired on {license.expires_at.isoformat()}; renew it first."
        )


def _require_active_customer(license: License) -> None:
    if not license.customer.is_active:
        raise CustomerInactive(f"Customer {license.customer_id} is inactive.")


def _target_fingerprint(fingerprint: str | None, db_uuid: str | None, domain: str | None) -> str:
    """The fingerprint of the instance a license moves to, from one of the two forms."""
    fingerprint, db_uuid, domain = (
        v if v not in ("", None) else None for v in (fingerprint, db_uuid, domain)
    )
    for name, value in (
        ("instance_fingerprint", fingerprint),
        ("instance_db_uuid", db_uuid),
        ("instance_domain", domain),
    ):
        if value is not None and not isinstance(value, str):
            raise ValidationFailed.field(name, "Must be a string.")
    if fingerprint is not None:
        if db_uuid is not None or domain is not None:
            raise ValidationFailed.field(
                "instance_fingerprint",
                "Give instance_fingerprint, or instance_db_uuid and instance_domain, not both.",
            )
        if not is_fingerprint(fingerprint):
            raise ValidationFailed.field(
                "instance_fingerprint", "Must be 'sha256:' followed by 64 lowercase hex digits."
            )
        return fingerprint
    if db_uuid is None and domain is None:
        raise ValidationFailed.field(
            "instance_fingerprint",
            "Give the new instance: instance_fingerprint, or instance_db_uuid and instance_domain.",
        )
    if db_uuid is None:
        raise ValidationFailed.field("instance_db_uuid", "Give the database UUID with the domain.")
    if domain is None:
        raise ValidationFailed.field("instance_domain", "Give the domain with the database UUID.")
    return compute_fingerprint(db_uuid, domain)


def _successor(
    *,
    actor: str,
    old: License,
    now: dt.datetime,
    revoke_reason: str | None = None,
    **changes: object,
) -> License:
    """Issue the successor of the locked `old` with `changes` applied, link both rows,
    revoke `old` when `revoke_reason` is given, and audit `license.issued`. The caller
    writes its own event row after this."""
    terms: dict[str, object] = {
        "customer": old.customer,
        "module_name": old.module_name,
        "allowed_major_versions": list(old.allowed_major_versions),
        "license_type": old.license_type,
        "expires_at": old.expires_at,
        "instance_fingerprint": old.instance_fingerprint,
        "notes": old.notes,
        "max_instances": old.max_instances,
        "max_staging_instances": old.max_staging_instances,
    }
    new = services.sign_and_store(issued_at=now, replaces=old, **(terms | changes))
    old.replaced_by = new
    old.save(update_fields=["replaced_by", "updated_at"])
    if revoke_reason is not None:
        # The one revoke path: its row update, then its audit row.
        services.license_revoke(actor=actor, license_id=old.id, reason=revoke_reason)
    services.audit_issued(actor=actor, license=new)
    return new


def _audit(event_type: str, actor: str, old: License, new: License, **data: object) -> None:
    audit_record(
        event_type=event_type,
        actor=actor,
        license_id=old.id,
        customer_id=old.customer_id,
        module_name=old.module_name,
        event_data={"successor": str(new.id), **data},
    )
