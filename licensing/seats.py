"""Seats and leases (CONTRACT §9): every write to activations, each with its audit rows.

An Odoo instance claims a seat of a license (`license_activate`), keeps it by checking in
again (a heartbeat: the same call), and gives it back (`license_deactivate`); staff release
it (`activation_release`). The API (licensing/api_seats.py) and the admin
(licensing/admin_seats.py) call these.

The decision is licensing/rules.py's, for the action `ACTIVATE`: every validation check in
the contract's order (NOT_ACTIVATED is validate's alone), then SEATS_EXCEEDED, decided by one
read-only statement (`rules.decide`) while this transaction holds the license row's lock
(`SELECT … FOR UPDATE`). Every activation of a license therefore counts the seats after the
previous one committed: twenty instances racing for five seats get exactly five. The seat
step here only acts on the answer.

A seat is held while its activation is not released and its lease runs (`rules.HELD`): an
instance that stops checking in frees its seat when its lease runs out, with no job.

Audit: a seat taken (`activation.created`, or `activation.resumed` for an instance whose
lease ran out or that changed environment), released (`activation.released`) and a
suspected clone (`activation.clone_suspected`: the same database uuid live on another domain)
are chained state changes. Heartbeats (`activation.heartbeat`) and refusals
(`activation.refused`, with the code) come at the rate of check-ins and are not chained
(audit/chain.py), like validations.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from aegis.core import metrics
from aegis.core.db import prepared_cursor
from aegis.core.exceptions import Conflict, NotFound, ValidationFailed
from audit.services import audit_record
from licensing import rules, signing, validation
from licensing.models import Activation, Environment, License
from licensing.services import LicenseNotFound, SigningUnavailable
from licensing.validation import Pending, ValidationOutcome
from licensing.verification import Code, compute_fingerprint
from licensing.verification import instance_domain as host_of

CREATED = "activation.created"
RESUMED = "activation.resumed"
HEARTBEAT = "activation.heartbeat"
REFUSED = "activation.refused"
RELEASED = "activation.released"
CLONE_SUSPECTED = "activation.clone_suspected"
# How many other domains a clone suspicion names at most.
MAX_CLONE_PEERS = 10
NONCE_MAX = 128


class ActivationNotFound(NotFound):
    code = "activation_not_found"
    default_detail = "No such activation of this license."


class ActivationAlreadyReleased(Conflict):
    code = "activation_already_released"
    default_detail = "The activation was already released."


@dataclass(frozen=True)
class Activated:
    """The answer of an activation: validate's (`outcome`), and when it is VALID the seat
    (`activation`) with its signed `lease`; `successor_token` when a newer license of the
    chain is valid for this instance."""

    outcome: ValidationOutcome
    activation: Activation | None = None
    lease: str | None = None
    successor_token: str | None = None


@dataclass(frozen=True)
class Deactivated:
    """The answer of a deactivation: VALID and the released `activation`, or why not —
    a token code, UNKNOWN_LICENSE, or NOT_ACTIVATED (this instance holds no seat)."""

    code: Code
    license_id: str | None = None
    activation: Activation | None = None

    @property
    def deactivated(self) -> bool:
        return self.code is Code.VALID


# --- Requests ---------------------------------------------------------------------------


def _text(errors: dict, name: str, value: Any, *, max_length: int, required: bool = True):
    """Text the database can store: a string without NUL or lone surrogates, within the
    column's length (and not empty when required)."""
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value):
        errors[name] = ["Required: a non-empty string." if required else "Must be a string."]
    elif len(value) > max_length:
        errors[name] = [f"At most {max_length} characters."]
    elif "\x00" in value or not _utf8(value):
        errors[name] = ["Must not contain NUL or unpaired surrogate characters."]


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_instance(errors: dict, db_uuid: Any, domain: Any) -> None:
    _text(errors, "instance_db_uuid", db_uuid, max_length=255)
    _text(errors, "instance_domain", domain, max_length=2048)
    if "instance_domain" not in errors and not host_of(domain):
        errors["instance_domain"] = ["Must name a host."]


