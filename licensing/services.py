"""Every write to licenses and signing keys, each with its audit row in one transaction.

The API, the admin and the management commands all call these functions: one
implementation of "issue" and of "revoke", three doors.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from aegis.core import metrics
from aegis.core.exceptions import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from audit.services import audit_record
from customers.models import Customer
from customers.services import (
    CustomerAlreadyExists,
    CustomerInactive,
    CustomerNotFound,
    customer_create,
)
from licensing import signing
from licensing.models import License, LicenseStatus, LicenseType
from licensing.verification import Code, is_fingerprint

MODULE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,127}\Z")
MAJOR_VERSION_RE = re.compile(r"^\d{1,3}\Z")
MAX_NOTES = 10_000
MAX_REASON = 1_000
# Seats (CONTRACT §9): far above any real deployment, well inside the column's integer.
MAX_SEATS = 1_000_000


class LicenseNotFound(NotFound):
    code = "license_not_found"
    default_detail = "License not found."


class LicenseAlreadyRevoked(Conflict):
    code = "already_revoked"
    default_detail = "The license is already revoked."


class SigningUnavailable(ServiceUnavailable):
    code = "signing_key_unavailable"
    default_detail = "The signing key is unavailable; no license can be issued."


def normalise_versions(versions: object) -> list[str]:
    """Digit strings, de-duplicated and sorted numerically (`["18", "17", "17"]` → `["17", "18"]`)."""
    if isinstance(versions, str) or not isinstance(versions, Iterable):
        raise ValidationFailed.field("allowed_major_versions", "Must be a list of major versions.")
    cleaned = set()
    for version in versions:
        text = str(version).strip() if isinstance(version, int | str) else None
        if isinstance(version, bool) or text is None or not MAJOR_VERSION_RE.match(text):
            raise ValidationFailed.field(
                "allowed_major_versions",
                'Each version must be a major version number such as "17".',
            )
        cleaned.add(str(int(text)))
    if not cleaned:
        raise ValidationFailed.field("allowed_major_versions", "List at least one major version.")
    return sorted(cleaned, key=int)


def license_expiry(
    license_type: str,
    duration_days: int | None,
    expires_at: dt.datetime | None,
    now: dt.datetime,
    *,
    after: dt.datetime | None = None,
) -> dt.datetime | None:
    """The expiry the rules of CONTRACT §3 give, or ValidationFailed.

    `after` is the current expiry of a license being renewed (CONTRACT §9): a duration
    counts from it, or from now when it has passed, and `expires_at` must be later than it
    (a renewal never shortens a term). The longest term still counts from now: it bounds
    the lifetime of the token being signed."""
    if duration_days is not None and expires_at is not None:
        raise ValidationFailed.field("expires_at", "Give duration_days or expires_at, not both.")
    if duration_days is not None and (
        isinstance(duration_days, bool) or not isinstance(duration_days, int) or duration_days < 1
    ):
        raise ValidationFailed.field("duration_days", "Must be a whole number of days, at least 1.")
    if expires_at is not None:
        if not isinstance(expires_at, dt.datetime) or timezone.is_naive(expires_at):
            raise ValidationFailed.field("expires_at", "Must be a date and time with a time zone.")
        if expires_at <= now:
            raise ValidationFailed.field("expires_at", "Must be in the future.")
        if after is not None and expires_at <= after:
            raise ValidationFailed.field(
                "expires_at",
                f"Must be later than the current expiry ({after.isoformat()}): "
                "a renewal cannot shorten the term.",
            )

    if license_type == LicenseType.PERPETUAL:
        if duration_days is not None or expires_at is not None:
            field = "duration_days" if duration_days is not None else "expires_at"
            raise ValidationFailed.field(field, "Perpetual licenses do not expire.")
        return None
    if license_type == LicenseType.SUBSCRIPTION:
        limit = settings.SUBSCRIPTION_MAX_DURATION_DAYS
        if duration_days is None and expires_at is None:
            raise ValidationFailed.field(
                "duration_days", "A subscription needs duration_days or expires_at."
            )
    else:
        limit = settings.DEMO_MAX_DURATION_DAYS
        if duration_days is None and expires_at is None:
            duration_days = settings.DEFAULT_DEMO_DURATION_DAYS
    field = "duration_days" if duration_days is not None else "expires_at"
    start = max(now, after) if after is not None else now
    expiry = expires_at if expires_at is not None else start + dt.timedelta(days=duration_days)
    if expiry > now + dt.timedelta(days=limit):
        raise ValidationFailed.field(field, f"A {license_type} license lasts at most {limit} days.")
    # Whole seconds, so the row and the token's integer `exp` say exactly the same.
    return expiry.replace(microsecond=0)


@transaction.atomic
def license_issue(
    *,
    actor: str,
    customer_id: str,
    module_name: str,
    allowed_major_versions: Iterable[str],
    license_type: str,
    duration_days: int | None = None,
    expires_at: dt.datetime | None = None,
    instance_fingerprint: str | None = None,
    notes: str = "",
    max_instances: int | None = None,
    max_staging_instances: int | None = None,
) -> License:
    """Sign and record a new license; audit `license.issued`.

    `max_instances`: production seats, None for no limit; `max_staging_instances`: staging
    seats, None for DEFAULT_MAX_STAGING_INSTANCES (CONTRACT §9).
    Raises ValidationFailed (a rule of CONTRACT §3), CustomerNotFound, CustomerInactive,
    SigningUnavailable. Nothing is written when any of them is raised.
    """
    errors: dict[str, list[str]] = {}
    if license_type not in LicenseType.values:
        errors["license_type"] = [f"Must be one of {', '.join(LicenseType.values)}."]
    if not isinstance(module_name, str) or not MODULE_NAME_RE.match(module_name):
        errors["module_name"] = [
            "Must be an Odoo technical name: lowercase letters, digits and '_', starting with a letter."
        ]
    if instance_fingerprint in ("", None):
        instance_fingerprint = None
    elif not is_fingerprint(instance_fingerprint):
        errors["instance_fingerprint"] = ["Must be 'sha256:' followed by 64 lowercase hex digits."]
    if not isinstance(notes, str) or len(notes) > MAX_NOTES or "\x00" in notes:
        errors["notes"] = [f"Must be text of at most {MAX_NOTES} characters."]
    if max_staging_instances is None:
        max_staging_instances = settings.DEFAULT_MAX_STAGING_INSTANCES
    if max_instances is not None and not _is_count(max_instances, at_least=1):
        errors["max_instances"] = [
            f"Must be a whole number of instances from 1 to {MAX_SEATS}, or null for no limit."
        ]
    if not _is_count(max_staging_instances, at_least=0):
        errors["max_staging_instances"] = [
            f"Must be a whole number of instances from 0 to {MAX_SEATS}."
        ]
    if errors:
        raise ValidationFailed("Invalid license request.", errors=errors)
    versions = normalise_versions(allowed_major_versions)

    # The token's iat/exp are whole seconds; the row stores the very same instants.
    now = timezone.now().replace(microsecond=0)
    expiry = license_expiry(license_type, duration_days, expires_at, now)

    customer = (
        Customer.objects.filter(pk=customer_id).first() if isinstance(customer_id, str) else None
    )
    if customer is None:
        raise CustomerNotFound(f"Customer {customer_id} not found.")
    if not customer.is_active:
        raise CustomerInactive(f"Customer {customer.id} is inactive.")

    license = sign_and_store(
        customer=customer,
        module_name=module_name,
        allowed_major_versions=versions,
        license_type=license_type,
        issued_at=now,
        expires_at=expiry,
        instance_fingerprint=instance_fingerprint,
        notes=notes,
        max_instances=max_instances,
        max_staging_instances=max_staging_instances,
    )
    audit_issued(actor=actor, license=license)
    return license


def _is_count(value: object, *, at_least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and at_least <= value <= MAX_SEATS


def sign_and_store(
    *,
    customer: Customer,
    module_name: str,
    allowed_major_versions: list[str],
    license_type: str,
    issued_at: dt.datetime,
    expires_at: dt.datetime | None,
    instance_fingerprint: str | None,
    notes: str,
    max_instances: int | None,
    max_staging_instances: int,
    replaces: License | None = None,
) -> License:
    """The one place a license is made: build its claims (CONTRACT §1), sign them with the
    current key and store the row with the token verbatim. `replaces` makes a successor
    (CONTRACT §9): the token carries `"replaces": <its id>` and the row points to it.

    Takes values its caller has checked (license_issue, licensing.successors) and writes no
    audit row: the caller writes `audit_issued` last, inside its transaction. `issued_at`
    and `expires_at` are whole seconds, the same instants as the token's `iat` and `exp`.
    Raises SigningUnavailable.
    """
    license_id = uuid.uuid4()
    claims: dict[str, object] = {
        "jti": str(license_id),
        "iss": settings.LICENSE_ISSUER,
        "iat": int(issued_at.timestamp()),
        "customer": {"id": customer.id, "name": customer.name},
        "module": {"technical_name": module_name, "allowed_major_versions": allowed_major_versions},
        "license_type": license_type,
    }
    if expires_at is not None:  # perpetual: no `exp` claim at all (a null exp breaks clients)
        claims["exp"] = int(expires_at.timestamp())
    if instance_fingerprint:
        claims["instance_fingerprint"] = instance_fingerprint
    if replaces is not None:
        claims["replaces"] = str(replaces.id)
    try:
        with metrics.signing_timer():
            token, kid = signing.sign(claims)
    except signing.SigningKeyUnavailable as exc:
        raise SigningUnavailable() from exc

    license = License.objects.create(
        id=license_id,
        customer=customer,
        module_name=module_name,
        allowed_major_versions=allowed_major_versions,
        license_type=license_type,
        token=token,
        key_id=kid,
        instance_fingerprint=instance_fingerprint,
        issued_at=issued_at,
        expires_at=expires_at,
        notes=notes,
        max_instances=max_instances,
        max_staging_instances=max_staging_instances,
        replaces=replaces,
    )
    metrics.license_issued(license_type)
    return license


def audit_issued(*, actor: str, license: License) -> None:
    """The `license.issued` row of a license `sign_and_store` made (with `replaces` for a
    successor). Written last in the caller's transaction: it takes the audit chain's lock."""
    event_data: dict[str, object] = {
        "license_type": license.license_type,
        "allowed_major_versions": license.allowed_major_versions,
        "expires_at": license.expires_at.isoformat() if license.expires_at else None,
        "instance_fingerprint": license.instance_fingerprint,
        "key_id": license.key_id,
        "max_instances": license.max_instances,
        "max_staging_instances": license.max_staging_instances,
    }
    if license.replaces_id is not None:
        event_data["replaces"] = str(license.replaces_id)
    audit_record(
        event_type="license.issued",
        actor=actor,
        license_id=license.id,
        customer_id=license.customer_id,
        module_name=license.module_name,
        event_data=event_data,
    )


@transaction.atomic
def license_revoke(*, actor: str, license_id: uuid.UUID | str, reason: str) -> License:
    """Revoke a license and audit `license.revoked` with the reason.

    The row is locked (`SELECT … FOR UPDATE`) so that of two concurrent revokes exactly one
    succeeds and writes one audit row. Raises ValidationFailed (empty reason),
    LicenseNotFound, LicenseAlreadyRevoked; nothing is written when any is raised.
    """
    reason = clean_reason(reason)
    license = license_for_update(license_id)
    if license.status == LicenseStatus.REVOKED:
        raise LicenseAlreadyRevoked(f"License {license.id} was already revoked.")
    license.status = LicenseStatus.REVOKED
    license.revoked_at = timezone.now()
    license.revoked_reason = reason
    license.save(update_fields=["status", "revoked_at", "revoked_reason", "updated_at"])
    audit_record(
        event_type="license.revoked",
        actor=actor,
        license_id=license.id,
        customer_id=license.customer_id,
        module_name=license.module_name,
        event_data={"reason": reason},
    )
    return license


@transaction.atomic
def license_update_notes(*, actor: str, license_id: uuid.UUID | str, notes: str) -> License:
    """Change a license's notes (the only field editable after issue); audit `license.updated`."""
    if not isinstance(notes, str) or len(notes) > MAX_NOTES or "\x00" in notes:
        raise ValidationFailed.field("notes", f"Must be text of at most {MAX_NOTES} characters.")
    license = license_for_update(license_id)
    if license.notes == notes:
        return license
    license.notes = notes
    license.save(update_fields=["notes", "updated_at"])
    audit_record(
        event_type="license.updated",
        actor=actor,
        license_id=license.id,
        customer_id=license.customer_id,
        module_name=license.module_name,
        event_data={"notes_changed": True},
    )
    return license