def _check_activation(
    *, token, module_name, odoo_version, instance_db_uuid, instance_domain, environment, nonce
) -> None:
    errors: dict[str, list[str]] = {}
    _text(errors, "token", token, max_length=64 * 1024)
    _text(errors, "module_name", module_name, max_length=128)
    _text(errors, "odoo_version", odoo_version, max_length=32)
    _check_instance(errors, instance_db_uuid, instance_domain)
    if environment not in Environment.values:
        errors["environment"] = [f"Must be one of {', '.join(Environment.values)}."]
    if nonce is not None and not (
        isinstance(nonce, str)
        and 1 <= len(nonce) <= NONCE_MAX
        and all(" " <= ch <= "~" for ch in nonce)
    ):
        errors["nonce"] = [f"1 to {NONCE_MAX} printable ASCII characters."]
    if errors:
        raise ValidationFailed("Invalid activation request.", errors=errors)


# --- Activate ---------------------------------------------------------------------------


@transaction.atomic
def license_activate(
    *,
    token: str,
    module_name: str,
    odoo_version: str,
    instance_db_uuid: str,
    instance_domain: str,
    environment: str = Environment.PRODUCTION,
    nonce: str | None = None,
    actor: str = "public",
) -> Activated:
    """Claim, or keep (a heartbeat), a seat of the license `token` for the instance
    `instance_db_uuid` + `instance_domain` in `environment` (production | staging).

    Every validation check runs first, in the contract's order, then the seat
    (licensing/rules.py, action ACTIVATE): a code other than VALID is an answer, not an
    error. VALID: the instance's live activation is re-used (a heartbeat: new lease,
    `last_seen_at`), else a seat is taken (a new activation, or the instance's own whose
    lease ran out or that changed environment). Each answer carries a new lease.

    `nonce` is checked (1–128 printable ASCII characters) for the signed answers of
    CONTRACT §10; it does not change the answer yet.

    Raises ValidationFailed (the request: nothing written) and SigningUnavailable (no key to
    sign the lease: nothing written). Side effects: the activation row; one audit row
    (`activation.created` / `resumed` / `heartbeat` / `refused`), plus
    `activation.clone_suspected` when the database uuid is live on another domain; the
    activation counted per code in the metrics.
    """
    environment = str(environment)
    _check_activation(
        token=token,
        module_name=module_name,
        odoo_version=odoo_version,
        instance_db_uuid=instance_db_uuid,
        instance_domain=instance_domain,
        environment=environment,
        nonce=nonce,
    )
    request = {
        "module_name": module_name,
        "odoo_version": odoo_version,
        "instance_db_uuid": instance_db_uuid,
        "instance_domain": instance_domain,
        "actor": actor,
    }
    pending = validation.begin(token=token, **request)
    # The lock first, the clock second: the seats are counted as of a moment no other
    # activation of this license can change.
    license = _lock(pending.inputs["jti"])
    now = timezone.now()
    inputs = pending.inputs | {"now": now, "environment": environment}
    code = rules.decide(inputs, action=rules.ACTIVATE)
    outcome = validation.finish(pending, code)
    if code is not Code.VALID:
        audit_record(
            event_type=REFUSED,
            actor=actor,
            license_id=license.pk if license else None,
            customer_id=pending.row["customer_id"],
            module_name=pending.row["module_name"],
            event_data={
                "code": code.value,
                "fingerprint": inputs["fingerprint"],
                "environment": environment,
                "odoo_version": odoo_version,
            },
        )
        metrics.activation_recorded(code)
        successor = _successor_token(_known_license(pending, license), request, inputs)
        return Activated(outcome, successor_token=successor)

    activation, lease = _take_seat(
        license,
        pending,
        now=now,
        fingerprint=inputs["fingerprint"],
        db_uuid=instance_db_uuid,
        domain=host_of(instance_domain),
        environment=environment,
        odoo_version=odoo_version,
        actor=actor,
    )
    metrics.activation_recorded(code)
    return Activated(
        outcome,
        activation=activation,
        lease=lease,
        successor_token=_successor_token(license, request, inputs),
    )


def _take_seat(
    license: License,
    pending: Pending,
    *,
    now: dt.datetime,
    fingerprint: str,
    db_uuid: str,
    domain: str,
    environment: str,
    odoo_version: str,
    actor: str,
) -> tuple[Activation, str]:
    """The seat step of a VALID activation (rules.decide said a seat is held or free)."""
    expires = _lease_expiry(pending.claims, now)
    audit = {
        "actor": actor,
        "license_id": license.pk,
        "customer_id": license.customer_id,
        "module_name": license.module_name,
    }
    beat = _heartbeat(license, fingerprint, environment, odoo_version, now, expires)
    if beat is not None:
        # The hot path of seats: one UPDATE, one unchained audit row.
        lease = _lease(beat, pending.claims, now, expires)
        audit_record(
            event_type=HEARTBEAT,
            event_data={"activation_id": str(beat.pk), "odoo_version": odoo_version},
            **audit,
        )
        return beat, lease
    # A seat taken: the instance's own activation whose lease ran out or that changes
    # environment (resumed), or a new one.
    own = Activation.objects.filter(
        license=license, fingerprint=fingerprint, released_at=None
    ).first()
    activation = own or Activation(
        id=uuid.uuid4(),
        license=license,
        fingerprint=fingerprint,
        db_uuid=db_uuid,
        domain=domain,
        first_seen_at=now,
    )
    activation.environment = environment
    activation.odoo_version = odoo_version
    activation.last_seen_at = now
    activation.lease_expires_at = expires
    # Signed before anything is written: without a key, nothing is.
    lease = _lease(activation, pending.claims, now, expires)
    if own is None:
        activation.save(force_insert=True)
    else:
        activation.save(
            update_fields=["environment", "odoo_version", "last_seen_at", "lease_expires_at"]
        )
    peers = list(
        Activation.objects.filter(license=license, db_uuid=db_uuid)
        .filter(rules.holding(now))
        .exclude(domain=domain)
        .order_by("first_seen_at")
        .values_list("id", "domain")[:MAX_CLONE_PEERS]
    )
    # Chained rows last: each takes the chain's lock until the transaction ends.
    audit_record(event_type=RESUMED if own else CREATED, event_data=_seat_data(activation), **audit)
    if peers:
        audit_record(
            event_type=CLONE_SUSPECTED,
            event_data={
                "activation_id": str(activation.pk),
                "db_uuid": db_uuid,
                "domain": domain,
                "live_on": [{"activation_id": str(pk), "domain": d} for pk, d in peers],
            },
            **audit,
        )
    return activation, lease


# --- The hot statements of a heartbeat ----------------------------------------------------
#
# An instance checks in again and again, so a heartbeat is a few statements written once,
# from the models, and prepared by PostgreSQL (aegis.core.db.prepared_cursor): the ORM's
# query building cost five times their execution (docs/performance.md).


def _in_model_order(model, attnames: set[str]) -> tuple[str, ...]:
    """`attnames` in the order of the model's columns, as `Model.from_db` takes values."""
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in attnames)


def _column(model, attname: str) -> str:
    return next(f.column for f in model._meta.concrete_fields if f.attname == attname)


# The license columns the seat step reads; the others load on access, if ever.
_LOCKED = _in_model_order(License, {"id", "customer_id", "module_name", "replaced_by_id"})
# What a heartbeat sets, and what it knows of the activation it extends.
_BEAT = ("odoo_version", "last_seen_at", "lease_expires_at")
_BEAT_KNOWN = _in_model_order(
    Activation, {"id", "license_id", "fingerprint", "environment", *_BEAT}
)


@functools.cache
def _lock_sql(alias: str) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(License, name)) for name in _LOCKED)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (
        f"SELECT {columns} FROM {quote(License._meta.db_table)} "  # noqa: S608
        f"WHERE {quote(License._meta.pk.column)} = %s{lock}"
    )


def _lock(license_id: uuid.UUID | None) -> License | None:
    """The license row, locked until the transaction ends (`SELECT … FOR UPDATE`), with
    the columns the seat step reads (others deferred); None when there is no such row."""
    if license_id is None:
        return None
    alias = router.db_for_write(License)
    connection = connections[alias]
    with prepared_cursor(alias) as cursor:
        cursor.execute(
            _lock_sql(alias), [License._meta.pk.get_db_prep_value(license_id, connection)]
        )
        row = cursor.fetchone()
    if row is None:
        return None
    fields = {f.attname: f for f in License._meta.concrete_fields}
    values = [fields[name].to_python(value) for name, value in zip(_LOCKED, row, strict=True)]
    return License.from_db(alias, list(_LOCKED), values)