@transaction.atomic
def signing_key_generate(
    *, actor: str, key_id: str, keys_dir: Path, passphrase: str | None = None
) -> tuple[Path, Path]:
    """Create an Ed25519 key pair in `keys_dir` and audit `signing_key.generated`.

    The audit row is written first and the files second: if the files cannot be written the
    transaction rolls back, and if the audit row cannot be written no key is created.
    Raises ValidationFailed (bad key id), FileExistsError (never overwrites a key).
    """
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", key_id or ""):
        raise ValidationFailed.field("key_id", "Use letters, digits, '.', '_' or '-' (64 at most).")
    audit_record(
        event_type="signing_key.generated",
        actor=actor,
        event_data={"key_id": key_id, "encrypted": bool(passphrase)},
    )
    return signing.write_keypair(keys_dir, key_id, passphrase=passphrase)


class LicenseTokenRefused(ValidationFailed):
    """An imported token that does not verify under the known keys (or is not a license)."""

    code = "license_token_refused"
    default_detail = "The token is not a license signed by a known key."

    def __init__(self, verification_code: str, detail: str | None = None) -> None:
        self.verification_code = verification_code
        super().__init__(detail or f"{self.default_detail} ({verification_code})")


class LicenseIdConflict(Conflict):
    code = "license_exists"
    default_detail = "Another token is already registered under this license id."