@functools.cache
def _heartbeat_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    sets = ", ".join(f"{quote(_column(Activation, name))} = %s" for name in _BEAT)
    return (
        f"UPDATE {quote(Activation._meta.db_table)} AS seat SET {sets} "  # noqa: S608
        "WHERE seat.license_id = %s AND seat.fingerprint = %s AND seat.environment = %s "
        f"AND {rules.held('%s')} RETURNING {quote(Activation._meta.pk.column)}"
    )


def _heartbeat(
    license: License,
    fingerprint: str,
    environment: str,
    odoo_version: str,
    now: dt.datetime,
    expires: dt.datetime,
) -> Activation | None:
    """Extend the seat the instance holds in `environment` (rules.held) to `expires`; its
    activation (the columns of `_BEAT_KNOWN`, others deferred), or None when it holds none."""
    alias = router.db_for_write(Activation)
    connection = connections[alias]
    field = Activation._meta.get_field
    params = [
        field("odoo_version").get_db_prep_save(odoo_version, connection),
        field("last_seen_at").get_db_prep_save(now, connection),
        field("lease_expires_at").get_db_prep_save(expires, connection),
        License._meta.pk.get_db_prep_value(license.pk, connection),
        fingerprint,
        environment,
        field("lease_expires_at").get_db_prep_save(now, connection),
    ]
    with prepared_cursor(alias) as cursor:
        cursor.execute(_heartbeat_sql(alias), params)
        row = cursor.fetchone()
    if row is None:
        return None
    known = {
        "id": Activation._meta.pk.to_python(row[0]),
        "license_id": license.pk,
        "fingerprint": fingerprint,
        "environment": environment,
        "odoo_version": odoo_version,
        "last_seen_at": now,
        "lease_expires_at": expires,
    }
    return Activation.from_db(alias, list(_BEAT_KNOWN), [known[name] for name in _BEAT_KNOWN])


def _seat_data(activation: Activation) -> dict[str, Any]:
    return {
        "activation_id": str(activation.pk),
        "fingerprint": activation.fingerprint,
        "db_uuid": activation.db_uuid,
        "domain": activation.domain,
        "environment": activation.environment,
        "odoo_version": activation.odoo_version,
        "lease_expires_at": activation.lease_expires_at.isoformat(),
    }


def _lease_expiry(claims: dict[str, Any], now: dt.datetime) -> dt.datetime:
    """min(now + LEASE_TTL_DAYS, the license's `exp`), in whole seconds: the row and the
    lease say the same instant."""
    expires = int(now.timestamp()) + settings.LEASE_TTL_DAYS * 86400
    if "exp" in claims:
        expires = min(expires, claims["exp"])
    return dt.datetime.fromtimestamp(expires, tz=dt.UTC)


def _lease(
    activation: Activation, claims: dict[str, Any], now: dt.datetime, expires: dt.datetime
) -> str:
    """The signed lease of `activation` until `expires` (CONTRACT §9)."""
    module = claims["module"]
    lease_claims = {
        "iss": settings.LICENSE_ISSUER,
        "jti": str(activation.pk),
        "lic": claims["jti"],
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "instance_fingerprint": activation.fingerprint,
        "environment": activation.environment,
        "module": {
            "technical_name": module["technical_name"],
            "allowed_major_versions": module["allowed_major_versions"],
        },
        "license_type": claims["license_type"],
        "customer": {"id": claims["customer"]["id"], "name": claims["customer"]["name"]},
    }
    try:
        token, _kid = signing.sign_lease(lease_claims)
    except signing.SigningKeyUnavailable as exc:
        raise SigningUnavailable("The signing key is unavailable; no lease can be signed.") from exc
    return token


def _known_license(pending: Pending, locked: License | None) -> uuid.UUID | License | None:
    """The license a refused activation is about, as far as the token proves it: the one
    looked up, or the `jti` of a token that verified but expired (its successor may be
    exactly what the instance needs)."""
    if locked is not None:
        return locked
    if pending.inputs["token_code"] is Code.EXPIRED:
        return uuid.UUID(pending.claims["jti"])
    return None