IMPORTABLE_CODES = frozenset({Code.VALID, Code.EXPIRED})
IMPORTED_EMAIL_DOMAIN = "imported.invalid"


@transaction.atomic
def license_import(*, actor: str, token: str) -> tuple[License, bool]:
    """Register a license issued elsewhere (e.g. by the v0.8 server) so the server answers
    for it online. Returns (license, created); importing the same token again returns the
    existing row with created=False and writes nothing.

    The token must verify under a known key (VALID, or EXPIRED: a real license that has
    run out); the row is its claims, with id = `jti` and the token stored verbatim. A
    missing customer is created from the `customer` claim through `customer_create`, with a
    placeholder e-mail `<id>@imported.invalid` for staff to correct. Audits `license.imported`.

    Raises LicenseTokenRefused (MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER, or
    claims the server cannot store), LicenseIdConflict (the id holds a different token),
    ValidationFailed (the customer claim cannot make a customer).
    """
    result = signing.verifier().verify_token(token)
    if result.code not in IMPORTABLE_CODES:
        raise LicenseTokenRefused(result.code.value)
    claims, kid = result.claims, result.header["kid"]
    license_id = uuid.UUID(claims["jti"])
    existing = License.objects.filter(pk=license_id).first()
    if existing is not None:
        if existing.token != token:
            raise LicenseIdConflict(f"License {license_id} is registered with another token.")
        return existing, False

    module_name = claims["module"]["technical_name"]
    if not MODULE_NAME_RE.match(module_name):
        raise LicenseTokenRefused(
            "MODULE_NAME", "The token's module is not an Odoo technical name."
        )
    try:
        versions = normalise_versions(claims["module"]["allowed_major_versions"])
    except ValidationFailed:
        raise LicenseTokenRefused(
            "VERSIONS", "The token's allowed_major_versions are not major versions."
        ) from None

    customer_claim = claims["customer"]
    customer = Customer.objects.filter(pk=customer_claim["id"]).first()
    customer_created = customer is None
    if customer is None:
        try:
            customer = customer_create(
                actor=actor,
                id=customer_claim["id"],
                name=customer_claim["name"],
                email=f"{customer_claim['id'].lower()}@{IMPORTED_EMAIL_DOMAIN}",
                notes="Created from an imported license token; replace the placeholder e-mail.",
            )
        except CustomerAlreadyExists:  # created by a concurrent import meanwhile
            customer = Customer.objects.get(pk=customer_claim["id"])
            customer_created = False

    issued_at = dt.datetime.fromtimestamp(claims["iat"], tz=dt.UTC)
    expires_at = dt.datetime.fromtimestamp(claims["exp"], tz=dt.UTC) if "exp" in claims else None
    try:
        # A savepoint: a concurrent import of the same token turns into a clean answer.
        with transaction.atomic():
            license = License.objects.create(
                id=license_id,
                customer=customer,
                module_name=module_name,
                allowed_major_versions=versions,
                license_type=claims["license_type"],
                token=token,
                key_id=kid,
                instance_fingerprint=claims.get("instance_fingerprint"),
                issued_at=issued_at,
                expires_at=expires_at,
                notes="Imported from a token issued elsewhere.",
            )
    except IntegrityError:
        existing = License.objects.filter(pk=license_id).first()
        if existing is not None and existing.token == token:
            return existing, False
        raise LicenseIdConflict(f"License {license_id} is registered with another token.") from None
    audit_record(
        event_type="license.imported",
        actor=actor,
        license_id=license.id,
        customer_id=customer.id,
        module_name=module_name,
        event_data={
            "license_type": license.license_type,
            "key_id": kid,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "expired": result.code is Code.EXPIRED,
            "customer_created": customer_created,
        },
    )
    return license, True


def clean_reason(reason: object) -> str:
    """A revocation reason, stripped; ValidationFailed (field `reason`) when empty or too long."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "A reason is required.")
    reason = reason.strip()
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise ValidationFailed.field("reason", f"Must be text of at most {MAX_REASON} characters.")
    return reason


def license_for_update(license_id: uuid.UUID | str) -> License:
    """The license, its row locked until the transaction ends; LicenseNotFound otherwise."""
    try:
        pk = license_id if isinstance(license_id, uuid.UUID) else uuid.UUID(str(license_id))
    except ValueError:
        raise LicenseNotFound() from None
    try:
        return License.objects.select_for_update().get(pk=pk)
    except License.DoesNotExist:
        raise LicenseNotFound(f"License {pk} not found.") from None