def _successor_token(
    license: License | uuid.UUID | None, request: dict[str, Any], inputs: dict[str, Any]
) -> str | None:
    """The token of the newest license of `license`'s chain (`replaced_by`) that is valid
    for the same request (module, version, instance, environment, now) by the rules of an
    activation (licensing/rules.py), if any. Reads only: the instance takes its seat of
    the successor when it activates with it."""
    if license is None:
        return None
    replaced_by = (
        license.replaced_by_id
        if isinstance(license, License)
        else License.objects.filter(pk=license).values_list("replaced_by_id", flat=True).first()
    )
    newer: list[str] = []
    seen = set()
    while replaced_by is not None and replaced_by not in seen and len(seen) < 100:
        seen.add(replaced_by)
        row = License.objects.filter(pk=replaced_by).values_list("token", "replaced_by_id").first()
        if row is None:
            break
        newer.append(row[0])
        replaced_by = row[1]
    for token in reversed(newer):  # the newest first
        successor = validation.begin(token=token, **request)
        successor_inputs = successor.inputs | {
            "now": inputs["now"],
            "environment": inputs["environment"],
        }
        if rules.decide(successor_inputs, action=rules.ACTIVATE) is Code.VALID:
            return token
    return None


# --- Deactivate and release ---------------------------------------------------------------


@transaction.atomic
def license_deactivate(
    *, token: str, instance_db_uuid: str, instance_domain: str, actor: str = "public"
) -> Deactivated:
    """Give back the seat the instance holds on the license `token`.

    The token is the credential: its signature and issuer must verify (an expired or
    revoked license may still give its seat back). Answers VALID (the activation released),
    or the token's code, UNKNOWN_LICENSE, NOT_ACTIVATED (no live activation of this
    instance: nothing to release). Raises ValidationFailed (the request: nothing written).
    Side effect: `activation.released` (chained) for a release.
    """
    errors: dict[str, list[str]] = {}
    _text(errors, "token", token, max_length=64 * 1024)
    _check_instance(errors, instance_db_uuid, instance_domain)
    if errors:
        raise ValidationFailed("Invalid deactivation request.", errors=errors)
    verifier = validation.current_verifier()
    result = validation.verified_tokens.verify_signature(verifier, token)
    if not result.valid:
        return Deactivated(result.code)
    license = License.objects.select_for_update().filter(pk=result.claims["jti"]).first()
    if license is None:
        return Deactivated(Code.UNKNOWN_LICENSE, result.claims["jti"])
    fingerprint = compute_fingerprint(instance_db_uuid, instance_domain)
    activation = Activation.objects.filter(
        license=license, fingerprint=fingerprint, released_at=None
    ).first()
    if activation is None:
        return Deactivated(Code.NOT_ACTIVATED, str(license.pk))
    _release(license, activation, actor=actor, by="instance")
    return Deactivated(Code.VALID, str(license.pk), activation)


@transaction.atomic
def activation_release(
    *, actor: str, license_id: uuid.UUID | str, activation_id: uuid.UUID | str
) -> Activation:
    """Release a seat (staff): the activation stops holding it at once, and its lease id
    goes on the revocation list. Raises LicenseNotFound, ActivationNotFound,
    ActivationAlreadyReleased; nothing is written when any is raised. Audits
    `activation.released` (chained)."""
    license = _license_for_update(license_id)
    try:
        pk = uuid.UUID(str(activation_id))
    except ValueError:
        raise ActivationNotFound() from None
    activation = Activation.objects.filter(pk=pk, license=license).first()
    if activation is None:
        raise ActivationNotFound(f"License {license.pk} has no activation {pk}.")
    if activation.released_at is not None:
        raise ActivationAlreadyReleased(f"Activation {pk} was released already.")
    _release(license, activation, actor=actor, by="staff")
    return activation


def _release(license: License, activation: Activation, *, actor: str, by: str) -> None:
    activation.released_at = timezone.now()
    activation.save(update_fields=["released_at"])
    audit_record(
        event_type=RELEASED,
        actor=actor,
        license_id=license.pk,
        customer_id=license.customer_id,
        module_name=license.module_name,
        event_data={
            "activation_id": str(activation.pk),
            "fingerprint": activation.fingerprint,
            "domain": activation.domain,
            "environment": activation.environment,
            "by": by,
        },
    )


def _license_for_update(license_id: uuid.UUID | str) -> License:
    try:
        pk = uuid.UUID(str(license_id))
    except ValueError:
        raise LicenseNotFound() from None
    license = License.objects.select_for_update().filter(pk=pk).first()
    if license is None:
        raise LicenseNotFound(f"License {pk} not found.")
    return license
